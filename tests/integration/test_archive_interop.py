"""Partner archives and password envelopes, opened with the real 7zz and openssl.

A partner has only 7-Zip and OpenSSL, so every property is checked with those tools:
integrity, byte-identical extraction, hidden names, exact volume sizes, the method chosen
per document, and the RSA-OAEP envelope around the password.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.publication.archive import (
    ArchiveError,
    ArchiveResult,
    Document,
    DocumentRefused,
    build_archive,
    new_password,
)
from daemon.publication.envelope import (
    PartnerKeyError,
    check_partner_key,
    public_key_fingerprint,
    wrap_password,
)

SEVEN = shutil.which("7zz")
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(
    SEVEN is None or OPENSSL is None,
    reason="7zz or openssl is not installed (scripts/test.sh installs 7zip and openssl)")

VOLUME = 1024 * 1024
MIB = 1024 * 1024


def text(rng: random.Random, size: int) -> bytes:
    words = ["flange", "torque", "drawing", "revision", "tolerance", "bolt", "weld", "lot"]
    out = []
    n = 0
    while n < size:
        line = f"{rng.randint(0, 10**6)} {' '.join(rng.choices(words, k=8))}\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def make_corpus(root: Path) -> list[Document]:
    """Incompressible bytes bigger than a volume, text, a zip, many small files, an empty one."""
    rng = random.Random(5)
    files: dict[str, bytes] = {
        "scan.bin": rng.randbytes(3 * MIB),
        "report.txt": text(rng, 2 * MIB),
        "stamps/report.txt.sig": rng.randbytes(384),
        "empty.txt": b"",
        "名前/図面-1.txt": text(rng, 10_000),
    }
    for i in range(150):
        files[f"small/part-{i:03d}.csv"] = text(rng, rng.randint(50, 4000))
    docs = []
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        docs.append(Document(name, path))
    with zipfile.ZipFile(root / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner.txt", text(rng, 300_000))
    docs.append(Document("bundle.zip", root / "bundle.zip"))
    return docs


def seven(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SEVEN is not None
    return subprocess.run([SEVEN, *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=60)


def listing(first: Path, password: str) -> dict[str, dict[str, str]]:
    """`7zz l -slt` as {path: {property: value}} for the archive's entries."""
    out = seven("l", "-slt", f"-p{password}", str(first))
    assert out.returncode == 0, out.stdout + out.stderr
    entries: dict[str, dict[str, str]] = {}
    body = out.stdout.split("----------\n", 1)[1]
    for block in body.strip().split("\n\n"):
        props = dict(line.split(" = ", 1) for line in block.splitlines() if " = " in line)
        entries[props["Path"]] = props
    return entries


@dataclass
class Built:
    docs: list[Document]
    result: ArchiveResult
    password: str
    progress: list[tuple[int, int]]


def build(tmp: Path, mode: str) -> Built:
    docs = make_corpus(tmp / "docs")
    out = tmp / "out"
    out.mkdir()
    password = new_password()
    calls: list[tuple[int, int]] = []
    result = build_archive(docs, out, "D-100", VOLUME, password, mode=mode,
                           progress=lambda done, total: calls.append((done, total)))
    return Built(docs, result, password, calls)


@pytest.fixture(scope="module")
def auto(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("auto"), "auto")


def test_7zz_tests_the_archive_and_extracts_identical_files(auto: Built,
                                                            tmp_path: Path) -> None:
    first = auto.result.volumes[0]
    tested = seven("t", f"-p{auto.password}", str(first))
    assert tested.returncode == 0 and "Everything is Ok" in tested.stdout, tested.stdout
    extracted = seven("x", f"-p{auto.password}", f"-o{tmp_path}", str(first))
    assert extracted.returncode == 0, extracted.stdout + extracted.stderr
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                     if p.is_file())
    assert on_disk == sorted(d.name for d in auto.docs)
    for doc in auto.docs:
        assert (tmp_path / doc.name).read_bytes() == doc.path.read_bytes(), doc.name


def test_a_wrong_password_opens_nothing(auto: Built) -> None:
    tested = seven("t", "-pnot-the-password", str(auto.result.volumes[0]))
    assert tested.returncode != 0


def test_volumes_are_exact_in_size_order_and_mode(auto: Built) -> None:
    volumes = auto.result.volumes
    assert len(volumes) >= 4  # 3 MiB stored + 2 MiB deflated + the rest, in 1 MiB volumes
    assert [v.name for v in volumes] == [f"D-100.7z.{i:03d}" for i in range(1, len(volumes) + 1)]
    sizes = [v.stat().st_size for v in volumes]
    assert all(s == VOLUME for s in sizes[:-1])
    assert 0 < sizes[-1] <= VOLUME
    assert sum(sizes) == auto.result.bytes_out
    assert auto.result.bytes_in == sum(d.path.stat().st_size for d in auto.docs)
    for v in volumes:
        assert stat.S_IMODE(v.stat().st_mode) & 0o137 == 0, oct(v.stat().st_mode)


