"""A partner's conditions are checked before any work: a publish step whose partners all
refuse stamps nothing (not a byte is hashed) and builds nothing; the route goes on, and
the requester and the administrator are told why."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import daemon.publication.stamp as stamp_module
from daemon.store.publication_models import Delivery, Stamp
from tests.integration.test_outcomes import ADMIN, TANAKA, World
from tests.integration.test_publication import partner_world, release
from tests.support import CapturingRelay, wait_until


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every document the stamper hashes."""
    seen: list[Path] = []
    real = stamp_module.sha256_file

    def spy(path: Path) -> bytes:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(stamp_module, "sha256_file", spy)
    yield seen


def refused_without_work(w: World, number: str, reason: str, hashed: list[Path],
                         tmp_path: Path) -> None:
    wait_until(lambda: w.case(number).state == "approved", what="the route went on")
    events = w.events(number)
    assert ("publication refused", f"kobe-precision: {reason}") in events
    kinds = [k for k, _ in events]
    assert "stamped" not in kinds and "stamp complete" not in kinds
    assert "publication queued" not in kinds
    assert hashed == []  # not a byte was hashed
    with w.app.store.transaction() as s:
        assert s.scalars(select(Stamp)).all() == []
        assert [(d.state, d.detail) for d in s.scalars(select(Delivery))] == [
            ("refused", {"reason": reason})]
    for who in (TANAKA, ADMIN):
        wait_until(lambda who=who: any(  # type: ignore[misc]
            reason in m.body for m in w.relay.to(who)
            if "Not published" in m.subject or "送付できません" in m.subject),
            what=f"the refusal told to {who}")
    w.app.publication_runner.drain()
    assert os.listdir(tmp_path / "share" / "kobe") == []


def test_a_refused_document_class_is_not_stamped(tmp_path: Path, db_url: str,
                                                 relay: CapturingRelay,
                                                 hashed: list[Path]) -> None:
    w = partner_world(tmp_path, db_url, relay)
    try:
        number = release(w, "specification", {"S-1.pdf": b"%PDF spec"})
        refused_without_work(w, number, "Kobe Precision may receive document classes "
                             "drawing, not specification", hashed, tmp_path)
        # The same partner takes a drawing: then, and only then, documents are stamped.
        accepted = release(w, "drawing", {"D-1.pdf": b"%PDF drawing"})
        wait_until(lambda: "published" in [k for k, _ in w.events(accepted)],
                   what="published")
        assert len(hashed) == 1
    finally:
        w.app.stop()


def test_a_refused_case_type_is_not_stamped(tmp_path: Path, db_url: str,
                                            relay: CapturingRelay, hashed: list[Path]) -> None:
    w = partner_world(tmp_path, db_url, relay, case_types='["purchase"]')
    try:
        number = release(w, "drawing", {"D-2.pdf": b"%PDF drawing"})
        refused_without_work(w, number, "Kobe Precision may receive purchase, not "
                             "design_release", hashed, tmp_path)
    finally:
        w.app.stop()
