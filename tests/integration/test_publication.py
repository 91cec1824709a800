"""Partner publication end to end (SPEC 8): a design release is approved by mail, stamped,
built into an encrypted split archive, published into the partner's folder, opened with
real OpenSSL and 7-Zip exactly as docs/partners.md says, and purged after its time."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import smtplib
import stat
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from daemon.store.condition_models import AuditEntry
from daemon.store.models import CaseEvent
from daemon.store.publication_models import Delivery, Stamp
from tests.integration.test_outcomes import ADMIN, SUZUKI, TANAKA, World, number_of, start_world
from tests.integration.test_recovery import new_case
from tests.support import REQUEST, ROOT, CapturingRelay, ringi, wait_until, write_config

PARTNER_MAIL = "cad@kobe.example"
GROUP = 54322

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("7zz") or not shutil.which("openssl"),
    reason="needs root (folder owners), 7zz and openssl (scripts/test.sh installs them)")


def private_key(path: Path) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


PARTNER = {
    "case_types": '["design_release"]', "document_classes": '["drawing"]', "locale": '"en"',
    "max_delivery_mb": "6", "volume_mb": "1", "retention_days": "30",
}


def partner_world(tmp_path: Path, db_url: str, relay: CapturingRelay,
                  public_key: bytes | None = None, **over: str) -> World:
    """ringi with one partner, Kobe Precision, whose folder is owned by root and group
    GROUP (mode 0750). `over` replaces values of its file (as TOML); without
    `public_key`, a key pair is made and the private key left in tmp_path/kobe.key."""
    partners = tmp_path / "partners"
    partners.mkdir()
    if public_key is None:
        public_key = private_key(tmp_path / "kobe.key")
    (partners / "kobe.pub.pem").write_bytes(public_key)
    share = tmp_path / "share" / "kobe"
    share.mkdir(parents=True)
    os.chown(share, 0, GROUP)
    os.chmod(share, 0o750)
    values = "\n".join(f"{k} = {v}" for k, v in {**PARTNER, **over}.items())
    (partners / "kobe-precision.toml").write_text(f'''
name = "kobe-precision"
title = "Kobe Precision"
emails = ["{PARTNER_MAIL}"]
public_key_file = "kobe.pub.pem"
folder = "{share}"
folder_owner = "0"
folder_group = "{GROUP}"
folder_mode = "0750"
{values}
''')
    return start_world(tmp_path, db_url, relay,
                       publication={"partners_dir": str(partners),
                                    "transmission": str(tmp_path / "transmission"),
                                    "progress_every_mb": 1})


@pytest.fixture
def world(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    w = partner_world(tmp_path, db_url, relay)
    yield w
    w.app.stop()


def release(w: World, doc_class: str, files: dict[str, bytes]) -> str:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = TANAKA, REQUEST, "Bracket drawing"
    msg.set_content("Type: design_release\nDocument number: D-100\nRevision: A\n"
                    f"Summary: bracket\nDocument class: {doc_class}\n")
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream",
                           filename=name)
    known = {number_of(m) for m in w.relay.to(TANAKA)}
    with smtplib.SMTP("127.0.0.1", w.port) as c:
        c.send_message(msg)
    number = new_case(w, TANAKA, known)
    w.reply(w.one(SUZUKI), SUZUKI, "承認")
    w.new(SUZUKI)
    return number


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def test_release_is_stamped_published_opened_and_purged(
        world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.publication.builder")
    w = world
    docs = {"D-100-A.pdf": os.urandom(5_000_000), "notes.txt": b"tolerance +-0.05\n" * 5000}
    number = release(w, "drawing", docs)
    notice = w.one(PARTNER_MAIL)
    assert "Delivery ready" in notice.subject and number in notice.subject
    share = tmp_path / "share" / "kobe"
    [name] = os.listdir(share)
    assert name.startswith(f"{number}-kobe-precision-")
    delivery = share / name
    # The partner's mail: where, what, until when, and how to open it.
    expires = w.clock.now() + timedelta(days=30)
    body = notice.body
    assert f"Folder:   {share}\n" in body and f"Delivery: {name}\n" in body
    until = f"{expires.day} {expires:%b} {expires.year}"
    assert f"Until:    {until} (it is removed after this date)" in body
    for fname, data in docs.items():
        assert f"  - {fname} ({len(data):,} bytes, SHA-256 " \
            f"{hashlib.sha256(data).hexdigest()})" in body
    assert "README.txt" in body and f"cp -r {share}/\"$D\"" in body
    assert "openssl dgst -sha256 -verify company-stamp.pub.pem -signature manifest.json.sig" \
        in body and '7zz x -p"$(cat password.txt)"' in body
    assert (delivery / "README.txt").read_text() == body.replace("\r\n", "\n")
    st = os.lstat(delivery)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, GROUP, 0o750)
    files = sorted(os.listdir(delivery))
    volumes = [f for f in files if ".7z." in f]
    assert len(volumes) >= 2  # split: 1 MiB volumes
    assert {"password.bin", "manifest.json", "manifest.json.sig", "company-stamp.pub.pem",
            "README.txt"} <= set(files)
    assert all(stat.S_IMODE(os.lstat(delivery / f).st_mode) == 0o640 for f in files)
    # The partner's steps (docs/partners.md), with real OpenSSL and 7-Zip only.
    ok = run("openssl", "dgst", "-sha256", "-verify", "company-stamp.pub.pem", "-signature",
             "manifest.json.sig", "manifest.json", cwd=delivery)
    assert "Verified OK" in ok.stdout, ok.stderr
    altered = tmp_path / "altered.json"  # one byte changed: the signature no longer holds
    raw = (delivery / "manifest.json").read_bytes()
    altered.write_bytes(raw[:40] + bytes([raw[40] ^ 1]) + raw[41:])
    bad = run("openssl", "dgst", "-sha256", "-verify", "company-stamp.pub.pem", "-signature",
              "manifest.json.sig", str(altered), cwd=delivery)
    assert bad.returncode == 1 and "Verification failure" in bad.stdout
    manifest = json.loads(raw)
    assert manifest["case_number"] == number and manifest["delivery"] == name
    assert [v["name"] for v in manifest["volumes"]] == volumes
    for v in manifest["volumes"]:  # what the manifest states is what the files are
        data = (delivery / v["name"]).read_bytes()
        assert (v["size"], v["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    fp = w.app.stamp_key.fingerprint
    assert manifest["stamp_key_fingerprint"] == fp
    assert [(d["name"], d["size"], d["sha256"], d["stamp"]) for d in manifest["documents"]] == [
        (fname, len(data), hashlib.sha256(data).hexdigest(),
         {"signature": f"stamps/{fname}.sig", "stamped_at": w.clock.now().isoformat(),
          "key_fingerprint": fp}) for fname, data in docs.items()]
    created = datetime.fromisoformat(manifest["created_at"])
    assert created == w.clock.now()
    assert datetime.fromisoformat(manifest["expires_at"]) == created + timedelta(days=30)
    with w.app.store.transaction() as s:  # the expiry recorded (and purged by) is the same
        assert s.scalar(select(Delivery.expires_at)) == expires
    unwrapped = run("openssl", "pkeyutl", "-decrypt", "-inkey", str(tmp_path / "kobe.key"),
                    "-in", "password.bin", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt",
                    "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", cwd=delivery)
    assert unwrapped.returncode == 0, unwrapped.stderr
    password = unwrapped.stdout
    out = tmp_path / "extracted"
    x = run("7zz", "x", f"-p{password}", f"-o{out}", str(delivery / volumes[0]))
    assert x.returncode == 0, x.stdout + x.stderr
    for fname, data in docs.items():
        assert (out / fname).read_bytes() == data
        sig = run("openssl", "dgst", "-sha256", "-verify",
                  str(delivery / "company-stamp.pub.pem"), "-signature",
                  str(out / "stamps" / f"{fname}.sig"), str(out / fname))
        assert "Verified OK" in sig.stdout
    # Another partner's key opens nothing.
    private_key(tmp_path / "other.key")
    wrong = run("openssl", "pkeyutl", "-decrypt", "-inkey", str(tmp_path / "other.key"),
                "-in", "password.bin", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt",
                "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", cwd=delivery)
    assert wrong.returncode != 0
    kinds = [k for k, _ in w.events(number)]
    assert kinds.count("stamped") == 2 and "published" in kinds
    # The stamp in the history: who (the approver), when, the full hash and the signature.
    with w.app.store.transaction() as s:
        stamped = [(e.actor_id, e.at, e.detail) for e in s.scalars(select(CaseEvent).where(
            CaseEvent.kind == "stamped").order_by(CaseEvent.id))]
        rows = s.scalars(select(Stamp).order_by(Stamp.id)).all()
        assert [r.stamped_by for r in rows] == ["suzuki", "suzuki"]
        signatures = [r.signature for r in rows]
    assert [(who, at) for who, at, _ in stamped] == [("suzuki", w.clock.now())] * 2
    for (_, _, detail), (fname, data), sig in zip(stamped, docs.items(), signatures,
                                                  strict=True):
        assert detail == (f"stamped {fname} (approved by suzuki): sha256 "
                          f"{hashlib.sha256(data).hexdigest()}, key {fp[:12]}…, "
                          f"signature (base64) {sig}")
    shown = ringi(write_config(w.app.cfg, tmp_path), "case", "show", number)
    assert shown.exit_code == 0, shown.output
    lines = [ln for ln in shown.output.splitlines() if " stamped " in ln]
    assert len(lines) == 2 and all("Suzuki" in ln and signatures[i] in ln
                                   for i, ln in enumerate(lines)), lines
    packed = [r.getMessage() for r in caplog.records if "bytes packed" in r.getMessage()]
    # progress on the way, then all of it (documents and their stamp signatures)
    assert len(packed) >= 2 and re.search(r": (\d+) of \1 bytes packed$", packed[-1])
    assert any("Kobe Precisionへ送付しました" in m.subject
               for m in w.relay.to(TANAKA)), [m.subject for m in w.relay.to(TANAKA)]
    # After the retention time the timer removes exactly this delivery, and records it.
    w.clock.advance(timedelta(days=29))
    w.app.timers.run_once()
    assert delivery.is_dir()
    w.clock.advance(timedelta(days=2))
    w.app.timers.run_once()
    assert not delivery.exists()
    assert "delivery purged" in [k for k, _ in w.events(number)]
    with w.app.store.transaction() as s:
        assert s.scalar(select(Delivery.state)) == "purged"
        assert s.scalar(select(AuditEntry.kind).where(AuditEntry.kind == "delivery purged"))


def test_outside_the_partners_conditions_nothing_is_built(world: World, tmp_path: Path) -> None:
    w = world
    number = release(w, "specification", {"S-1.pdf": b"%PDF spec"})  # only drawings allowed
    refused = [m for m in w.relay.wait_for(TANAKA, w.seen[TANAKA] + 2)
               if "へは送付できません" in m.subject]
    assert refused and "document classes drawing, not specification" in refused[0].body
    assert any("Not published" in m.subject or "送付できません" in m.subject
               for m in w.relay.wait_for(ADMIN, 1))
    too_big = release(w, "drawing", {"big.bin": os.urandom(7 * 1024 * 1024)})
    assert any(k == "publication refused" and "accepts at most" in d
               for k, d in w.events(too_big)), w.events(too_big)
    w.app.inbound_runner.drain()
    assert os.listdir(tmp_path / "share" / "kobe") == []
    assert not (tmp_path / "transmission").exists() or \
        os.listdir(tmp_path / "transmission") == []
    assert any(k == "publication refused" for k, _ in w.events(number))


def test_unsafe_receiving_folder_fails_the_delivery_and_tells_people(world: World,
                                                                      tmp_path: Path) -> None:
    w = world
    share = tmp_path / "share" / "kobe"
    os.chmod(share, 0o770)  # group-writable: refused, nothing written
    number = release(w, "drawing", {"D-7.pdf": b"%PDF drawing"})
    wait_until(lambda: any(k == "publication failed" for k, _ in w.events(number)),
               what="publication failed")
    assert os.listdir(share) == []
    detail = next(d for k, d in w.events(number) if k == "publication failed")
    assert "writable by group or others" in detail
    assert any("Publication failed" in m.subject or "送付に失敗" in m.subject
               for m in w.relay.wait_for(ADMIN, 1))
    # Once the folder is put right, the administrator retries the dead letter.
    os.chmod(share, 0o750)
    from daemon.store.models import WorkItem

    with w.app.store.transaction() as s:
        dead = s.scalar(select(WorkItem.id).where(WorkItem.queue == "publication",
                                                  WorkItem.state == "dead"))
    assert dead is not None and w.app.queue.retry(dead)
    w.app.publication_runner.wakeup.set()
    wait_until(lambda: any(k == "published" for k, _ in w.events(number)), what="published")
    assert len(os.listdir(share)) == 1


def test_sample_partner_file_is_valid() -> None:
    from daemon.clock import FrozenClock
    from daemon.publication.partners import PartnerRegistry

    spec = PartnerRegistry(FrozenClock()).load_file(
        ROOT / "rules" / "partners" / "kobe-precision.toml")
    assert spec.document_classes == ("drawing", "specification")


def test_status_shows_deliveries_in_progress(world: World, tmp_path: Path) -> None:


    w = world
    number = release(w, "specification", {"S-2.pdf": b"%PDF"})  # refused: a case to hang on
    with w.app.store.transaction() as s:
        case_id = w.case(number).id
        partner = w.app.partners.get(s, "kobe-precision")
        assert partner is not None
        now = w.clock.now()
        s.add(Delivery(case_id=case_id, partner_id=partner.id, name=f"{number}-kobe-9",
                       state="building", total_bytes=4_000_000, done_bytes=1_000_000,
                       created_at=now, updated_at=now, detail={}))
    out = ringi(write_config(w.app.cfg, tmp_path), "status")
    assert out.exit_code == 0, out.output
    assert f"{number}-kobe-9 building: 1,000,000 of 4,000,000 bytes (25%)" in out.output


def test_stamp_step_alone_and_a_missing_document_stops_the_route(
        tmp_path: Path, db_url: str, relay: CapturingRelay) -> None:
    from tests.integration.test_outcomes import custom_rules

    rules = custom_rules(tmp_path, "design_release.toml", '''
name = "design_release"
case_types = ["design_release"]
[[phases]]
name = "head"
  [[phases.steps]]
  name = "unit-head"
  resolver = "role"
  role = "head"
[[phases]]
name = "stamp"
  [[phases.steps]]
  name = "stamp"
  action = "stamp"
''')
    w = start_world(tmp_path, db_url, relay, rules=rules)
    try:
        stamped = release(w, "internal", {"D-1.pdf": b"%PDF one", "D-2.pdf": b"%PDF two"})
        wait_until(lambda: w.case(stamped).state == "approved", what="approved")
        kinds = [k for k, _ in w.events(stamped)]
        assert kinds.count("stamped") == 2 and kinds.index("stamped") < kinds.index("approved")
        # A document whose stored bytes are gone cannot be stamped: the case stops there.
        known = {number_of(m) for m in w.relay.to(TANAKA)}
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = TANAKA, REQUEST, "Another drawing"
        msg.set_content("Type: design_release\nDocument number: D-2\nRevision: B\n"
                        "Summary: x\n")
        msg.add_attachment(b"%PDF soon gone", maintype="application", subtype="pdf",
                           filename="gone.pdf")
        with smtplib.SMTP("127.0.0.1", w.port) as c:
            c.send_message(msg)
        broken = new_case(w, TANAKA, known)
        import hashlib

        blob = w.app.workflow.blobs.path_for(hashlib.sha256(b"%PDF soon gone").hexdigest())
        blob.unlink()
        w.reply(w.one(SUZUKI), SUZUKI, "承認")
        wait_until(lambda: w.case(broken).state == "suspended", what="suspended")
        assert "stamped" not in [k for k, _ in w.events(broken)]
        assert any("gone.pdf" in d for k, d in w.events(broken) if k == "suspended")
        assert any("Stamping failed" in m.subject or "電子印を押せません" in m.subject
                   for m in w.relay.wait_for(ADMIN, 1))
        # Once the document is restored, the administrator resumes the case where it stopped.


        blob.write_bytes(b"%PDF soon gone")
        out = ringi(write_config(w.app.cfg, tmp_path), "case", "resume", broken)
        assert out.exit_code == 0, out.output
        assert f"{broken}: resumed; now approved" in out.output
        assert "stamped" in [k for k, _ in w.events(broken)]
        again = ringi(write_config(w.app.cfg, tmp_path), "case", "resume", broken)
        assert again.exit_code == 1 and "not suspended" in again.output
    finally:
        w.app.stop()


def test_purge_removes_exactly_the_expired_deliveries(world: World, tmp_path: Path) -> None:
    w = world
    share = tmp_path / "share" / "kobe"
    def published() -> int:  # recorded, not only visible: the rename precedes the commit
        with w.app.store.transaction() as s:
            return len(s.scalars(select(Delivery).where(Delivery.state == "published")).all())

    first = release(w, "drawing", {"A.pdf": b"%PDF a"})
    wait_until(lambda: len(os.listdir(share)) == 1 and published() == 1, what="first delivery")
    w.clock.advance(timedelta(days=10))
    second = release(w, "drawing", {"B.pdf": b"%PDF b"})
    wait_until(lambda: len(os.listdir(share)) == 2 and published() == 2,
               what="second delivery")
    outside = tmp_path / "partner-own-file"
    outside.write_text("not ours")
    w.clock.advance(timedelta(days=21))  # the first is 31 days old, the second 21
    w.app.timers.run_once()
    left = os.listdir(share)
    assert len(left) == 1 and left[0].startswith(second)
    assert outside.read_text() == "not ours"
    assert "delivery purged" in [k for k, _ in w.events(first)]
    assert "delivery purged" not in [k for k, _ in w.events(second)]