def test_names_are_hidden_without_the_password(auto: Built) -> None:
    first = str(auto.result.volumes[0])
    for args in (("l", first), ("l", "-pwrong-password", first)):
        out = seven(*args)
        seen = out.stdout + out.stderr
        assert out.returncode != 0
        for name in ("report.txt", "scan.bin", "part-000", "bundle.zip"):
            assert name not in seen, (args, seen)
    raw = b"".join(v.read_bytes() for v in auto.result.volumes)
    for doc in auto.docs:
        for needle in (doc.name.encode("utf-16-le"), doc.name.encode()):
            assert needle not in raw, doc.name


def test_auto_stores_compressed_data_and_deflates_text(auto: Built) -> None:
    methods = auto.result.methods
    assert methods["scan.bin"] == "copy"  # no telling suffix: the sample did not shrink
    assert methods["bundle.zip"] == "copy"
    assert methods["report.txt"] == "deflate"
    assert methods["small/part-000.csv"] == "deflate"
    entries = listing(auto.result.volumes[0], auto.password)
    for name in ("scan.bin", "bundle.zip"):
        assert entries[name]["Method"].split() == ["Copy", "7zAES:19"], entries[name]
    for name in ("report.txt", "small/part-000.csv"):
        assert entries[name]["Method"].split() == ["Deflate", "7zAES:19"], entries[name]
    assert entries["report.txt"]["Size"] == str(2 * MIB)
    assert entries["empty.txt"]["Size"] == "0"
    assert auto.result.bytes_out < auto.result.bytes_in - MIB  # 2 MiB of text deflated


def test_progress_reports_bytes_as_they_are_read(auto: Built) -> None:
    total = auto.result.bytes_in
    calls = auto.progress
    assert len(calls) >= 2 and calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done)


@pytest.mark.parametrize(("mode", "text_method", "listed"),
                         [("store", "copy", "Copy"), ("max", "lzma2", "LZMA2:23")])
def test_other_modes(tmp_path: Path, mode: str, text_method: str, listed: str) -> None:
    built = build(tmp_path, mode)
    assert built.result.methods["report.txt"] == text_method
    assert built.result.methods["scan.bin"] == "copy"
    entries = listing(built.result.volumes[0], built.password)
    assert entries["report.txt"]["Method"].split() == [listed, "7zAES:19"]
    extracted = seven("x", f"-p{built.password}", f"-o{tmp_path / 'x'}",
                      str(built.result.volumes[0]))
    assert extracted.returncode == 0, extracted.stdout
    for doc in built.docs:
        assert (tmp_path / "x" / doc.name).read_bytes() == doc.path.read_bytes(), doc.name
    if mode == "store":
        assert built.result.bytes_out > built.result.bytes_in


def one_doc(tmp_path: Path) -> Document:
    path = tmp_path / "real.txt"
    path.write_bytes(b"flange drawing\n" * 1000)
    return Document("real.txt", path)


def test_a_symlinked_document_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    real = one_doc(tmp_path)
    (tmp_path / "link.txt").symlink_to(real.path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DocumentRefused, match="symbolic link"):
        build_archive([real, Document("link.txt", tmp_path / "link.txt")], out, "D", VOLUME,
                      new_password())
    assert list(out.iterdir()) == []


def test_a_document_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("fifo", "dir"):
        with pytest.raises(DocumentRefused, match="not a regular file"):
            build_archive([Document(name, tmp_path / name)], tmp_path, "D", VOLUME, "pw")


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/./b", "a\\b", ""])
def test_names_that_escape_the_archive_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArchiveError, match="relative path"):
        build_archive([Document(name, one_doc(tmp_path).path)], tmp_path, "D", VOLUME, "pw")


def test_a_failure_midway_leaves_no_volume(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(1).randbytes(9 * MIB))
    out = tmp_path / "out"
    out.mkdir()

    def stop(done: int, total: int) -> None:
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        build_archive([Document("big.bin", big)], out, "D", VOLUME, "pw", progress=stop)
    assert list(out.iterdir()) == []


def test_existing_volumes_are_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "D.7z.002").write_bytes(b"older delivery")
    with pytest.raises(FileExistsError):
        build_archive([one_doc(tmp_path)], tmp_path, "D", VOLUME, "pw")
    assert (tmp_path / "D.7z.002").read_bytes() == b"older delivery"
    assert not (tmp_path / "D.7z.001").exists()


def test_new_passwords_are_long_random_and_printable() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) >= 43 and password.isascii() and password.isalnum()


# --- the password envelope -------------------------------------------------------------

def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], input=data, capture_output=True, timeout=120)


