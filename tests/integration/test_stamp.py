"""The electronic stamp: signatures that plain OpenSSL verifies, and a key kept private."""

from __future__ import annotations

import base64
import hashlib
import os
import smtplib
import stat
import subprocess
import tracemalloc
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from daemon.app import App, StartupError
from daemon.clock import FrozenClock
from daemon.publication.stamp import Stamper, StampError, StampKey, StampKeyError
from daemon.security.secrets import InsecureSecretError
from daemon.store.models import Attachment, Case, CaseEvent
from daemon.store.publication_models import Stamp
from tests.support import CapturingRelay, free_port, make_config, ringi, wait_until, write_config

RELEASE = "Type: design_release\nDocument number: D-100\nRevision: B\nSummary: Bracket\n"


def submit(app: App, title: str, docs: dict[str, bytes]) -> Case:
    """A design release with documents, through the real SMTP intake."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "tanaka@example.com", "ringi@example.com", title
    msg.set_content(RELEASE)
    for name, data in docs.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    with smtplib.SMTP("127.0.0.1", app.cfg.smtp.port) as client:
        client.send_message(msg)

    def stored() -> Case | None:
        with app.store.transaction() as s:
            case = s.scalar(select(Case).where(Case.title == title))
            if case is None or len(s.scalars(select(Attachment).where(
                    Attachment.case_id == case.id)).all()) < len(docs):
                return None
            return case
    found: Case = wait_until(stored, what=f"case {title!r} with its documents")
    return found


def openssl_verify(pub: Path, doc: Path, sig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature",
                           str(sig), str(doc)], capture_output=True, text=True)


def stamp(app: App, stamper: Stamper, case_id: int, by: str | None) -> list[Stamp]:
    with app.store.transaction() as s:
        case = s.get(Case, case_id)
        assert case is not None
        done = stamper.stamp_case(
            s, case, by, lambda line: app.workflow.record(s, case, "stamped", None, line))
        s.expunge_all()
        return done


def test_documents_are_stamped_and_openssl_verifies_each(
        daemon: App, relay: CapturingRelay, tmp_path: Path) -> None:
    docs = {"D-100.pdf": b"%PDF-1.7 bracket " + os.urandom(300_000),
            "仕様書.txt": "材質 SUS304\n".encode() * 100}
    case = submit(daemon, "Bracket D-100", docs)
    clock = FrozenClock()
    stamper = Stamper(daemon.stamp_key, clock, daemon.workflow.blobs)
    stamps = stamp(daemon, stamper, case.id, "tanaka")
    fp = daemon.stamp_key.fingerprint
    assert [(st.sha256, st.stamped_by, st.stamped_at, st.key_fingerprint) for st in stamps] == [
        (hashlib.sha256(d).hexdigest(), "tanaka", clock.now(), fp) for d in docs.values()]

    # What a partner does: the public key from `ringi partners stamp-key`, then OpenSSL.
    out = ringi(write_config(daemon.cfg, tmp_path), "partners", "stamp-key")
    assert out.exit_code == 0
    assert out.stdout == daemon.stamp_key.public_pem()
    assert f"stamp key RSA-3072 PKCS#1 v1.5 SHA-256, sha256 {fp}" in out.stderr
    pub = tmp_path / "stamp.pub.pem"
    pub.write_text(out.stdout)
    for st, (name, data) in zip(stamps, docs.items(), strict=True):
        doc, sig = tmp_path / name, tmp_path / f"{name}.sig"
        doc.write_bytes(data)
        sig.write_bytes(base64.b64decode(st.signature))
        ok = openssl_verify(pub, doc, sig)
        assert ok.returncode == 0 and ok.stdout.strip() == "Verified OK", ok.stderr
        doc.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        assert openssl_verify(pub, doc, sig).returncode == 1  # the check means something

    with daemon.store.transaction() as s:
        events = [(e.kind, e.detail) for e in s.scalars(select(CaseEvent).where(
            CaseEvent.case_id == case.id, CaseEvent.kind == "stamped").order_by(CaseEvent.id))]
    # The history alone proves each stamp: who, the full hash and the signature.
    assert events == [("stamped", f"stamped {name} (approved by tanaka): sha256 "
                       f"{hashlib.sha256(d).hexdigest()}, key {fp[:12]}…, signature (base64) "
                       f"{st.signature}") for st, (name, d) in zip(stamps, docs.items(),
                                                                  strict=True)]
    for (_kind, detail), (name, data) in zip(events, docs.items(), strict=True):
        doc, sig = tmp_path / "from-history", tmp_path / "from-history.sig"
        doc.write_bytes(data)
        sig.write_bytes(base64.b64decode(detail.rsplit(" ", 1)[1]))
        assert openssl_verify(pub, doc, sig).stdout.strip() == "Verified OK", name

    again = stamp(daemon, stamper, case.id, "sato")  # nothing new: each document once per key
    assert [st.id for st in again] == [st.id for st in stamps]
    with daemon.store.transaction() as s:
        assert len(s.scalars(select(CaseEvent).where(CaseEvent.kind == "stamped")).all()) == 2


def test_an_altered_or_missing_document_stops_the_stamp(
        daemon: App, relay: CapturingRelay) -> None:
    docs = {"D-200.pdf": b"%PDF good " + os.urandom(1000), "D-201.pdf": b"%PDF drawing"}
    case = submit(daemon, "Plate D-200", docs)
    first = hashlib.sha256(docs["D-201.pdf"]).hexdigest()  # the second: the first is fine
    blob = daemon.workflow.blobs.path_for(first)
    blob.write_bytes(b"%PDF something else")
    now = hashlib.sha256(b"%PDF something else").hexdigest()
    with pytest.raises(StampError) as caught:
        stamp(daemon, daemon.stamper, case.id, None)
    assert caught.value.errors == [
        f"D-201.pdf: the stored document no longer matches the sha256 it was received with "
        f"({first}; now {now}); it was altered"]
    blob.unlink()
    # As the workflow would: catch the refusal, note it in the history, commit.
    with daemon.store.transaction() as s:
        row = s.get(Case, case.id)
        assert row is not None
        with pytest.raises(StampError) as caught:
            daemon.stamper.stamp_case(s, row, None, lambda line: None)
        daemon.workflow.record(s, row, "stamp refused", None, "; ".join(caught.value.errors))
    assert caught.value.errors == [f"D-201.pdf: the stored document (sha256 {first}) is missing"]
    with daemon.store.transaction() as s:  # the good first one was not stamped either
        assert s.scalars(select(Stamp).where(Stamp.case_id == case.id)).all() == []
        assert s.scalars(select(CaseEvent).where(CaseEvent.kind == "stamped")).all() == []


def test_missing_key_is_created_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "secrets" / "stamp.pem"
    key = StampKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert key.algorithm == "RSA-3072 PKCS#1 v1.5 SHA-256"
    assert StampKey.load_or_create(path).fingerprint == key.fingerprint
    pub = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout"], check=True,
                         capture_output=True, text=True).stdout
    assert pub == key.public_pem()
    assert not list(path.parent.glob(".*.tmp"))


def test_readable_or_linked_keys_are_refused(tmp_path: Path, db_url: str) -> None:
    path = tmp_path / "keys" / "stamp.pem"
    StampKey.load_or_create(path)
    os.chmod(path, 0o640)
    with pytest.raises(InsecureSecretError, match="mode 0640 lets others read it"):
        StampKey.load_or_create(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.pem"
    link.symlink_to(path)
    with pytest.raises(InsecureSecretError, match="must not be a symbolic link"):
        StampKey.load_or_create(link)
    cfg = make_config(tmp_path, db_url, None, free_port(),
                      publication={"stamp_key_file": str(link)})
    with pytest.raises(StartupError) as caught:
        App(cfg)
    assert caught.value.problems == [f"{link}: a secret file must not be a symbolic link"]
    created = tmp_path / "spool2" / "stamp.pem"  # the app creates a missing key
    app = App(make_config(tmp_path, db_url, None, free_port(),
                          publication={"stamp_key_file": str(created)}))
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    assert app.stamp_key.fingerprint == StampKey.load_or_create(created).fingerprint
    app.stop()


def _write_key(path: Path, key: object, password: bytes | None = None) -> Path:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    os.chmod(path, 0o600)
    return path


def test_weak_or_unusable_keys_are_refused(tmp_path: Path) -> None:
    cases = [
        (rsa.generate_private_key(65537, 2048), None, "the RSA key has 2048 bits"),
        (ec.generate_private_key(ec.SECP521R1()), None, "curve secp521r1 is not accepted"),
        (ec.generate_private_key(ec.SECP256R1()), b"pw", "the key is encrypted"),
    ]
    for i, (key, password, why) in enumerate(cases):
        path = _write_key(tmp_path / f"k{i}.pem", key, password)
        with pytest.raises(StampKeyError, match=f"^{path}: {why}"):
            StampKey.load_or_create(path)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_ec_stamps_verify_with_openssl(tmp_path: Path, curve: ec.EllipticCurve) -> None:
    key = StampKey.load_or_create(_write_key(tmp_path / "ec.pem", ec.generate_private_key(curve)))
    doc, sig, pub = tmp_path / "doc.bin", tmp_path / "doc.sig", tmp_path / "pub.pem"
    doc.write_bytes(os.urandom(5000))
    pub.write_text(key.public_pem())
    for signature in (key.sign_file(doc), key.sign_bytes(doc.read_bytes())):
        sig.write_bytes(signature)
        assert openssl_verify(pub, doc, sig).stdout.strip() == "Verified OK"


def test_sign_file_reads_in_chunks(tmp_path: Path) -> None:
    key = StampKey.load_or_create(tmp_path / "k" / "stamp.pem")
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(48 * 1024 * 1024)  # sparse: cheap to make, 48 MiB to read
    tracemalloc.start()
    try:
        signature = key.sign_file(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    sig, pub = tmp_path / "big.sig", tmp_path / "pub.pem"
    sig.write_bytes(signature)
    pub.write_text(key.public_pem())
    assert openssl_verify(pub, big, sig).stdout.strip() == "Verified OK"


def test_a_stamp_reached_without_an_approval_is_the_companys(
        daemon: App, relay: CapturingRelay) -> None:
    """A stamp step reached before anyone approved (the requester is the last actor) is
    recorded as ringi's, not as the requester's approval."""
    from daemon.directory.lookup import member
    from daemon.routing.templates import Step

    case = submit(daemon, "Plate D-300", {"D-300.pdf": b"%PDF plate"})
    with daemon.store.transaction() as s:
        row = s.get(Case, case.id)
        assert row is not None
        requester = member(s, row.requester_id)
        assert requester is not None
        assert daemon.publisher.at_step(
            s, row, Step(name="stamp", resolver="system", action="stamp"), requester)
    with daemon.store.transaction() as s:
        st = s.scalar(select(Stamp).where(Stamp.case_id == case.id))
        event = s.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                 CaseEvent.kind == "stamped"))
        assert st is not None and event is not None
        assert (st.stamped_by, event.actor_id, event.actor) == (None, None, {})
        assert event.detail.startswith(
            f"stamped D-300.pdf (no approver: by ringi): sha256 "
            f"{hashlib.sha256(b'%PDF plate').hexdigest()}, key ")
        assert event.detail.endswith(f"signature (base64) {st.signature}")
