"""Sender authentication from Authentication-Results (RFC 8601) added by trusted servers.

Anyone can write an Authentication-Results header into a message; what makes one worth
believing is *where* it sits. Each server that handles a mail adds its header at the top,
so reading from the top down we meet first the headers of our own servers (the company's
border MTA and anything behind it) and only below them whatever came from outside. Only
that contiguous run of trusted headers at the top counts ("the trusted block"): the first
header from an id that is not trusted ends it, and nothing below is read, because a header
claiming a trusted id below an untrusted one was written by someone else. The border MTA
must also remove incoming headers that claim its own id (docs/operations.md), otherwise a
forged one would sit directly under the real one, inside the block.

Parsing uses the ``authres`` library (an RFC 8601 grammar: quoted strings, comments,
property values containing ``;`` or ``=``). A header it cannot read counts as no pass; a
trusted header we cannot read is a refusal, not something to skip.

Inside the block a sender is authenticated when DMARC passed for the From domain, or
DKIM/SPF passed for a domain aligned with it (the same domain, or one a parent of the other).
A ``dmarc=fail`` or a ``dkim``/``spf`` fail for an aligned domain is final, even if another
trusted header of the block says pass.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import authres
import authres.core

__all__ = ["AuthVerdict", "verify", "verify_message"]

_MAX_HEADER = 8192  # the parser copies its input per token; longer headers are not real
_MAX_BLOCK = 16  # trusted headers in a row; real borders write one to four


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


def _authserv_guess(value: str) -> str:
    """The authserv-id of a header the grammar rejected, read leniently to place it."""
    head = _strip_comments(value).split(";", 1)[0].split()
    return head[0].lower() if head else ""


_FEATURES = authres.all_features()  # RFC 8601 core plus DMARC, ARC, DKIM extensions


class _StrictHeader(authres.core.AuthenticationResultsHeader):  # type: ignore[misc]
    """authres skips malformed properties by default; a dropped header.d could hide a fail."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.strict = True


def _parse(value: str) -> Any | None:
    if len(value) > _MAX_HEADER:
        return None
    try:
        return _StrictHeader.parse_value(_FEATURES, value)
    except Exception:  # authres.AuthResError, and RecursionError on absurd nesting
        return None


def _domain(value: str) -> str:
    return value.strip().strip('"').rpartition("@")[2].lower().rstrip(".")


def _aligned(domain: str, from_domain: str) -> bool:
    """Same domain, or one is a subdomain of the other (a two-label parent at least)."""
    if not domain:
        return False
    if domain == from_domain:
        return True
    short, long = sorted((domain, from_domain), key=len)
    return long.endswith("." + short) and short.count(".") >= 1


def _props(result: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for prop in getattr(result, "properties", None) or []:
        key = f"{prop.type}.{prop.name}".lower()
        out.setdefault(key, str(prop.value or ""))
    return out


def _judge(result: Any, from_domain: str) -> tuple[str, str] | None:
    """("pass"|"fail", description) for a result that matters for this From domain."""
    method = str(getattr(result, "method", "") or "").lower()
    outcome = str(getattr(result, "result", "") or "").lower()
    props = _props(result)
    if method == "dmarc":
        header_from = _domain(props.get("header.from", ""))
        if outcome == "fail":
            return "fail", f"dmarc=fail ({header_from or 'no header.from'})"
        if outcome == "pass" and header_from == from_domain:
            return "pass", "dmarc=pass"
        return None
    if method == "dkim":
        domain = _domain(props.get("header.d") or props.get("header.i", ""))
    elif method == "spf":
        domain = _domain(props.get("smtp.mailfrom", ""))
    else:
        return None
    if outcome in ("pass", "fail") and _aligned(domain, from_domain):
        return outcome, f"{method}={outcome} ({domain})"
    return None


def verify(headers: Iterable[str], from_addr: str, trusted_ids: Iterable[str]) -> AuthVerdict:
    """Judge the raw Authentication-Results values of one mail, given top (newest) first."""
    trusted = {t.strip().lower() for t in trusted_ids if t.strip()}
    from_domain = from_addr.rpartition("@")[2].lower().rstrip(".")
    if not from_domain:
        return AuthVerdict(False, "no From domain")
    block: list[tuple[str, Any]] = []
    first_id: str | None = None
    for raw in headers:
        value = re.sub(r"\r?\n(?=[ \t])", "", raw).strip()
        parsed = _parse(value)
        authserv_id = str(parsed.authserv_id).lower() if parsed is not None \
            else _authserv_guess(value)
        first_id = authserv_id if first_id is None else first_id
        if authserv_id not in trusted:
            break  # everything from here down was written outside our servers
        if parsed is None:
            return AuthVerdict(False, f"unreadable Authentication-Results from {authserv_id}")
        block.append((authserv_id, parsed))
        if len(block) > _MAX_BLOCK:  # bounded work for a mail stuffed with such headers
            return AuthVerdict(False, f"more than {_MAX_BLOCK} Authentication-Results "
                                      "from trusted servers")
    if not block:
        if first_id is None:
            return AuthVerdict(False, "no Authentication-Results from a trusted server")
        return AuthVerdict(False, "the topmost Authentication-Results is not from a trusted "
                                  f"server ({first_id[:80]!r})")
    verdicts = [(judged, authserv_id) for authserv_id, header in block
                for result in header.results
                if (judged := _judge(result, from_domain)) is not None]
    for (outcome, what), authserv_id in verdicts:
        if outcome == "fail":
            return AuthVerdict(False, f"{what} by {authserv_id}")
    if verdicts:  # no fail above: every remaining verdict is a pass
        (_, what), authserv_id = verdicts[0]
        return AuthVerdict(True, f"{what} by {authserv_id}")
    return AuthVerdict(False, f"no aligned dmarc/dkim/spf pass for {from_domain}")


def verify_message(msg: email.message.Message, from_addr: str,
                   trusted_ids: Iterable[str]) -> AuthVerdict:
    """verify() over a parsed mail's raw headers, in the order they appear (top first)."""
    try:
        values = [str(v) for k, v in msg.raw_items() if k.lower() == "authentication-results"]
    except Exception:
        values = []
    return verify(values, from_addr, trusted_ids)
