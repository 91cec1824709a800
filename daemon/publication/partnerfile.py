"""Partner files (SPEC 8): one TOML file per outside company that may receive deliveries.

Everything in a file is checked at once and every problem names the file and the key, so an
operator fixes a file in one pass.

Partner keys are RSA only, at least 3072 bits. A delivery's password is wrapped for the
partner with RSA-OAEP, which the partner unwraps with plain OpenSSL (`openssl pkeyutl
-decrypt`); an EC key would need ECIES, which `openssl pkeyutl` cannot do, so the partner
could not open a delivery with standard tools. 3072 bits is the smallest RSA size rated for
use after 2030 (NIST SP 800-57).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from daemon.publication.keys import fingerprint, spki_pem

MIN_RSA_BITS = 3072
MIB = 1024 * 1024
LOCALES = ("en", "ja")
KEYS = frozenset({
    "name", "title", "emails", "locale", "public_key", "public_key_file", "folder",
    "folder_owner", "folder_group", "folder_mode", "case_types", "document_classes",
    "max_delivery_mb", "volume_mb", "retention_days",
})
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|\d{1,10}")  # login/group or numeric id
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # case types, document classes
EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
MODE = re.compile(r"(?:0o|0)?([0-7]{3,4})")


class PartnerError(Exception):
    """Partner data that cannot be used; `errors` has one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} problem(s) with partners")
        self.errors = errors


@dataclass(frozen=True)
class PublicKeyInfo:
    pem: str  # SubjectPublicKeyInfo PEM, as re-encoded by ringi
    fingerprint: str  # SHA-256 hex of the DER SubjectPublicKeyInfo
    bits: int


def read_public_key(pem: str | bytes) -> PublicKeyInfo:
    """A partner's RSA public key, or ValueError saying why it cannot be used."""
    raw = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        key = load_pem_public_key(raw)
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key (expected -----BEGIN PUBLIC KEY-----, as "
                         "written by `openssl pkey -pubout`)") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(
            "an EC key cannot be used: the delivery password is wrapped with RSA-OAEP so that "
            "the partner can unwrap it with plain OpenSSL; EC would need ECIES, which "
            f"`openssl pkeyutl` cannot do. Ask the partner for an RSA key of at least "
            f"{MIN_RSA_BITS} bits")
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"only RSA keys are accepted (at least {MIN_RSA_BITS} bits); the "
                         "password is wrapped with RSA-OAEP")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are "
                         "required (smaller keys are not rated safe beyond 2030)")
    return PublicKeyInfo(spki_pem(key), fingerprint(key), key.key_size)


def mode_problem(mode: int) -> str | None:
    """Why a receiving folder's mode would let someone other than ringi and the partner in."""
    shown = f"{mode:04o}"
    writers = [who for bit, who in ((0o020, "the group"), (0o002, "others")) if mode & bit]
    if writers:
        return (f"{shown} lets {' and '.join(writers)} write: they could replace or remove "
                'a delivery; use e.g. "0750" (ringi writes, the partner\'s group reads)')
    if mode & 0o007:
        return (f"{shown} lets every account on the server into the folder; it must be "
                'readable by the partner only (use e.g. "0750")')
    if mode & 0o700 != 0o700:
        return (f"{shown} does not give the owner rwx; ringi, as the owner, moves deliveries "
                "in and purges expired ones")
    return None


