"""The archive's parts that need no external tool: key derivation, method choice, volumes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from py7zr.helpers import calculate_key

from daemon.publication.archive import choose_method
from daemon.publication.sevenzip import derive_key
from daemon.publication.volumes import VolumeWriter


@pytest.mark.parametrize("password", ["a", "pässwörd-秘密", "x" * 44, "long" * 40])
def test_key_derivation_matches_py7zr(password: str) -> None:
    reference = calculate_key(password.encode("utf-16-le"), 19, b"", "sha256")
    assert derive_key(password) == reference


def method_for(tmp_path: Path, name: str, data: bytes, mode: str = "auto") -> str:
    path = tmp_path / "doc"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return choose_method(name, fd, len(data), mode)
    finally:
        os.close(fd)


def test_method_follows_the_data_and_the_name(tmp_path: Path) -> None:
    rng = random.Random(3)
    noise = rng.randbytes(2 * 1024 * 1024)
    prose = b"the flange drawing revision C replaces B; torque 40 Nm\n" * 40000
    assert method_for(tmp_path, "scan.dat", noise) == "copy"
    assert method_for(tmp_path, "notes.txt", prose) == "deflate"
    assert method_for(tmp_path, "notes.txt", prose, "max") == "lzma2"
    assert method_for(tmp_path, "notes.txt", prose, "store") == "copy"
    assert method_for(tmp_path, "photo.JPG", prose) == "copy"  # trusted by its suffix
    # text at the head, noise after it: the windows spread over the file see the noise
    assert method_for(tmp_path, "mixed.bin", prose[:256 * 1024] + noise * 4) == "copy"


def test_volumes_roll_over_at_exact_sizes(tmp_path: Path) -> None:
    writer = VolumeWriter(tmp_path, "v", 64 * 1024)
    data = random.Random(4).randbytes(200_000)
    for start in range(0, len(data), 7_000):
        writer.write(data[start:start + 7_000])
    writer.patch_start(b"HEAD")
    writer.close()
    sizes = [p.stat().st_size for p in writer.volumes]
    assert sizes == [65536, 65536, 65536, 200_000 - 3 * 65536]
    joined = b"".join(p.read_bytes() for p in writer.volumes)
    assert joined == b"HEAD" + data[4:]
    assert writer.tell() == len(data)


def test_volume_writer_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    (tmp_path / "w.7z.001").symlink_to(target)
    with pytest.raises(FileExistsError):
        VolumeWriter(tmp_path, "w", 64 * 1024)
    assert target.read_bytes() == b"keep"
