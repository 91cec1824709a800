"""Composing never raises and never lets a text become a header line, for any Unicode."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.clock import FrozenClock
from daemon.config import MailConfig
from daemon.notify.compose import Composer, OutgoingFile, body_text, clean_line, header_text
from daemon.notify.templates import Rendered
from daemon.outbox.addresses import Unsendable, envelope
from daemon.outbox.outbox import wire_bytes
from daemon.outbox.transport import FileTransport
from daemon.workqueue.queue import PermanentError

COMPOSER = Composer(MailConfig(request_address="ringi@example.com"),
                    FrozenClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC)))
HEADERS = {"from", "to", "subject", "date", "message-id", "auto-submitted",
           "x-auto-response-suppress", "content-type", "mime-version"}
# Every code point, surrogates and controls included (hypothesis leaves Cs out by default).
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=200)


@pytest.mark.parametrize(("raw", "clean"), [
    ("  New\tlaptop \r\n for\u2028Kyoto ", "New laptop for Kyoto"),
    ("a\x00b\x07c\x1b[0md\x7f\x9b", "abc[0md"),
    ("bad \udcff decode \ud83f", "bad \ufffd decode \ufffd"),
    ("Invoice \u202efdp.exe\u2066\u2069", "Invoice fdp.exe"),
    ("出張　申請", "出張　申請"),  # the ideographic space is part of Japanese text
    ("=?utf-8?q?x?=", "=?utf-8?q?x?="),  # a title keeps what was written
    ("x" * 500, "x" * 199 + "\u2026"),
    ("\x00\u202e\r\n", ""),
])
def test_clean_line(raw: str, clean: str) -> None:
    assert clean_line(raw) == clean


def test_header_text_keeps_encoded_word_look_alikes_literal() -> None:
    assert header_text("a =?utf-8?q?b?= c") == "a =\u2060?utf-8?q?b?= c"


def _compose(subject: str, body: str, name: str, to: str = "bob@example.com") -> bytes:
    msg = COMPOSER.compose(Rendered(subject, body), to, name, reply_to=name,
                           attachments=[OutgoingFile(name or "f", "text", "plain", b"x")])
    return wire_bytes(msg)


@settings(max_examples=60, deadline=None)
@given(subject=ANY_TEXT, body=ANY_TEXT, name=ANY_TEXT)
def test_any_text_composes_and_stays_in_its_header(subject: str, body: str, name: str) -> None:
    raw = _compose(subject, body, name)
    back = email.message_from_bytes(raw, policy=email.policy.default)
    names = [k.lower() for k in back]
    assert set(names) - {"reply-to"} == HEADERS and len(names) == len(set(names))
    assert [a.addr_spec for a in back["To"].addresses] == ["bob@example.com"]
    # Compared without spaces: a folded encoded word may gain a space in Python's reading.
    assert "".join(str(back["Subject"]).split()) == "".join(header_text(subject).split())
    text = back.get_body(("plain",))
    assert text is not None
    got = str(text.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]
    assert got.rstrip("\n") == body_text(body).rstrip("\n") or not body_text(body).strip()


def test_a_huge_subject_of_encoded_words_folds() -> None:
    raw = _compose(" ".join(["=?utf-8?q?=E6=97=A5?="] * 3000) + "日" * 5000, "b\n", "")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert len(str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])) \
        <= 1000


@pytest.mark.parametrize(("addr", "sent", "utf8"), [
    ("bob@example.com", "bob@example.com", False),
    ("o'brien+x@sub.example.co.jp", "o'brien+x@sub.example.co.jp", False),
    ("bob@bücher.example", "bob@xn--bcher-kva.example", False),
    ("satō@example.com", "satō@example.com", True),
    ("田中@例え.jp", "田中@xn--r8jz45g.jp", True),
])
def test_sendable_addresses(addr: str, sent: str, utf8: bool) -> None:
    env = envelope(addr)
    assert (env.address, env.utf8) == (sent, utf8)


@pytest.mark.parametrize("addr", [
    "", "bob", "bob@", "@example.com", "a b@example.com", "bob@exa mple.com", "<x>@y",
    "bob@example.com\r\nBcc: x@y", "bob..x@example.com", ".bob@example.com",
    "bob@-example.com", "bob@example..com", '"quoted"@example.com', "a,b@example.com",
    "bob@\udcff.example", "x" * 65 + "@example.com", "bob@" + "a" * 64 + ".com",
])
def test_unsendable_addresses(addr: str) -> None:
    with pytest.raises(Unsendable):
        envelope(addr)


def test_unsendable_address_still_composes_and_fails_permanently(tmp_path: Path) -> None:
    raw = _compose("s", "b\n", "Bob", to="bob at example.com")
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["To"].addresses == ()  # written as an empty group, never a guess
    with pytest.raises(PermanentError, match="unsendable address"):
        FileTransport(tmp_path / "out").send("bob at example.com", raw)
    assert list((tmp_path / "out").glob("*.eml")) == []


def test_non_ascii_local_part_is_serialised_for_smtputf8() -> None:
    raw = _compose("s", "b\n", "Satō", to="satō@example.com")
    assert b"To: sat\xc5\x8d@example.com\r\n" in raw