def parse_mode(value: Any) -> int:
    """ "0750", "750", "0o750" or a TOML octal number 0o750 -> 0o750."""
    if isinstance(value, str) and (m := MODE.fullmatch(value.strip())):
        return int(m.group(1), 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    raise ValueError(f'must be an octal mode like "0750" or 0o750{_decimal_hint(value)}')


def _decimal_hint(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and \
            set(str(value)) <= set("01234567"):
        return f' (a TOML number {value} is decimal; write "0{value}" or 0o{value})'
    return ""


@dataclass(frozen=True)
class PartnerSpec:
    """One partner as validated from a file (or the same file given to `partners add`)."""

    name: str
    title: str
    emails: tuple[str, ...]
    locale: str
    key: PublicKeyInfo
    folder: str
    folder_owner: str
    folder_group: str
    folder_mode: int
    case_types: tuple[str, ...]
    document_classes: tuple[str, ...]
    max_bytes: int
    volume_bytes: int
    retention_days: int
    source: str

    @property
    def digest(self) -> str:
        """Hash of everything but where it came from: a moved file is not a change."""
        body = asdict(self)
        body.pop("source")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class _Reader:
    """Reads one key at a time, collecting problems instead of stopping at the first."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data, self.source = data, source
        self.errors: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.errors.append(f"{self.source}: {key}: {message}")

    def text(self, key: str, pattern: re.Pattern[str] | None = None, hint: str = "",
             limit: int = 200) -> str:
        value = self.data.get(key)
        if value is None:
            self.fail(key, "missing")
        elif not isinstance(value, str) or not value.strip() or len(value) > limit:
            self.fail(key, f"must be non-empty text of at most {limit} characters")
        elif pattern is not None and not pattern.fullmatch(value.strip()):
            self.fail(key, f"{value!r} is not allowed{hint}")
        else:
            return value.strip()
        return ""

    def texts(self, key: str, pattern: re.Pattern[str], what: str,
              required: bool) -> tuple[str, ...]:
        value = self.data.get(key, None if required else [])
        if value is None:
            self.fail(key, f"missing (a list of {what})")
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of {what}")
            return ()
        bad = [v for v in value if not pattern.fullmatch(v.strip())]
        if bad:
            self.fail(key, f"not {what}: {', '.join(map(repr, bad))}")
        elif required and not value:
            self.fail(key, f"must list at least one of {what}")
        return tuple(dict.fromkeys(v.strip() for v in value))

    def count(self, key: str, unit: int = 1) -> int:
        value = self.data.get(key)
        if value is None:
            self.fail(key, "missing")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, "must be a whole number of at least 1")
        else:
            return value * unit
        return 0

    def account(self, key: str) -> str:
        value = self.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        return self.text(key, ACCOUNT, " (a user or group name, or a numeric id)", 32)


def parse_partner(data: dict[str, Any], source: str, base: Path,
                  case_types: Collection[str] | None = None) -> PartnerSpec:
    """Validate one partner; `base` is where public_key_file is looked up."""
    r = _Reader(data, source)
    for key in sorted(set(data) - KEYS):
        r.fail(key, f"unknown key (known: {', '.join(sorted(KEYS))})")
    name = r.text("name", NAME, " (lower-case letters, digits, '.', '_', '-'; at most 64)", 64)
    title = r.text("title")
    emails = r.texts("emails", EMAIL, "mail addresses", required=True)
    locale = r.text("locale")
    if locale and locale not in LOCALES:
        r.fail("locale", f"{locale!r} is not one of {', '.join(LOCALES)}")
    public = _key(r, base)
    folder = r.text("folder", limit=500)
    owner, group = r.account("folder_owner"), r.account("folder_group")
    mode = 0
    if "folder_mode" not in data:
        r.fail("folder_mode", 'missing (e.g. "0750")')
    else:
        try:
            mode = parse_mode(data["folder_mode"])
        except ValueError as exc:
            r.fail("folder_mode", str(exc))
        else:
            if problem := mode_problem(mode):
                r.fail("folder_mode", problem + _decimal_hint(data["folder_mode"]))
    types = r.texts("case_types", WORD, "case type names", required=True)
    if case_types is not None:
        unknown = [t for t in types if t not in case_types]
        if unknown:
            r.fail("case_types", f"unknown case type(s) {', '.join(map(repr, unknown))} "
                   f"(known: {', '.join(sorted(case_types))})")
    classes = r.texts("document_classes", WORD, "document class names", required=False)
    max_bytes = r.count("max_delivery_mb", MIB)
    volume_bytes = r.count("volume_mb", MIB)
    retention = r.count("retention_days")
    if r.errors:
        raise PartnerError(r.errors)
    assert public is not None
    return PartnerSpec(name, title, emails, locale, public, folder, owner, group, mode, types,
                       classes, max_bytes, volume_bytes, retention, source)


def _key(r: _Reader, base: Path) -> PublicKeyInfo | None:
    inline, file = r.data.get("public_key"), r.data.get("public_key_file")
    if (inline is None) == (file is None):
        r.fail("public_key", "give exactly one of public_key (PEM text) or public_key_file")
        return None
    where = "public_key" if inline is not None else "public_key_file"
    if not isinstance(inline if inline is not None else file, str):
        r.fail(where, "must be text")
        return None
    if isinstance(file, str):
        path = base / file
        try:
            inline = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            r.fail(where, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
            return None
    try:
        return read_public_key(str(inline))
    except ValueError as exc:
        r.fail(where, str(exc))
        return None


def load_partner_file(path: Path, case_types: Collection[str] | None = None) -> PartnerSpec:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PartnerError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise PartnerError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return parse_partner(data, str(path), path.parent, case_types)
