"""A long build shows its progress while it runs; an expired delivery is purged once, even
by two daemons at the same moment."""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import daemon.publication.publisher as publisher_module
from daemon.cli.inspect import print_status
from daemon.publication.folders import FolderRule
from daemon.publication.publisher import Publisher
from daemon.store.condition_models import AuditEntry
from daemon.store.publication_models import Delivery, Stamp
from tests.integration.test_outcomes import World
from tests.integration.test_publication_integrity import delivery, queued, world  # noqa: F401

PACKED = re.compile(r": (\d+) of (\d+) bytes packed$")


def test_a_real_build_updates_its_row_and_the_log_as_it_goes(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    w = world
    docs = {"D-1.bin": os.urandom(5 * 1024 * 1024 + 123), "notes.txt": b"bolt M8\n" * 100}
    _, name = queued(w, docs)
    w.app.delivery_builder.progress_every = 512 * 1024  # every chunk (1 MiB) is reported
    seen: list[tuple[int, int, str, int, int]] = []

    class Watch(logging.Handler):
        """At each progress line: the delivery row and `ringi status`, as others see them."""

        def emit(self, record: logging.LogRecord) -> None:
            m = PACKED.search(record.getMessage())
            if m is None:
                return
            with w.app.store.transaction() as s:
                d = s.scalar(select(Delivery).where(Delivery.name == name))
                assert d is not None
                seen.append((int(m[1]), int(m[2]), d.state, d.done_bytes, d.total_bytes))
            print_status(w.app)

    logger = logging.getLogger("daemon.publication.builder")
    watch, level = Watch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    try:
        capsys.readouterr()
        assert w.app.publication_runner.run_once()
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)
    status = capsys.readouterr().out
    with w.app.store.transaction() as s:
        signatures = [base64.b64decode(sig) for sig in s.scalars(select(Stamp.signature))]
    # Everything packed: the documents and their stamp signatures.
    total = sum(len(d) for d in docs.values()) + sum(len(sig) for sig in signatures)
    assert len(signatures) == 2 and len(seen) >= 5
    logged = [done for done, *_ in seen]
    assert logged == sorted(set(logged)) and logged[-1] == total
    assert {t for _, t, *_ in seen} == {total}
    for i, (_done, _t, state, row_done, row_total) in enumerate(seen):
        # The row holds what the previous line said (written right after it was logged).
        assert (state, row_done, row_total) == ("building", [0, *logged][i], total)
    shown = re.findall(rf"  {name} building: ([\d,]+) of {total:,} bytes \((\d+)%\)", status)
    assert [int(d.replace(",", "")) for d, _ in shown] == [0, *logged][:len(seen)]
    assert any(0 < int(p) < 100 for _, p in shown)
    d = delivery(w, name)
    assert (d.state, d.done_bytes, d.total_bytes) == ("published", total, total)


def test_two_daemons_purging_at_once_record_it_once(world: World, tmp_path: Path,  # noqa: F811
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    number, name = queued(w, {"A.pdf": os.urandom(5000)})
    assert w.app.publication_runner.run_once()
    assert delivery(w, name).state == "published"
    w.clock.advance(timedelta(days=31))
    real = publisher_module.remove_delivery
    removing = threading.Event()

    def slow(rule: FolderRule, n: str) -> bool:
        removing.set()
        time.sleep(0.5)  # the other daemon looks meanwhile
        return real(rule, n)

    monkeypatch.setattr(publisher_module, "remove_delivery", slow)
    app = w.app  # a second daemon on the same database: its own publisher
    other = Publisher(app.store, app.queue, app.workflow, app.partners, app.stamper)
    counts: list[int] = []
    first = threading.Thread(target=lambda: counts.append(app.publisher.purge_expired()))
    first.start()
    assert removing.wait(10)
    counts.append(other.purge_expired())
    first.join()
    assert sorted(counts) == [0, 1]
    assert [k for k, _ in w.events(number)].count("delivery purged") == 1
    with app.store.transaction() as s:
        assert len(s.scalars(select(AuditEntry).where(
            AuditEntry.kind == "delivery purged")).all()) == 1
    assert delivery(w, name).state == "purged"
    assert os.listdir(tmp_path / "share" / "kobe") == []
