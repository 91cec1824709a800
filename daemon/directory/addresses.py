"""Plain local@domain address checks, apart from the loader because they need no file context."""

from __future__ import annotations

import email.errors
import re
from email.headerregistry import Address

_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"  # letters/digits (any script), inner '-' or '_'
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def email_problem(address: str) -> str | None:
    """Why ``address`` is not a plain ``local@domain`` address, or None if it is."""
    if any(ch.isspace() for ch in address):
        return "contains whitespace"
    if address.count("@") != 1:
        return "must contain exactly one '@'"
    local, domain = address.split("@")
    if not local or not domain:
        return "needs a non-empty local part and domain"
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, email.errors.HeaderParseError):
        return "is not a valid address"
    if parsed.addr_spec != address:  # quoting or comments: not a plain address
        return "is not a plain local@domain address"
    if not _DOMAIN.fullmatch(domain):  # RFC 5322 allows "a@!", mail routing does not
        return "has an invalid domain"
    return None
