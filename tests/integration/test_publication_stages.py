"""Documents added after the request reach the partner: a drawing replaced by `correct`
and an approver's document sent with APPROVE are stamped and delivered; the replaced
revision is not. The delivery is opened with real OpenSSL and 7-Zip."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.store.models import Attachment
from daemon.store.publication_models import Stamp
from tests.integration.test_document_stages import answer, mail_with
from tests.integration.test_outcomes import SUZUKI, TANAKA, number_of
from tests.integration.test_publication import PARTNER_MAIL, partner_world
from tests.support import REQUEST, CapturingRelay, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("7zz") or not shutil.which("openssl"),
    reason="needs root (folder owners), 7zz and openssl (scripts/test.sh installs them)")


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def test_later_stage_documents_are_stamped_and_delivered(tmp_path: Path, db_url: str,
                                                         relay: CapturingRelay) -> None:
    w = partner_world(tmp_path, db_url, relay)
    try:
        rev_a, rev_b = b"%PDF-1.4 bracket rev A " * 300, b"%PDF-1.4 bracket rev B " * 300
        notes, review = b"tolerance +-0.05\n" * 100, b"%PDF-1.4 design review " * 200
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = TANAKA, REQUEST, "Bracket drawing"
        msg.set_content("Type: design_release\nDocument number: D-100\nRevision: A\n"
                        "Summary: bracket\nDocument class: drawing\n")
        for name, data in {"D-100.pdf": rev_a, "notes.txt": notes}.items():
            msg.add_attachment(data, maintype="application", subtype="octet-stream",
                               filename=name)
        with smtplib.SMTP("127.0.0.1", w.port) as c:
            c.send_message(msg)
        number = number_of(w.one(TANAKA))
        answer(w, w.one(SUZUKI), SUZUKI, "差し戻し\n改訂Bの図面にしてください", {})
        w.new(SUZUKI)
        wait_until(lambda: w.case(number).state == "returned", what="returned")
        mail_with(w, TANAKA, f"correct {number}", "Revision: B\n", {"D-100.pdf": rev_b})
        again = w.one(SUZUKI)
        assert "new document: D-100.pdf" in again.body
        answer(w, again, SUZUKI, "承認", {"review.pdf": review})
        notice = w.one(PARTNER_MAIL)
        assert number in notice.subject
        delivered = {"notes.txt": notes, "D-100.pdf": rev_b, "review.pdf": review}
        for fname, data in delivered.items():
            assert f"  - {fname} ({len(data):,} bytes, SHA-256 " \
                f"{hashlib.sha256(data).hexdigest()})" in notice.body
        [name] = os.listdir(tmp_path / "share" / "kobe")
        delivery = tmp_path / "share" / "kobe" / name
        ok = run("openssl", "dgst", "-sha256", "-verify", "company-stamp.pub.pem", "-signature",
                 "manifest.json.sig", "manifest.json", cwd=delivery)
        assert "Verified OK" in ok.stdout, ok.stderr
        manifest = json.loads((delivery / "manifest.json").read_bytes())
        assert [(d["name"], d["sha256"], d["stamp"]["signature"])
                for d in manifest["documents"]] == [
            (f, hashlib.sha256(data).hexdigest(), f"stamps/{f}.sig")
            for f, data in delivered.items()]
        password = run("openssl", "pkeyutl", "-decrypt", "-inkey", str(tmp_path / "kobe.key"),
                       "-in", "password.bin", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt",
                       "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256",
                       cwd=delivery).stdout
        out = tmp_path / "extracted"
        volumes = sorted(f for f in os.listdir(delivery) if ".7z." in f)
        x = run("7zz", "x", f"-p{password}", f"-o{out}", str(delivery / volumes[0]))
        assert x.returncode == 0, x.stdout + x.stderr
        assert sorted(os.listdir(out)) == sorted([*delivered, "stamps"])  # no rev A, no -2
        for fname, data in delivered.items():
            assert (out / fname).read_bytes() == data
            sig = run("openssl", "dgst", "-sha256", "-verify",
                      str(delivery / "company-stamp.pub.pem"), "-signature",
                      str(out / "stamps" / f"{fname}.sig"), str(out / fname))
            assert "Verified OK" in sig.stdout, sig.stderr
        # Stamped on Suzuki's approval, the approver's own document too; rev A never.
        with w.app.store.transaction() as s:
            stamped = {(a.filename, a.sha256, st.stamped_by) for a, st in s.execute(
                select(Attachment, Stamp).join(Stamp, Stamp.attachment_id == Attachment.id))}
        assert stamped == {(f, hashlib.sha256(d).hexdigest(), "suzuki")
                           for f, d in delivered.items()}
        with w.app.store.transaction() as s:  # rev A stays on the case, as it came
            kept = [(a.filename, a.sha256, a.stage, a.added_by) for a in s.scalars(
                select(Attachment).order_by(Attachment.id))]
        assert kept == [
            ("D-100.pdf", hashlib.sha256(rev_a).hexdigest(), "request", "tanaka"),
            ("notes.txt", hashlib.sha256(notes).hexdigest(), "request", "tanaka"),
            ("D-100.pdf", hashlib.sha256(rev_b).hexdigest(), "correct", "tanaka"),
            ("review.pdf", hashlib.sha256(review).hexdigest(), "decision:approve", "suzuki")]
    finally:
        w.app.stop()
