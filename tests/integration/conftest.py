"""The world most mail tests run in: the sample organisation's daemon, started and stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_outcomes import World, start_world
from tests.support import CapturingRelay


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = start_world(tmp_path, db_url, relay)
    yield w
    w.app.stop()
