"""The company's electronic stamp (SPEC 8): a signature by the stamp key over each document
of a case, written into the case history before anything is published.

A stamp is a plain signature over the document's bytes — RSA PKCS#1 v1.5 with SHA-256, or
ECDSA with SHA-256 (DER) — so a partner checks one with standard tools only:
`openssl dgst -sha256 -verify stamp.pub.pem -signature D-100.pdf.sig D-100.pdf`.
Documents are hashed in chunks and the digest is signed (`Prehashed`), so stamping a large
drawing set never holds a whole file in memory.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.cases.blobs import BlobStore
from daemon.cases.documents import current_documents
from daemon.clock import Clock
from daemon.publication.keys import fingerprint, short, spki_pem
from daemon.security.secrets import check_private
from daemon.store.models import Case
from daemon.store.publication_models import Stamp

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
RSA_BITS = 3072  # the size created by default, and the smallest accepted
CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class StampKeyError(Exception):
    """The stamp key file holds something that cannot stamp (the message names the file)."""


class StampError(Exception):
    """Documents that cannot be stamped; one line per document. Nothing was stamped."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def sha256_file(path: Path) -> bytes:
    """The raw SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.digest()


def stamp_line(filename: str, sha256: str, key_fingerprint: str, actor_id: str | None,
               signature_b64: str) -> str:
    """The history line of one stamp: what, by whom, hash, key and signature in full, so
    the history alone proves the stamp (`openssl dgst -verify` with the signature)."""
    who = f"approved by {actor_id}" if actor_id else "no approver: by ringi"
    return (f"stamped {filename} ({who}): sha256 {sha256}, key {short(key_fingerprint)}, "
            f"signature (base64) {signature_b64}")


class StampKey:
    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self.fingerprint = fingerprint(key.public_key())  # SHA-256 of the DER public key

    @classmethod
    def load_or_create(cls, path: Path) -> StampKey:
        """Load the key; on first start create an RSA-3072 key, mode 0600 (parent 0700).

        Refused (InsecureSecretError) if group or others may read it, or if it is a symlink.
        """
        if not path.exists() and not path.is_symlink():
            cls._create(path)
        check_private(path)
        return cls.from_pem(path.read_bytes(), str(path))

    @staticmethod
    def _create(path: Path) -> None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
            os.chmod(path.parent, 0o700)  # mkdir's mode is cut by the umask
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        # Written whole under a temporary name, then linked: another instance starting at
        # the same moment either wins the link or reads a complete key, never half of one.
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            log.warning("created the stamp key %s: back it up now (with the spool's secrets/); "
                        "partners verify every delivery with it, and a new key means giving "
                        "them the new public key", path)
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @classmethod
    def from_pem(cls, data: bytes, where: str = "stamp key") -> StampKey:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise StampKeyError(f"{where}: the key is encrypted; ringi starts unattended, so "
                                "the stamp key must be stored unencrypted (mode 0600)") from None
        except ValueError:
            raise StampKeyError(f"{where}: not a PEM private key") from None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < RSA_BITS:
                raise StampKeyError(f"{where}: the RSA key has {key.key_size} bits; at least "
                                    f"{RSA_BITS} are required")
            return cls(key)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in CURVES:
                raise StampKeyError(f"{where}: curve {key.curve.name} is not accepted "
                                    "(use P-256 or P-384)")
            return cls(key)
        raise StampKeyError(f"{where}: only RSA (at least {RSA_BITS} bits) or EC P-256/P-384 "
                            "keys can stamp")

    @property
    def algorithm(self) -> str:
        """What a reader needs to check a stamp, e.g. "RSA-3072 PKCS#1 v1.5 SHA-256"."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return f"RSA-{self._key.key_size} PKCS#1 v1.5 SHA-256"
        return f"ECDSA {CURVES[self._key.curve.name]} SHA-256"

    def public_pem(self) -> str:
        return spki_pem(self._key.public_key())

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a SHA-256 digest already computed (e.g. while streaming a file)."""
        pre = Prehashed(hashes.SHA256())
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(digest, padding.PKCS1v15(), pre)
        return self._key.sign(digest, ec.ECDSA(pre))

    def sign_file(self, path: Path) -> bytes:
        return self.sign_digest(sha256_file(path))

    def sign_bytes(self, data: bytes) -> bytes:
        return self.sign_digest(hashlib.sha256(data).digest())


class Stamper:
    def __init__(self, key: StampKey, clock: Clock, blobs: BlobStore) -> None:
        self.key = key
        self.clock = clock
        self.blobs = blobs

    def stamps(self, s: Session, case: Case) -> list[Stamp]:
        """The case's stamps made with the key in use, in document order."""
        return list(s.scalars(select(Stamp).where(
            Stamp.case_id == case.id, Stamp.key_fingerprint == self.key.fingerprint)
            .order_by(Stamp.attachment_id)))

    def stamp_case(self, s: Session, case: Case, actor_id: str | None,
                   record: Callable[[str], None]) -> list[Stamp]:
        """Stamp every document not yet stamped with this key; `record` gets one history line
        per stamp (`stamp_line`). `actor_id` is the approver whose approval led here (None:
        no approver; the company stamp applied by ringi). Every document is checked before
        any is stamped: if one is missing or altered, StampError names it and nothing is
        stamped, so the workflow must not go on. Returns all of the case's stamps with this
        key."""
        done = {st.attachment_id for st in self.stamps(s, case)}
        # The current documents: one replaced by a later one of its name is not stamped anew.
        todo = [a for a in current_documents(s, case.id) if a.id not in done]
        digests: dict[int, bytes] = {}
        problems: list[str] = []
        for doc in todo:
            try:
                digest = sha256_file(self.blobs.path_for(doc.sha256))
            except FileNotFoundError:
                problems.append(f"{doc.filename}: the stored document (sha256 {doc.sha256}) is "
                                "missing")
                continue
            except OSError as exc:
                problems.append(f"{doc.filename}: the stored document cannot be read: "
                                f"{exc.strerror or exc}")
                continue
            if digest.hex() != doc.sha256:
                problems.append(f"{doc.filename}: the stored document no longer matches the "
                                f"sha256 it was received with ({doc.sha256}; now "
                                f"{digest.hex()}); it was altered")
            digests[doc.id] = digest
        if problems:
            raise StampError(problems)
        now, fp = self.clock.now(), self.key.fingerprint
        for doc in todo:
            signature = base64.b64encode(self.key.sign_digest(digests[doc.id])).decode("ascii")
            s.add(Stamp(case_id=case.id, attachment_id=doc.id, sha256=doc.sha256,
                        signature=signature, key_fingerprint=fp, stamped_at=now,
                        stamped_by=actor_id))
            record(stamp_line(doc.filename, doc.sha256, fp, actor_id, signature))
        s.flush()
        return self.stamps(s, case)
