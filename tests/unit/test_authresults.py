"""Sender authentication verdicts from Authentication-Results headers (RFC 8601)."""

from __future__ import annotations

import email.parser
import email.policy
import time

import pytest

from daemon.parsing.authresults import verify, verify_message

TRUSTED = ["mx.corp.example", "filter.corp.example"]
FROM = "sato@corp.example"
PASS = "mx.corp.example; dmarc=pass header.from=corp.example"


@pytest.mark.parametrize(
    ("headers", "ok", "why"),
    [
        ([PASS], True, "dmarc=pass"),
        (["mx.corp.example; dkim=pass header.d=corp.example header.s=s1"], True, "dkim=pass"),
        (["mx.corp.example; dkim=pass header.i=@mail.corp.example"], True, "dkim=pass"),
        (["mx.corp.example; spf=pass smtp.mailfrom=bounce@corp.example"], True, "spf=pass"),
        (["MX.Corp.Example (comment; with semicolon) ;\n dmarc=pass (p=reject)"
          " header.from=corp.example"], True, "dmarc=pass"),
        # A quoted property value may contain ";" and "=": the next result is still read.
        (['mx.corp.example; auth=pass smtp.auth="a;b=c"; dmarc=pass header.from=corp.example'],
         True, "dmarc=pass"),
        # ... and a ";" inside a quoted string or comment does not start a forged result.
        (['mx.corp.example; dkim=fail header.d=corp.example'
          ' header.b="x; dmarc=pass header.from=corp.example"'],
         False, "dkim=fail"),
        (["mx.corp.example; spf=none (x; dmarc=pass header.from=corp.example) smtp.helo=h"],
         False, "no aligned"),
        # Forged header claiming another server's id: ignored.
        (["evil.example; dmarc=pass header.from=corp.example"], False, "not from a trusted"),
        # Trusted server, but the pass is for someone else's domain (not aligned).
        (["mx.corp.example; dkim=pass header.d=attacker.example"], False, "no aligned"),
        (["mx.corp.example; dkim=pass header.d=example"], False, "no aligned"),
        (["mx.corp.example; dmarc=pass header.from=corp.example.attacker.example"], False,
         "no aligned"),
        (["mx.corp.example; dmarc=fail header.from=corp.example"], False, "dmarc=fail"),
        (["mx.corp.example; spf=softfail smtp.mailfrom=corp.example"], False, "no aligned"),
        ([], False, "no Authentication"),
        # Only the block of trusted headers at the very top counts: a trusted-looking header
        # below an untrusted one was written outside the company.
        (["evil.example; dmarc=fail", PASS], False, "not from a trusted"),
        (["mx.corp.example; none", "evil.example; none", PASS.replace("mx.", "filter.")],
         False, "no aligned"),
        # Two trusted servers at the top form one block (OpenDKIM + OpenDMARC, a filter).
        (["filter.corp.example; none", PASS], True, "dmarc=pass"),
        # A fail inside the block is final, whichever header says pass and in what order.
        ([PASS, "mx.corp.example; dmarc=fail header.from=corp.example"], False, "dmarc=fail"),
        (["mx.corp.example; dkim=fail header.d=corp.example", PASS], False, "dkim=fail"),
        (["mx.corp.example; spf=fail smtp.mailfrom=x@corp.example; dkim=pass header.d="
          "corp.example"], False, "spf=fail"),
        # A fail for a domain unrelated to the sender (a relay's own signature) is not ours.
        (["mx.corp.example; dkim=fail header.d=esp.example; dkim=pass header.d=corp.example"],
         True, "dkim=pass"),
        # A trusted header the grammar rejects is a refusal, not something to skip.
        (["mx.corp.example; dmarc=pass header.from=corp.example (unterminated", PASS], False,
         "unreadable"),
        (["mx.corp.example dmarc=pass header.from=corp.example"], False, "unreadable"),
        # An unreadable untrusted header on top still ends the block.
        (["(((", PASS], False, "not from a trusted"),
    ],
)
def test_verdicts(headers: list[str], ok: bool, why: str) -> None:
    verdict = verify(headers, FROM, TRUSTED)
    assert verdict.ok is ok, verdict
    assert why in verdict.why


def test_no_from_domain() -> None:
    assert not verify([PASS], "", TRUSTED).ok


def test_absurd_headers_are_refused_quickly() -> None:
    for value in ["mx.corp.example; dmarc=pass header.from=corp.example " + "(" * 5000,
                  "mx.corp.example; " + "dkim=pass header.d=x.example; " * 2000,
                  "mx.corp.example; dmarc=pass header.from=corp.example (" + "x" * 100_000]:
        assert not verify([value], FROM, TRUSTED).ok


def test_a_mail_stuffed_with_trusted_headers_is_refused_in_bounded_time() -> None:
    stuffed = ["mx.corp.example; dkim=pass" + " header.d=x.example" * 400] * 300
    started = time.monotonic()
    verdict = verify(stuffed, FROM, TRUSTED)
    assert not verdict.ok and "more than 16" in verdict.why
    assert time.monotonic() - started < 3
    assert verify([PASS] * 16, FROM, TRUSTED).ok


def test_message_order_is_top_first() -> None:
    raw = (b"Authentication-Results: mx.corp.example;\r\n dmarc=pass header.from=corp.example\r\n"
           b"Received: from outside\r\n"
           b"Authentication-Results: mx.corp.example; dmarc=fail header.from=corp.example\r\n"
           b"From: sato@corp.example\r\n\r\nbody\r\n")
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    # Both claim the trusted id and nothing separates them: the fail is final.
    assert not verify_message(msg, FROM, TRUSTED).ok
    forged_below = raw.replace(b"mx.corp.example; dmarc=fail", b"evil.example; none", 1)
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(forged_below)
    assert verify_message(msg, FROM, TRUSTED).ok
