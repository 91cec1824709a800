"""Sender authentication from Authentication-Results (RFC 8601) added by trusted servers.

Only headers whose authserv-id is on the trusted list count: anyone can write such a header
into a message, but the company's own MTA removes or overrides headers claiming its id.
A sender is authenticated when DMARC passed for the From domain, or DKIM/SPF passed for a
domain aligned with it (the same domain or a subdomain of it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_RESULT_RE = re.compile(r"\b(dmarc|dkim|spf)\s*=\s*([a-z]+)\b([^;]*)", re.IGNORECASE)
_PROP_RE = re.compile(r"\b(header\.from|header\.d|header\.i|smtp\.mailfrom)\s*=\s*([^\s;]+)",
                      re.IGNORECASE)


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    why: str


def _strip_comments(value: str) -> str:
    depth, out = 0, []
    for ch in value:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out)


def _aligned(domain: str, from_domain: str) -> bool:
    domain = domain.lower().rstrip(".").split("@")[-1]
    return domain == from_domain or from_domain.endswith("." + domain) or \
        domain.endswith("." + from_domain)


def verify(headers: Iterable[str], from_addr: str, trusted_ids: Iterable[str]) -> AuthVerdict:
    trusted = {t.lower() for t in trusted_ids}
    from_domain = from_addr.rpartition("@")[2].lower()
    if not from_domain:
        return AuthVerdict(False, "no From domain")
    seen_trusted = False
    for raw in headers:
        value = _strip_comments(" ".join(raw.split()))
        authserv, _, rest = value.partition(";")
        authserv_id = authserv.strip().split()[0].lower() if authserv.strip() else ""
        if authserv_id not in trusted:
            continue
        seen_trusted = True
        for method, result, props in _RESULT_RE.findall(rest):
            if result.lower() != "pass":
                continue
            for name, val in _PROP_RE.findall(props):
                name = name.lower()
                if method.lower() == "dmarc" and name == "header.from" and \
                        val.lower() == from_domain:
                    return AuthVerdict(True, f"dmarc=pass by {authserv_id}")
                if method.lower() == "dkim" and name in ("header.d", "header.i") and \
                        _aligned(val, from_domain):
                    return AuthVerdict(True, f"dkim=pass ({val}) by {authserv_id}")
                if method.lower() == "spf" and name == "smtp.mailfrom" and \
                        _aligned(val, from_domain):
                    return AuthVerdict(True, f"spf=pass ({val}) by {authserv_id}")
    if not seen_trusted:
        return AuthVerdict(False, "no Authentication-Results from a trusted server")
    return AuthVerdict(False, f"no aligned dmarc/dkim/spf pass for {from_domain}")
