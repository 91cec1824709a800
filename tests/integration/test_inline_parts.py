"""Files sent "inline" with a name, as Apple Mail and Outlook send pasted images and PDFs,
are documents of the stage like any attachment (request, decision reply, correct,
reapply), end to end over SMTP; an HTML body's cid: image without a name stays part of
the body and is not kept."""

from __future__ import annotations

import email.utils
import hashlib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.store.models import Attachment, Case
from tests.integration.test_outcomes import (
    PURCHASE,
    SMITH,
    TAKAHASHI,
    World,
    number_of,
    start_world,
)
from tests.support import REQUEST, Captured, CapturingRelay

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # a pasted photo of a receipt
SCAN = b"%PDF-1.4 scanned estimate " * 40
LOGO = b"GIF89a signature logo"


@pytest.fixture
def w(tmp_path: Path, db_url: str, relay: CapturingRelay) -> Iterator[World]:
    world = start_world(tmp_path, db_url, relay)
    yield world
    world.app.stop()


def pasted(sender: str, subject: str, text: str, named: dict[str, bytes],
           to: str = REQUEST, in_reply_to: str | None = None) -> EmailMessage:
    """An HTML mail with pasted files as Apple Mail writes it: multipart/alternative whose
    HTML half is multipart/related, each pasted file an inline part with a filename and a
    Content-ID the HTML shows; plus a signature logo by cid: with no filename."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    msg.set_content(text)
    cids = {name: email.utils.make_msgid(domain="example.com") for name in named}
    images = "".join(f'<img src="cid:{cid[1:-1]}">' for cid in cids.values())
    html = "<br>".join(text.splitlines())
    msg.add_alternative(f"<html><body>{html}{images}<img src=\"cid:logo\"></body></html>",
                        subtype="html")
    related = msg.get_payload()[1]  # type: ignore[index]
    for name, data in named.items():
        maintype, subtype = ("application", "pdf") if name.endswith(".pdf") else \
            ("image", "png")
        related.add_related(data, maintype, subtype, cid=cids[name], disposition="inline",
                            filename=name)
    related.add_related(LOGO, "image", "gif", cid="<logo>")
    logo = related.get_payload()[-1]
    del logo["Content-Disposition"]  # what makes it decoration: no name, no disposition
    return msg


def send(w: World, msg: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", w.port) as c:
        c.send_message(msg)


def docs(w: World, number: str) -> list[tuple[str, str, str, str]]:
    with w.app.store.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case is not None
        return [(a.filename, a.content_type, a.sha256, a.stage) for a in s.scalars(
            select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.id))]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_inline_named_parts_are_documents_of_each_stage(w: World) -> None:
    send(w, pasted(SMITH, "Laptop", PURCHASE, {"receipt.png": PHOTO}))
    ack = w.one(SMITH)
    number = number_of(ack)
    assert f"Attachment: receipt.png ({len(PHOTO)} bytes, SHA-256 {sha(PHOTO)[:16]}…)" \
        in ack.body
    assert docs(w, number) == [("receipt.png", "image/png", sha(PHOTO), "request")]
    # The approver returns it with a pasted scan (Outlook: inline PDF with a name).
    ask: Captured = w.one(TAKAHASHI)
    send(w, pasted(TAKAHASHI, "Re: " + ask.subject, "差し戻し\n見積書を付けてください",
                   {"estimate.pdf": SCAN}, to=str(ask.message["Reply-To"]),
                   in_reply_to=str(ask.message["Message-ID"])))
    w.new(TAKAHASHI)
    assert "Changes requested" in w.one(SMITH).subject
    # The requester corrects with a second pasted photo.
    again = PHOTO + b"v2"
    send(w, pasted(SMITH, f"correct {number}", "New receipt pasted below.",
                   {"receipt.png": again}))
    done = w.one(SMITH)
    assert "done" in done.subject
    assert f"  - receipt.png ({len(again):,} bytes, SHA-256 {sha(again)[:16]}…)" \
        ": added to the case" in done.body
    assert docs(w, number) == [
        ("receipt.png", "image/png", sha(PHOTO), "request"),
        ("estimate.pdf", "application/pdf", sha(SCAN), "decision:return"),
        ("receipt.png", "image/png", sha(again), "correct"),
    ]
    # The unnamed cid: logo of every mail is part of the HTML body, never a document.
    assert all(name != "attachment-1" and sha_ != sha(LOGO)
               for name, _, sha_, _ in docs(w, number))