def keypair(tmp: Path, name: str, *algorithm: str) -> tuple[Path, bytes]:
    key = tmp / f"{name}.key"
    made = openssl("genpkey", *algorithm, "-out", str(key))
    assert made.returncode == 0, made.stderr
    public = openssl("pkey", "-in", str(key), "-pubout")
    assert public.returncode == 0, public.stderr
    return key, public.stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bytes]]:
    tmp = tmp_path_factory.mktemp("keys")
    rsa = ("-algorithm", "RSA", "-pkeyopt")
    return {
        "partner": keypair(tmp, "partner", *rsa, "rsa_keygen_bits:3072"),
        "other": keypair(tmp, "other", *rsa, "rsa_keygen_bits:3072"),
        "rsa2048": keypair(tmp, "rsa2048", *rsa, "rsa_keygen_bits:2048"),
        "ec": keypair(tmp, "ec", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
    }


OAEP = ("-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
        "-pkeyopt", "rsa_mgf1_md:sha256")


def test_openssl_unwraps_the_password_with_the_partner_key_only(
        keys: dict[str, tuple[Path, bytes]], tmp_path: Path) -> None:
    password = new_password()
    wrapped = tmp_path / "password.bin"
    wrapped.write_bytes(wrap_password(password, keys["partner"][1]))
    opened = openssl("pkeyutl", "-decrypt", "-inkey", str(keys["partner"][0]),
                     "-in", str(wrapped), *OAEP)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == password.encode()
    wrong = openssl("pkeyutl", "-decrypt", "-inkey", str(keys["other"][0]),
                    "-in", str(wrapped), *OAEP)
    assert wrong.returncode != 0 or wrong.stdout != password.encode()


def test_partner_keys_are_checked_with_reasons(keys: dict[str, tuple[Path, bytes]]) -> None:
    assert check_partner_key(keys["partner"][1]) is None
    small = check_partner_key(keys["rsa2048"][1])
    assert small is not None and "2048" in small and "3072" in small
    ec = check_partner_key(keys["ec"][1])
    assert ec is not None and "not RSA" in ec
    private = check_partner_key(keys["partner"][0].read_bytes())
    assert private is not None and "private key" in private
    garbage = check_partner_key(b"hello")
    assert garbage is not None and "not a PEM public key" in garbage
    with pytest.raises(PartnerKeyError, match="2048"):
        wrap_password("x", keys["rsa2048"][1])


def test_fingerprint_is_sha256_of_the_der_public_key(
        keys: dict[str, tuple[Path, bytes]]) -> None:
    der = openssl("pkey", "-pubin", "-outform", "DER", data=keys["partner"][1])
    assert der.returncode == 0, der.stderr
    assert public_key_fingerprint(keys["partner"][1]) == hashlib.sha256(der.stdout).hexdigest()
    assert public_key_fingerprint(keys["other"][1]) != public_key_fingerprint(keys["partner"][1])


def with_hashes(docs: list[Document], wrong: str = "") -> list[Document]:
    """The documents with their recorded sha256 and size (`wrong`: one recorded wrongly)."""
    out = []
    for d in docs:
        data = d.path.read_bytes()
        digest = hashlib.sha256(data + (b"!" if d.name == wrong else b"")).hexdigest()
        out.append(Document(d.name, d.path, sha256=digest, size=len(data)))
    return out


def test_recorded_hashes_are_checked_while_streaming(tmp_path: Path) -> None:
    docs = make_corpus(tmp_path / "docs")
    out = tmp_path / "out"
    out.mkdir()
    password = new_password()
    result = build_archive(with_hashes(docs), out, "D", VOLUME, password)
    tested = seven("t", f"-p{password}", str(result.volumes[0]))
    assert tested.returncode == 0 and "Everything is Ok" in tested.stdout, tested.stdout
    for name in ("scan.bin", "small/part-149.csv"):  # a stored one, the last deflated one
        for v in result.volumes:
            v.unlink()
        data = (tmp_path / "docs" / name).read_bytes()
        with pytest.raises(ArchiveError) as caught:
            build_archive(with_hashes(docs, wrong=name), out, "D", VOLUME, password)
        assert str(caught.value) == (
            f"{name}: the bytes read have sha256 {hashlib.sha256(data).hexdigest()}, not the "
            f"{hashlib.sha256(data + b'!').hexdigest()} recorded; the stored document was "
            "altered")
        assert list(out.iterdir()) == []  # nothing is left of the failed build
        result = build_archive(with_hashes(docs), out, "D", VOLUME, password)


def test_a_recorded_size_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    doc = one_doc(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match=r"has 15000 bytes, not the 14999 recorded"):
        build_archive([Document(doc.name, doc.path, size=14_999)], out, "D", VOLUME, "pw")
    assert list(out.iterdir()) == []


def test_progress_comes_as_often_as_asked(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(2).randbytes(3 * MIB))
    calls: list[int] = []
    build_archive([Document("big.bin", big)], tmp_path, "D", VOLUME, "pw",
                  progress=lambda done, total: calls.append(done),
                  progress_every=MIB // 2)
    assert calls == [MIB, 2 * MIB, 3 * MIB]  # read in 1 MiB chunks; the default: 4 MiB
