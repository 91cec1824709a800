"""Sender authentication verdicts from Authentication-Results headers."""

from __future__ import annotations

import pytest

from daemon.parsing.authresults import verify

TRUSTED = ["mx.corp.example"]
FROM = "sato@corp.example"


@pytest.mark.parametrize(
    ("headers", "ok", "why"),
    [
        (["mx.corp.example; dmarc=pass header.from=corp.example"], True, "dmarc=pass"),
        (["mx.corp.example; dkim=pass header.d=corp.example header.s=s1"], True, "dkim=pass"),
        (["mx.corp.example; dkim=pass header.i=@mail.corp.example"], True, "dkim=pass"),
        (["mx.corp.example; spf=pass smtp.mailfrom=bounce@corp.example"], True, "spf=pass"),
        (["MX.Corp.Example (comment; with semicolon) ;\n dmarc=pass (p=reject)"
          " header.from=corp.example"], True, "dmarc=pass"),
        # Forged header claiming another server's id: ignored.
        (["evil.example; dmarc=pass header.from=corp.example"], False, "no Authentication"),
        # Trusted server, but the pass is for someone else's domain (not aligned).
        (["mx.corp.example; dkim=pass header.d=attacker.example"], False, "no aligned"),
        (["mx.corp.example; dmarc=pass header.from=corp.example.attacker.example"], False,
         "no aligned"),
        (["mx.corp.example; dmarc=fail header.from=corp.example"], False, "no aligned"),
        (["mx.corp.example; spf=softfail smtp.mailfrom=corp.example"], False, "no aligned"),
        ([], False, "no Authentication"),
        # A trusted header among untrusted ones is still found.
        (["evil.example; dmarc=fail", "mx.corp.example; dmarc=pass header.from=corp.example"],
         True, "dmarc=pass"),
    ],
)
def test_verdicts(headers: list[str], ok: bool, why: str) -> None:
    verdict = verify(headers, FROM, TRUSTED)
    assert verdict.ok is ok
    assert why in verdict.why


def test_no_from_domain() -> None:
    assert not verify(["mx.corp.example; dmarc=pass header.from=corp.example"], "", TRUSTED).ok
