"""What the delivery builder refuses: anything already under the delivery's name that is not
its own earlier publication, and documents whose stored bytes are not the ones stamped.
The builder is driven by hand (its runner is stopped), so each test sets the scene between
the approval that queues a delivery and the build."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.store.models import Case, WorkItem
from daemon.store.publication_models import Delivery
from tests.integration.test_outcomes import ADMIN, TANAKA, World
from tests.integration.test_publication import PARTNER_MAIL, partner_world, release
from tests.support import CapturingRelay, wait_until

OTHER_UID = 54321


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = partner_world(tmp_path, db_url, relay)
    w.app.publication_runner.stop()  # builds happen when the test says so
    yield w
    w.app.stop()


def queued(w: World, files: dict[str, bytes]) -> tuple[str, str]:
    """Approve a release; its delivery is queued, not built. Returns (case, delivery)."""
    number = release(w, "drawing", files)
    with w.app.store.transaction() as s:
        case_id = s.scalar(select(Case.id).where(Case.number == number))
        name = s.scalar(select(Delivery.name).where(Delivery.case_id == case_id))
    assert name
    return number, name


def delivery(w: World, name: str) -> Delivery:
    with w.app.store.transaction() as s:
        d = s.scalar(select(Delivery).where(Delivery.name == name))
        assert d is not None
        s.expunge(d)
        return d


def told(w: World, who: str, text: str) -> None:
    """`who` got a publication-failed notice that says `text`."""
    wait_until(lambda: any(text in m.body for m in w.relay.to(who)
                           if "Publication failed" in m.subject or "送付に失敗" in m.subject),
               what=f"failure notice to {who} saying {text!r}")


def snapshot(path: Path) -> tuple[int, int, int, int, str]:
    st = os.lstat(path)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_ino,
            os.readlink(path) if stat.S_ISLNK(st.st_mode) else "")


def test_whatever_is_planted_under_the_delivery_name_is_left_alone(world: World,
                                                                   tmp_path: Path) -> None:
    w = world
    share = tmp_path / "share" / "kobe"
    victim = tmp_path / "victim"  # what a link would make ringi chown and chmod
    victim.mkdir(mode=0o700)
    (victim / "secret").write_text("keep")
    os.chown(victim, 4242, 4242)
    os.chown(victim / "secret", 4242, 4242)
    os.chmod(victim / "secret", 0o600)

    def link(path: Path, name: str) -> None:
        path.symlink_to(victim)

    def foreign(path: Path, name: str) -> None:  # looks like ours, but another owner's
        path.mkdir(mode=0o755)
        (path / "manifest.json").write_text(json.dumps({"delivery": name, "volumes": []}))
        os.chown(path, OTHER_UID, OTHER_UID)

    def linked_manifest(path: Path, name: str) -> None:
        path.mkdir(mode=0o700)
        (path / "manifest.json").symlink_to(victim / "secret")

    def other_manifest(path: Path, name: str) -> None:
        path.mkdir(mode=0o700)
        (path / "manifest.json").write_text(json.dumps({"delivery": "R-0-other-1"}))

    plantings: list[tuple[Callable[[Path, str], None], str]] = [
        (link, "it is a symbolic link"),
        (foreign, f"it is owned by uid {OTHER_UID}, not 0"),
        (linked_manifest, "its manifest.json is a symbolic link"),
        (other_manifest, "its manifest.json is not this delivery's"),
    ]
    for i, (plant, why) in enumerate(plantings):
        number, name = queued(w, {f"D-{i}.pdf": os.urandom(2000)})
        planted = share / name
        plant(planted, name)
        inside = [] if planted.is_symlink() else [planted / f for f in os.listdir(planted)]
        watched = [planted, victim, victim / "secret", *inside]
        before = [snapshot(p) for p in watched]
        assert w.app.publication_runner.run_once()
        assert [snapshot(p) for p in watched] == before, why
        assert inside == [] or sorted(os.listdir(planted)) == sorted(p.name for p in inside)
        assert (victim / "secret").read_text() == "keep"
        d = delivery(w, name)
        reason = f"{planted} is already there and is not this delivery ({why}); " \
            "it was left untouched"
        assert (d.state, d.detail["reason"]) == ("failed", reason)
        assert ("publication failed", reason) in w.events(number)
        told(w, TANAKA, why)
        told(w, ADMIN, why)
    assert w.relay.to(PARTNER_MAIL) == []  # the partner was told of nothing


def test_a_crash_after_the_move_is_finished_on_the_retry(world: World, tmp_path: Path) -> None:
    """The delivery reached the partner's folder but the commit was lost: the retry finds
    it, seals it, records it with the manifest's expiry and mails the partner once."""
    w = world
    share = tmp_path / "share" / "kobe"
    number, name = queued(w, {"D-1.pdf": os.urandom(3000)})
    builder = w.app.delivery_builder
    real = builder._published

    def crash(*args: Any) -> None:
        builder._published = real  # type: ignore[method-assign]
        raise RuntimeError("power cut")

    builder._published = crash  # type: ignore[method-assign]
    assert w.app.publication_runner.run_once()
    assert delivery(w, name).state == "building" and (share / name).is_dir()
    manifest = json.loads((share / name / "manifest.json").read_text())
    os.chmod(share / name / "manifest.json", 0o600)  # as if the crash came before the modes
    w.clock.advance(timedelta(days=1))  # the retry comes later: the expiry must not move
    assert w.app.publication_runner.run_once()
    d = delivery(w, name)
    assert d.state == "published" and d.volumes == len(manifest["volumes"])
    assert d.expires_at == datetime.fromisoformat(manifest["expires_at"])
    assert d.expires_at == w.clock.now() - timedelta(days=1) + timedelta(days=30)
    assert stat.S_IMODE(os.lstat(share / name / "manifest.json").st_mode) == 0o640
    assert os.listdir(share) == [name]
    wait_until(lambda: len(w.relay.to(PARTNER_MAIL)) == 1, what="the partner's mail")
    w.app.outbox_runner.drain()
    assert len(w.relay.to(PARTNER_MAIL)) == 1
    assert [k for k, _ in w.events(number)].count("published") == 1


