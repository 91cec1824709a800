"""The password envelope: a delivery's archive password encrypted to the partner's RSA key.

RSA-OAEP with SHA-256 (and MGF1 SHA-256) is what `openssl pkeyutl -decrypt` opens with
`-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256`,
so a partner needs only OpenSSL and its private key. Keys under 3072 bits are refused
(below the 128-bit security level the archive's AES-256 would otherwise offer).
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

MIN_RSA_BITS = 3072


class PartnerKeyError(ValueError):
    """The partner's key cannot be used; the message says why."""


def _load(public_key_pem: bytes) -> rsa.RSAPublicKey:
    if b"PRIVATE KEY" in public_key_pem:
        raise PartnerKeyError("this is a private key; the partner must send only its public key")
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError) as exc:
        raise PartnerKeyError("not a PEM public key (expected '-----BEGIN PUBLIC KEY-----')"
                              ) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        kind = type(key).__name__.removesuffix("PublicKey").lstrip("_") or "unknown"
        raise PartnerKeyError(f"a {kind} key, not RSA; ringi encrypts the password with "
                              "RSA-OAEP and needs an RSA public key")
    if key.key_size < MIN_RSA_BITS:
        raise PartnerKeyError(f"an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} "
                              "bits are required")
    return key


def check_partner_key(public_key_pem: bytes) -> str | None:
    """None if the key can receive deliveries, else a reason to show to the operator."""
    try:
        _load(public_key_pem)
    except PartnerKeyError as exc:
        return str(exc)
    return None


def public_key_fingerprint(public_key_pem: bytes) -> str:
    """SHA-256 (hex) of the DER SubjectPublicKeyInfo, as
    `openssl pkey -pubin -outform DER | sha256sum` prints it."""
    key = serialization.load_pem_public_key(public_key_pem)
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def wrap_password(password: str, public_key_pem: bytes) -> bytes:
    """Encrypt the archive password (UTF-8) to the partner's key; raw RSA ciphertext."""
    key = _load(public_key_pem)
    return key.encrypt(password.encode("utf-8"), padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
