"""Property tests of the parsers that read hostile mail: the MIME parser, the reply parser,
the strict sender parser and the Authentication-Results verifier never raise, never hang,
and keep their security promises for any input hypothesis can think of."""

from __future__ import annotations

import email.headerregistry
import email.policy
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from daemon.parsing.authresults import verify
from daemon.parsing.message import ParsedMail, parse_mail
from daemon.parsing.reply import Decision, extract_reply_text, parse_decision
from daemon.parsing.sender import read_sender

FAST = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def quick(limit: float = 2.0) -> Iterator[None]:
    """Per-call hang guard (hypothesis' own deadline is off: CI machines stall at random)."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < limit, "a parser must never hang"


def storable(*texts: str) -> None:
    for text in texts:
        text.encode("utf-8")  # no lone surrogates from undecoded 8-bit bytes


# --------------------------------------------------------------------------- MIME

HEADER_BITS = st.sampled_from([
    "From: ", "Sender: ", "Subject: ", "Content-Type: ", "Content-Transfer-Encoding: ",
    "multipart/mixed; boundary=b", "text/plain; charset=", "iso-2022-jp", "utf-8", "base64",
    "\r\n", "\r\n ", "\r\n\r\n", "--b\r\n", "--b--", "=?utf-8?b?", "=?iso-2022-jp?q?", "?=",
    "<", ">", "@", '"', "(", ")", ",", ":", ";", "\\", "\x1b$B", "\x1b(B", "a@b.example",
    "Boss <boss@corp.example>", "undisclosed:;", "\uff20", "山田",
])
MAILS = st.lists(st.one_of(HEADER_BITS, st.text(max_size=8)), max_size=40).map(
    lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))


def check_mail(mail: ParsedMail) -> None:
    assert isinstance(mail, ParsedMail)
    storable(mail.subject, mail.text, mail.from_name, mail.from_addr,
             *(a.filename for a in mail.attachments))
    if mail.sender_problem is None:
        # An accepted sender is one plain address; a refused one leaves nothing to answer.
        assert mail.from_addr.count("@") == 1 and mail.from_addr == mail.from_addr.lower()
        assert not any(c.isspace() for c in mail.from_addr)
    else:
        assert (mail.from_addr, mail.from_name) == ("", "")


@FAST
@given(st.binary(max_size=3000))
def test_parse_mail_takes_any_bytes(raw: bytes) -> None:
    with quick():
        check_mail(parse_mail(raw))


@FAST
@given(MAILS, st.sampled_from([None, "", "<>", "x@y.example"]))
def test_parse_mail_takes_mail_shaped_garbage(raw: bytes, envelope: str | None) -> None:
    with quick():
        check_mail(parse_mail(raw, envelope))


# --------------------------------------------------------------------------- From / Sender

FROM_ALPHABET = st.sampled_from([*'<>@,;:."()\\ \t[]=?_', "\r\n ", "\uff20", "\ufe6b", "\u200b",
                                 "\u3000", "山", "a", "Z", "9", "=?utf-8?q?", "?="])
FROM_VALUES = st.one_of(st.text(max_size=60), st.lists(FROM_ALPHABET, max_size=60).map("".join))


def visible(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cc", "Mn"))


@FAST
@given(st.lists(FROM_VALUES, max_size=3), st.lists(FROM_VALUES, max_size=2))
def test_read_sender_is_one_address_or_a_reason(froms: list[str], senders: list[str]) -> None:
    with quick():
        sender = read_sender(froms, senders)
    storable(sender.addr, sender.name, sender.problem or "")
    if sender.problem is None:
        assert len(froms) == 1 and len(senders) <= 1
        assert sender.addr.count("@") == 1
        # Whatever the name shows, it shows no address but the sender's own.
        pieces = re.split(r"[\s<>()\[\]\"',;:]+", visible(sender.name).lower())
        assert all(piece == sender.addr for piece in pieces if "@" in piece)
    else:
        assert (sender.addr, sender.name) == ("", "")


ADDRS = st.sampled_from(["taro@corp.example", "boss@corp.example", "a.b-c@mail.corp.example"])
NAMES = st.lists(st.one_of(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    st.sampled_from([*'@＠﹫"\\(),:;<>. ', "boss@corp.example", "taro@corp.example"])),
    max_size=30).map("".join)


@settings(FAST, max_examples=80)
@given(NAMES, ADDRS)
def test_display_names_written_by_a_mail_library(name: str, addr: str) -> None:
    """A From written properly (quoted, RFC 2047 encoded, folded) by Python's own generator:
    accepted exactly when the name shows no other address, and then the name survives."""
    msg = EmailMessage(policy=email.policy.SMTP)
    try:
        msg["From"] = email.headerregistry.Address(display_name=name, addr_spec=addr)
        msg["Subject"] = "x"
        raw = msg.as_bytes()
    except Exception:
        assume(False)  # the generator itself refuses this name
        raise
    with quick():
        mail = parse_mail(raw)
    pieces = re.split(r"[\s<>()\[\]\"',;:]+", visible(name).lower())
    hidden = any("@" in piece and piece != addr for piece in pieces)
    if hidden:
        assert mail.from_addr == "" and mail.sender_problem is not None
    else:
        assert mail.sender_problem is None, (raw, mail.sender_problem)
        assert mail.from_addr == addr
        assert mail.from_name.split() == name.strip().split() or not name.strip()


# --------------------------------------------------------------------------- replies

REPLY_BITS = st.sampled_from([
    "承認", "承認します", "却下", "APPROVE", "reject", "hold", "\n", "\r\n", "> ", ">", " ",
    "On Mon, 2 Nov 2026 at 09:00, ringi <ringi@example.com> wrote:", "-----Original Message-----",
    "From: x", "差出人:", "理由:", "?", "？", "\u3000", "\ufeff", "\u202e", "-- ", "________",
])


@FAST
@given(st.one_of(st.text(max_size=400), st.lists(st.one_of(REPLY_BITS, st.text(max_size=5)),
                                                 max_size=60).map("".join)))
def test_reply_parser_takes_any_text(text: str) -> None:
    with quick():
        own = extract_reply_text(text)
        decision = parse_decision(text)
    assert isinstance(own, str)
    if decision is not None:
        assert isinstance(decision.decision, Decision) and isinstance(decision.reason, str)


# --------------------------------------------------------------------------- A-R

TRUSTED = ["mx.corp.example"]
FROM = "sato@corp.example"
AR_BITS = st.sampled_from([
    "mx.corp.example", "evil.example", "; ", ";", " ", "dmarc=pass", "dmarc=fail", "dkim=pass",
    "dkim=fail", "spf=pass", "spf=fail", "none", " header.from=corp.example",
    " header.d=corp.example", " header.i=@corp.example", " smtp.mailfrom=x@corp.example",
    ' header.b="a;b=c"', " (", ")", '"', "\\", "=", ".", "/1", "\r\n ", "reason=", "x.y=z",
])
AR_VALUES = st.one_of(st.text(max_size=80), st.lists(AR_BITS, max_size=25).map("".join))
HEADER_LISTS = st.lists(AR_VALUES, max_size=4)


def judge(headers: list[str]) -> Callable[[], Any]:
    return lambda: verify(headers, FROM, TRUSTED)


@FAST
@given(HEADER_LISTS, HEADER_LISTS)
def test_verifier_reads_only_the_trusted_top(top: list[str], below: list[str]) -> None:
    with quick():
        verdict = verify(top, FROM, TRUSTED)
    assert isinstance(verdict.why, str)
    if verdict.ok:  # a pass needs a trusted header on top that says so for this domain
        assert "mx.corp.example" in top[0].lower()
        assert "pass" in " ".join(top).lower()
    untrusted = "evil.example; dmarc=pass header.from=corp.example"
    # An untrusted header on top: nothing below it can authenticate the sender.
    with quick():
        assert not verify([untrusted, *top], FROM, TRUSTED).ok
    # Whatever sits below an untrusted header never changes the verdict.
    with quick():
        cut = verify([*top, untrusted, *below], FROM, TRUSTED)
        assert cut == verify([*top, untrusted], FROM, TRUSTED)
    # A trusted fail on top is final.
    fail = "mx.corp.example; dmarc=fail header.from=corp.example"
    with quick():
        assert not verify([fail, *top], FROM, TRUSTED).ok
