"""Documents at every stage, end to end over SMTP: files sent with a decision reply, with
`correct N` and with `reapply N` are stored with their SHA-256 and attached to the case at
that stage (who, when, round, step, input); `ringi case show` lists them; the sender's
confirmation lists what was received; a refused mail's files are not attached and its
answer says so."""

from __future__ import annotations

import email.utils
import hashlib
import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import select

from daemon.cases.documents import current_documents
from daemon.store.db import MIGRATIONS, Store, make_engine
from daemon.store.models import Attachment, Case, CaseStep, InboundMessage
from tests.integration.test_outcomes import (
    BROWN,
    PURCHASE,
    SMITH,
    TAKAHASHI,
    World,
    number_of,
    start_world,
)
from tests.support import REQUEST, Captured, CapturingRelay, ringi, write_config

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 30 + b"\n%%EOF\n"


@pytest.fixture
def w(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    world = start_world(tmp_path, db_url, relay)
    yield world
    world.app.stop()


def mail_with(w: World, sender: str, subject: str, body: str, files: dict[str, bytes],
              to: str = REQUEST, in_reply_to: str | None = None) -> str:
    """Send a mail with attachments over real SMTP; returns its Message-ID."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = mid = email.utils.make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(body)
    for name, data in files.items():
        kind = ("application", "pdf") if name.endswith(".pdf") else \
            ("application", "octet-stream")
        msg.add_attachment(data, maintype=kind[0], subtype=kind[1], filename=name)
    with smtplib.SMTP("127.0.0.1", w.port) as c:
        c.send_message(msg)
    return mid


def answer(w: World, request: Captured, sender: str, text: str,
           files: dict[str, bytes]) -> str:
    """Reply to an approval request like a mail client, with files attached."""
    quoted = "\n".join("> " + line for line in request.body.splitlines())
    return mail_with(w, sender, "Re: " + request.subject, f"{text}\n\n{quoted}\n", files,
                     to=str(request.message["Reply-To"]),
                     in_reply_to=str(request.message["Message-ID"]))


def docs_of(w: World, number: str) -> list[Attachment]:
    with w.app.store.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case is not None
        return list(s.scalars(select(Attachment).where(Attachment.case_id == case.id)
                              .order_by(Attachment.id)))


def inbound_with(w: World, message_id: str) -> int:
    with w.app.store.transaction() as s:
        ids = [r.id for r in s.scalars(select(InboundMessage)) if message_id.encode() in r.raw]
    assert len(ids) == 1, ids
    return ids[0]


def case_show(w: World, tmp_path: Path, number: str) -> str:
    out = ringi(write_config(w.app.cfg, tmp_path), "case", "show", number)
    assert out.exit_code == 0, out.output
    return out.output


def shown(text: str, filename: str, data: bytes) -> str:
    """The `added by ...` line printed under the document's line."""
    digest = hashlib.sha256(data).hexdigest()
    m = re.search(rf"  attachment: {re.escape(filename)} \({len(data)} bytes, sha256 "
                  rf"{digest}\)\n      (added by .*)\n", text)
    assert m, text
    return m.group(1)


def test_approver_documents_and_a_refused_reply(w: World, tmp_path: Path) -> None:
    quote = b"quotation " * 200
    mail_with(w, SMITH, "Laptop", PURCHASE, {"quote.pdf": quote})
    number = number_of(w.one(SMITH))
    request = w.one(TAKAHASHI)
    # Someone not asked answers with a file: nothing is decided, nothing attached, and the
    # error says the file was not added.
    answer(w, request, BROWN, "APPROVE", {"forged.pdf": b"%PDF-1.4 forged"})
    error = w.one(BROWN)
    assert "Not accepted" in error.subject
    assert "NOT added to the case (1 file(s)):\n  - forged.pdf (15 bytes): your reply was " \
        "not accepted" in error.body
    assert [a.filename for a in docs_of(w, number)] == ["quote.pdf"]
    # The asked approver approves with a PDF: stored by SHA-256, at that stage, and listed
    # in the confirmation.
    mid = answer(w, request, TAKAHASHI, "承認\n予算確認済み", {"budget-check.pdf": PDF})
    confirm = w.one(TAKAHASHI)
    digest = hashlib.sha256(PDF).hexdigest()
    assert "承認しました" in confirm.subject
    assert f"  - budget-check.pdf（{len(PDF):,}バイト、SHA-256 {digest[:16]}…）: " \
        "申請に追加しました" in confirm.body
    quote_row, added = docs_of(w, number)
    with w.app.store.transaction() as s:
        step = s.scalar(select(CaseStep).where(CaseStep.approver_id == "takahashi"))
        assert step is not None
        step_id = step.id
    assert (added.filename, added.size, added.sha256, added.added_by, added.stage,
            added.round, added.step_id, added.inbound_id) == (
        "budget-check.pdf", len(PDF), digest, "takahashi", "decision:approve", 1, step_id,
        inbound_id := inbound_with(w, mid))
    assert inbound_id is not None
    assert (w.app.cfg.blobs_dir / digest[:2] / digest).read_bytes() == PDF
    assert (quote_row.added_by, quote_row.stage) == ("smith", "request")
    # The next approver sees it with the case.
    nxt = w.one(BROWN)
    assert "budget-check.pdf" in nxt.body and digest[:16] in nxt.body
    # The used request answered again: refused, and its file is not attached either.
    answer(w, request, TAKAHASHI, "承認\n追加資料", {"late.pdf": b"%PDF-1.4 late"})
    used = w.one(TAKAHASHI)
    assert "受付できません" in used.subject
    assert ("  - late.pdf（13バイト）: ご返信を受け付けられなかったため、追加していません"
            in used.body)
    assert [a.filename for a in docs_of(w, number)] == ["quote.pdf", "budget-check.pdf"]
    text = case_show(w, tmp_path, number)
    assert shown(text, "budget-check.pdf", PDF) == (
        "added by Kenji Takahashi at 2026-11-02 09:00:00 UTC with decision:approve, round 1")
    assert shown(text, "quote.pdf", quote).startswith("added by John Smith at ")
    assert "forged.pdf" not in text
    assert re.search(r"documents\s+Kenji Takahashi.*with decision:approve \(round 1\): added "
                     rf"budget-check\.pdf \({len(PDF):,} bytes, sha256 {digest}\)", text)


def test_return_correct_reject_reapply(w: World, tmp_path: Path) -> None:
    v1, v2, v3 = (f"quotation v{i} ".encode() * 100 for i in (1, 2, 3))
    markup = b"%PDF-1.4 markup " * 50
    mail_with(w, SMITH, "Laptop", PURCHASE, {"quote.pdf": v1})
    number = number_of(w.one(SMITH))
    answer(w, w.one(TAKAHASHI), TAKAHASHI, "差し戻し\n見積書を更新してください",
           {"markup.pdf": markup})
    w.new(TAKAHASHI)
    assert "Changes requested" in w.one(SMITH).subject
    # Only a file that cannot be added: nothing changes, and the answer says why.
    mail_with(w, SMITH, f"correct {number}", "", {"run.bat": b"@echo off"})
    nothing = w.one(SMITH)
    assert "not done" in nothing.subject and "no new document" in nothing.body
    assert "  - run.bat (9 bytes): files of type .bat are not accepted" in nothing.body
    assert w.case(number).state == "returned"
    # `correct N` with only a file (no field lines) is how documents are added.
    mid = mail_with(w, SMITH, f"correct {number}", "Updated quotation attached.\n",
                    {"quote.pdf": v2})
    done = w.one(SMITH)
    assert "done" in done.subject
    assert f"  - quote.pdf ({len(v2):,} bytes, SHA-256 {hashlib.sha256(v2).hexdigest()[:16]}…)" \
        ": added to the case" in done.body
    again = w.one(TAKAHASHI)  # asked again, told what is new
    assert "new document: quote.pdf" in again.body
    # A command that adds no documents says so.
    mail_with(w, SMITH, f"status {number}", "", {"extra.pdf": b"%PDF extra"})
    status = w.one(SMITH)
    assert "  - extra.pdf (10 bytes): this command adds no documents" in status.body
    answer(w, again, TAKAHASHI, "却下\n予算外です", {})
    w.new(TAKAHASHI)
    assert w.case(number).state == "rejected"
    w.new(SMITH)
    # `correct` is for a returned case: refused, and the file is named as not added.
    mail_with(w, SMITH, f"correct {number}", "", {"late.pdf": b"%PDF late"})
    refused = w.one(SMITH)
    assert "not done" in refused.subject and "  - late.pdf (9 bytes): the command was not " \
        "carried out" in refused.body and '"reapply NUMBER" with the files' in refused.body
    # `reapply N` with files: a blocked type is refused and said so; the rest is attached.
    mail_with(w, SMITH, f"reapply {number}", "", {"quote.pdf": v3, "setup.exe": b"MZ\x90"})
    ack = w.one(SMITH)
    assert f"  - quote.pdf ({len(v3):,} bytes, SHA-256 " in ack.body
    assert "  - setup.exe (3 bytes): files of type .exe are not accepted" in ack.body
    rows = docs_of(w, number)
    assert [(a.filename, a.sha256, a.added_by, a.stage, a.round) for a in rows] == [
        ("quote.pdf", hashlib.sha256(v1).hexdigest(), "smith", "request", 1),
        ("markup.pdf", hashlib.sha256(markup).hexdigest(), "takahashi", "decision:return", 1),
        ("quote.pdf", hashlib.sha256(v2).hexdigest(), "smith", "correct", 1),
        ("quote.pdf", hashlib.sha256(v3).hexdigest(), "smith", "reapply", 2)]
    assert rows[2].inbound_id == inbound_with(w, mid)
    # Stamps and deliveries carry the latest document of each name.
    with w.app.store.transaction() as s:
        current = [(a.filename, a.stage) for a in current_documents(s, rows[0].case_id)]
    assert current == [("markup.pdf", "decision:return"), ("quote.pdf", "reapply")]
    text = case_show(w, tmp_path, number)
    assert shown(text, "quote.pdf", v1).endswith(
        "with request, round 1; replaced by the correct document of 2026-11-02 09:00:00 "
        "(not stamped or delivered)")
    assert shown(text, "quote.pdf", v2).endswith("replaced by the reapply document of "
                                                 "2026-11-02 09:00:00 (not stamped or delivered)")
    assert shown(text, "quote.pdf", v3) == \
        "added by John Smith at 2026-11-02 09:00:00 UTC with reapply, round 2"
    assert shown(text, "markup.pdf", markup).startswith("added by Kenji Takahashi at ")
    assert "setup.exe (file type .exe is not accepted)" in text  # in the history
    assert "late.pdf" not in text and "extra.pdf" not in text


def test_migration_records_existing_documents_as_the_requests(db_url: str) -> None:
    """Documents stored before stages existed came with the request, from whoever sent it
    (a proxy who entered the case, else the requester)."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        for cid, entered in ((1, None), (2, "sato")):
            conn.execute(sa.text(
                "INSERT INTO cases (id, number, case_type, title, requester_id, entered_by_id, "
                "state, fields, created_at, updated_at, thread_id, round, source_inbound_id) "
                "VALUES (:id, :n, 'travel', 't', 'tanaka', :e, 'approved', '{}', "
                "'2026-11-02 09:00:00+00:00', '2026-11-02 09:00:00+00:00', 'x', 1, :src)"),
                {"id": cid, "n": f"R-2026-00000{cid}", "e": entered, "src": 40 + cid})
            conn.execute(sa.text(
                "INSERT INTO attachments (case_id, added_at, filename, content_type, size, "
                "sha256) VALUES (:c, '2026-11-02 09:00:00+00:00', 'a.pdf', 'application/pdf', "
                "1, :h)"), {"c": cid, "h": f"{cid:064x}"})
        command.upgrade(cfg, "head")
    engine.dispose()
    store = Store(db_url)
    with store.transaction() as s:
        rows = [(a.case_id, a.added_by, a.stage, a.round, a.step_id, a.inbound_id)
                for a in s.scalars(select(Attachment).order_by(Attachment.case_id))]
    store.dispose()
    assert rows == [(1, "tanaka", "request", 1, None, 41), (2, "sato", "request", 1, None, 42)]