@pytest.mark.parametrize("change", ["same size", "longer"])
def test_a_document_altered_after_stamping_fails_the_build(world: World, tmp_path: Path,
                                                           change: str) -> None:
    w = world
    good, bad = os.urandom(300_000), os.urandom(200_000)
    number, name = queued(w, {"A.pdf": good, "B.pdf": bad})  # stamped at the approval
    import hashlib

    blob = w.app.workflow.blobs.path_for(hashlib.sha256(bad).hexdigest())
    altered = bad[:1000] + bytes([bad[1000] ^ 1]) + bad[1001:] if change == "same size" \
        else bad + b"x"
    os.chmod(blob, 0o600)
    blob.write_bytes(altered)
    assert w.app.publication_runner.run_once()
    d = delivery(w, name)
    assert d.state == "failed"
    why = (f"the bytes read have sha256 {hashlib.sha256(altered).hexdigest()}, not the "
           f"{hashlib.sha256(bad).hexdigest()} recorded" if change == "same size"
           else f"has {len(altered)} bytes, not the {len(bad)} recorded")
    assert why in d.detail["reason"] and "B.pdf" in d.detail["reason"]
    assert os.listdir(tmp_path / "share" / "kobe") == []  # nothing published
    assert os.listdir(tmp_path / "transmission") == []  # and nothing left half-built
    with w.app.store.transaction() as s:  # no retry can help: a dead letter at once
        assert s.scalar(select(WorkItem.state).where(WorkItem.queue == "publication")) == "dead"
    assert any(k == "publication failed" and why in dd for k, dd in w.events(number))
    told(w, TANAKA, why)
    told(w, ADMIN, why)
