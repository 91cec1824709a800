"""Key helpers shared by partner keys and the stamp key, so there is one fingerprint rule.

A fingerprint is the SHA-256 of the DER SubjectPublicKeyInfo: what a partner gets from
`openssl pkey -pubin -in key.pem -outform DER | openssl dgst -sha256`, so both sides can
compare it over the phone without any ringi tool.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

SHORT = 12  # hex digits shown in history lines; the full value is in the database


def spki_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_pem(key: PublicKeyTypes) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def fingerprint(key: PublicKeyTypes) -> str:
    return hashlib.sha256(spki_der(key)).hexdigest()


def short(hex_digest: str) -> str:
    """A readable prefix of a hash for history lines ("9f3c0a1b2c3d…")."""
    return hex_digest[:SHORT] + "…"
