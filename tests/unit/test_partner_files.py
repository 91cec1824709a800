"""Partner files: every problem is reported at once, naming the file and the key."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from daemon.publication.partnerfile import load_partner_file, parse_mode
from daemon.publication.partners import PartnerError
from tests.support import ROOT

SAMPLE = ROOT / "rules" / "partners" / "kobe-precision.toml"
TYPES = {"design_release", "purchase", "travel"}


def public_pem(key: Any, fmt: serialization.PublicFormat = serialization.PublicFormat
               .SubjectPublicKeyInfo) -> str:
    return str(key.public_key().public_bytes(serialization.Encoding.PEM, fmt).decode())


@pytest.fixture(scope="module")
def rsa3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def good(key_pem: str, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "osaka-dies", "title": "Osaka Dies Ltd.", "emails": ["drawings@osaka.example"],
        "locale": "en", "public_key": key_pem, "folder": "/srv/partners/osaka",
        "folder_owner": "ringi", "folder_group": "partner-osaka", "folder_mode": "0750",
        "case_types": ["design_release"], "document_classes": [], "max_delivery_mb": 100,
        "volume_mb": 10, "retention_days": 14,
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def write(tmp_path: Path, data: dict[str, Any], name: str = "osaka.toml") -> Path:
    path = tmp_path / name
    path.write_text(tomli_w.dumps(data))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(PartnerError) as caught:
        load_partner_file(path, TYPES)
    return caught.value.errors


def test_the_sample_partner_is_valid_and_its_fingerprint_is_openssls() -> None:
    spec = load_partner_file(SAMPLE, TYPES)
    assert spec.name == "kobe-precision" and spec.case_types == ("design_release",)
    assert spec.folder == "spool/partners/kobe-precision" and spec.folder_mode == 0o750
    assert (spec.max_bytes, spec.volume_bytes) == (2048 * 1024 * 1024, 100 * 1024 * 1024)
    assert spec.key.bits == 3072
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(SAMPLE.parent /
                          "kobe-precision.pub.pem"), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-r"], input=der, check=True,
                            capture_output=True).stdout.split()[0].decode()
    assert spec.key.fingerprint == digest


def test_fingerprint_is_stable_across_pem_forms(tmp_path: Path,
                                                 rsa3072: rsa.RSAPrivateKey) -> None:
    spki = load_partner_file(write(tmp_path, good(public_pem(rsa3072))), TYPES)
    pkcs1 = public_pem(rsa3072, serialization.PublicFormat.PKCS1)
    assert "BEGIN RSA PUBLIC KEY" in pkcs1
    again = load_partner_file(write(tmp_path, good(pkcs1), "b.toml"), TYPES)
    assert spki.key.fingerprint == again.key.fingerprint and len(spki.key.fingerprint) == 64
    assert spki.digest == again.digest  # same partner, whatever the key's PEM form


def test_short_rsa_key_is_refused(tmp_path: Path) -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = write(tmp_path, good(public_pem(short)))
    assert errors_of(path) == [f"{path}: public_key: the RSA key has 2048 bits; at least 3072 "
                               "are required (smaller keys are not rated safe beyond 2030)"]


def test_ec_key_is_refused_and_the_reason_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, good(public_pem(ec.generate_private_key(ec.SECP384R1()))))
    (line,) = errors_of(path)
    assert line.startswith(f"{path}: public_key: an EC key cannot be used")
    assert "RSA-OAEP" in line and "ECIES" in line and "openssl pkeyutl" in line


@pytest.mark.parametrize(("mode", "why"), [
    ("0777", "0777 lets the group and others write"),
    ("0770", "0770 lets the group write"),
    (0o755, "0755 lets every account on the server into the folder"),
    ("0550", "0550 does not give the owner rwx"),
    (750, 'a TOML number 750 is decimal; write "0750" or 0o750'),
    ("rwx", 'must be an octal mode like "0750"'),
])
def test_unsafe_folder_modes_are_refused(tmp_path: Path, rsa3072: rsa.RSAPrivateKey,
                                         mode: Any, why: str) -> None:
    path = write(tmp_path, good(public_pem(rsa3072), folder_mode=mode))
    (line,) = errors_of(path)
    assert line.startswith(f"{path}: folder_mode: ") and why in line


def test_mode_forms() -> None:
    assert parse_mode("0750") == parse_mode("750") == parse_mode("0o750") == 0o750
    assert parse_mode(0o2750) == 0o2750
    with pytest.raises(ValueError):
        parse_mode(True)


def test_every_problem_is_reported_at_once(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    data = good(public_pem(rsa3072), emails=None, colour="blue", locale="fr",
                case_types=["design_release", "lunch"], retention_days=0,
                folder_owner="bad owner", document_classes="drawing")
    path = write(tmp_path, data)
    errors = errors_of(path)
    assert errors == [
        f"{path}: colour: unknown key (known: case_types, document_classes, emails, folder, "
        "folder_group, folder_mode, folder_owner, locale, max_delivery_mb, name, public_key, "
        "public_key_file, retention_days, title, volume_mb)",
        f"{path}: emails: missing (a list of mail addresses)",
        f"{path}: locale: 'fr' is not one of en, ja",
        f"{path}: folder_owner: 'bad owner' is not allowed (a user or group name, or a "
        "numeric id)",
        f"{path}: case_types: unknown case type(s) 'lunch' (known: design_release, purchase, "
        "travel)",
        f"{path}: document_classes: must be a list of document class names",
        f"{path}: retention_days: must be a whole number of at least 1",
    ]


def test_key_from_a_file_next_to_the_partner_file(tmp_path: Path,
                                                  rsa3072: rsa.RSAPrivateKey) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "osaka.pem").write_text(public_pem(rsa3072))
    spec = load_partner_file(write(tmp_path, good(None, public_key_file="keys/osaka.pem")))
    assert spec.key.pem == public_pem(rsa3072)
    missing = write(tmp_path, good(None, public_key_file="nope.pem"), "m.toml")
    (line,) = errors_of(missing)
    assert line.startswith(f"{missing}: public_key_file: cannot read {tmp_path / 'nope.pem'}")
    both = write(tmp_path, good(public_pem(rsa3072), public_key_file="keys/osaka.pem"), "b.toml")
    assert errors_of(both) == [f"{both}: public_key: give exactly one of public_key (PEM text) "
                               "or public_key_file"]
    garbage = write(tmp_path, good("-----BEGIN PUBLIC KEY-----\nAAAA\n"), "g.toml")
    assert errors_of(garbage) == [f"{garbage}: public_key: not a PEM public key (expected "
                                  "-----BEGIN PUBLIC KEY-----, as written by `openssl pkey "
                                  "-pubout`)"]


def test_numeric_owner_and_bad_toml(tmp_path: Path, rsa3072: rsa.RSAPrivateKey) -> None:
    spec = load_partner_file(write(tmp_path, good(public_pem(rsa3072), folder_owner=1001,
                                                  folder_group="2001")))
    assert (spec.folder_owner, spec.folder_group) == ("1001", "2001")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    (line,) = errors_of(bad)
    assert line.startswith(f"{bad}: not valid TOML")
