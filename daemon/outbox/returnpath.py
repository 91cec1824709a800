"""VERP return paths: each outgoing mail's envelope sender names that mail, signed.

A mail ringi sends leaves with `MAIL FROM:<local+bounce-ID-MAC@domain>`, where ID is the
outbound mail's row id and MAC the first 80 bits of an HMAC-SHA256 over it, keyed with a key
derived from the reply-token key. A bounce delivered to that address names the exact mail
that failed, and nobody without the key can make an address that names another mail. The
same base local part as reply addresses (`ringi+TOKEN@`) is used on purpose: the MTA rule
that already routes `ringi+anything` to ringi routes bounces too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from daemon.config import MailConfig

MAC_CHARS = 16  # base32: 80 bits
_TAG = re.compile(rf"^bounce-([1-9][0-9]{{0,18}})-([a-z2-7]{{{MAC_CHARS}}})$")


def bounce_tag_shape(tag: str) -> bool:
    """True for something that looks like a return-path tag (the MAC is checked later)."""
    return bool(_TAG.match(tag.lower()))


class ReturnPaths:
    def __init__(self, key: bytes, cfg: MailConfig) -> None:
        # A key of its own, so a return path can never be replayed as anything else.
        self._key = hmac.new(key, b"ringi return path v1", hashlib.sha256).digest()
        self.cfg = cfg

    def _mac(self, mail_id: int) -> str:
        digest = hmac.new(self._key, str(mail_id).encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode().lower()[:MAC_CHARS]

    def address(self, mail_id: int) -> str:
        """The envelope sender for outbound mail `mail_id`."""
        return f"{self.cfg.local_part}+bounce-{mail_id}-{self._mac(mail_id)}@{self.cfg.domain}"

    def is_return_path(self, address: str) -> bool:
        """Shaped like one of our return paths (any MAC)."""
        local, _, domain = address.lower().rpartition("@")
        base, plus, tag = local.partition("+")
        return domain == self.cfg.domain and bool(plus) and base == self.cfg.local_part \
            and bounce_tag_shape(tag)

    def mail_id(self, address: str) -> int | None:
        """The outbound mail an address names, or None when its MAC is wrong (forged)."""
        if not self.is_return_path(address):
            return None
        m = _TAG.match(address.lower().rpartition("@")[0].partition("+")[2])
        assert m is not None
        mail_id = int(m.group(1))
        return mail_id if hmac.compare_digest(m.group(2), self._mac(mail_id)) else None
