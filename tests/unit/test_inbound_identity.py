"""What makes two deliveries the same mail (daemon/intake/duplicates.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from daemon.config import MailConfig
from daemon.intake.duplicates import Dedupe

DEDUPE = Dedupe.from_config(MailConfig(request_address="ringi@example.com"))
TOKEN = "a" * 32
OTHER_TOKEN = "b" * 32

MAIL = (b"From: Tanaka <tanaka@example.com>\r\nTo: ringi@example.com\r\n"
        b"Subject: Trip\r\nDate: Mon, 2 Nov 2026 09:00:00 +0900\r\n"
        b"Message-ID: <abc@example.com>\r\n"
        b"Authentication-Results: mx.example.com; dmarc=pass header.from=example.com\r\n"
        b"\r\nType: travel\r\nAmount: 9800\r\n")


def key(raw: bytes, sender: str = "tanaka@example.com",
        rcpts: tuple[str, ...] = ("ringi@example.com",)) -> str:
    return DEDUPE.identify(sender, list(rcpts), raw).key


def test_window_comes_from_config() -> None:
    cfg = MailConfig(request_address="ringi@example.com", duplicate_window_days=2)
    assert Dedupe.from_config(cfg).window == timedelta(days=2)
    assert DEDUPE.window == timedelta(days=7)
    for bad in (0, -1, 3651, "a week"):
        with pytest.raises(ValidationError):
            MailConfig.model_validate({"duplicate_window_days": bad})


def test_a_resend_with_new_trace_fields_and_line_ends_is_the_same_mail() -> None:
    resent = (b"Return-Path: <tanaka@example.com>\r\nDelivered-To: ringi@example.com\r\n"
              b"Received: from mx2.example.com\r\n\tby ringi; Mon, 2 Nov 2026 09:05:00\r\n"
              b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.com; b=xyz\r\n"
              b"X-Spam-Status: No, score=-0.1\r\nX-MS-Exchange-Organization-SCL: 1\r\n"
              + MAIL)
    assert key(resent) == key(MAIL)
    assert key(MAIL.replace(b"\r\n", b"\n") + b"\n") == key(MAIL)
    # The envelope sender's spelling and brackets do not matter either.
    assert key(MAIL, sender="<Tanaka@Example.COM>") == key(MAIL)


def test_a_reused_message_id_with_another_body_is_another_mail() -> None:
    changed = MAIL.replace(b"Amount: 9800", b"Amount: 98000")
    first = DEDUPE.identify("tanaka@example.com", [], MAIL)
    second = DEDUPE.identify("tanaka@example.com", [], changed)
    assert first.key != second.key
    assert first.message_key == second.message_key is not None
    assert first.message_id == "<abc@example.com>"


def test_what_the_author_or_the_verdict_changed_makes_another_mail() -> None:
    assert key(MAIL.replace(b"Subject: Trip", b"Subject: Trip 2")) != key(MAIL)
    # Another authentication verdict is judged on its own, never swallowed as a resend.
    assert key(MAIL.replace(b"dmarc=pass", b"dmarc=fail")) != key(MAIL)
    assert key(MAIL, sender="smith@example.com") != key(MAIL)
    # Headers ringi decides on are never trace: an auto-reply is not the mail it copies.
    assert key(b"Auto-Submitted: auto-replied\r\n" + MAIL) != key(MAIL)


def test_without_message_id_the_content_decides() -> None:
    bare = MAIL.replace(b"Message-ID: <abc@example.com>\r\n", b"")
    ident = DEDUPE.identify("tanaka@example.com", [], bare)
    assert ident.message_id == "" and ident.message_key is None
    assert key(b"Received: by relay\r\n" + bare) == key(bare)
    assert key(bare.replace(b"09:00:00", b"09:00:01")) != key(bare)
    assert key(bare) != key(MAIL)


def test_empty_envelope_sender_uses_from() -> None:
    ident = DEDUPE.identify("", [], MAIL)
    assert ident.sender == "tanaka@example.com"
    assert DEDUPE.identify("<>", [], MAIL).key == ident.key


def test_reply_address_recipients_count_others_do_not() -> None:
    reply = f"ringi+{TOKEN}@example.com"
    smtp = key(MAIL, rcpts=(reply,))
    # IMAP takes its recipients from the headers: other people and the plain address too.
    assert key(MAIL, rcpts=("boss@example.com", reply.upper(), "ringi@example.com")) == smtp
    # One mail split per recipient by an MTA: two reply addresses are two decisions.
    assert key(MAIL, rcpts=(f"ringi+{OTHER_TOKEN}@example.com",)) != smtp
    assert key(MAIL, rcpts=()) == key(MAIL, rcpts=("boss@example.com",)) != smtp


@given(st.binary(max_size=400), st.text(max_size=40))
def test_any_bytes_get_an_identity(raw: bytes, sender: str) -> None:
    ident = DEDUPE.identify(sender, [sender], raw)
    assert len(ident.key) == 64
    assert ident.key == DEDUPE.identify(sender, [sender], raw.replace(b"\r\n", b"\n")).key
    assert ident.key == DEDUPE.identify(sender, [sender], raw.replace(b"\n", b"\r\n")).key
