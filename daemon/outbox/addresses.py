"""Can this address be sent to, and how: one check shared by composing and the transports.

An address that no relay could take (spaces, brackets, no domain, a CR/LF) is refused here
as permanent, before any relay is asked, so it fails once instead of being retried. A
non-ASCII domain is written in its ASCII (IDNA) form; a non-ASCII local part needs a relay
that offers SMTPUTF8 (RFC 6531).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemon.security.text import LINE_SEPARATORS, has_controls

# RFC 5322 atext, plus any non-ASCII character (RFC 6532 UTF8-non-ascii).
_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_LITERAL = re.compile(r"^\[[0-9A-Fa-f:.]+\]$|^\[IPv6:[0-9A-Fa-f:.]+\]$")


class Unsendable(ValueError):
    """No relay can take this address; retrying cannot help."""


@dataclass(frozen=True)
class Envelope:
    address: str  # as written in RCPT TO and the To header
    utf8: bool  # the local part is not ASCII: the relay must offer SMTPUTF8


def envelope(addr: str) -> Envelope:
    """The address as sent, or Unsendable saying why not."""
    # A space is refused too: no relay takes an unquoted one in a mailbox.
    if not addr or has_controls(addr, also=" " + LINE_SEPARATORS):
        raise Unsendable(f"{addr!r} contains spaces or control characters")
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise Unsendable(f"{addr!r} is not local-part@domain")
    if not all(_ATOM.match(part) for part in local.split(".")):
        raise Unsendable(f"{addr!r}: the local part is not a plain dot-atom")
    if len(local.encode("utf-8")) > 64:
        raise Unsendable(f"{addr!r}: the local part is longer than 64 octets")
    domain = _ascii_domain(addr, domain)
    out = f"{local}@{domain}"
    if len(out.encode("utf-8")) > 254:
        raise Unsendable(f"{addr!r} is longer than 254 octets")
    return Envelope(out, not local.isascii())


def _ascii_domain(addr: str, domain: str) -> str:
    if _LITERAL.match(domain):
        return domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise Unsendable(f"{addr!r}: the domain cannot be written in ASCII (IDNA)") \
                from None
    labels = domain.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise Unsendable(f"{addr!r}: {domain!r} is not a valid domain name")
    return domain.rstrip(".")
