"""Archives are built by streaming (SPEC 8): a 2 GiB document in 256 MiB volumes keeps the
building process under 300 MB peak RSS.

The build runs in a subprocess so that the measure is of that build alone: its VmHWM (the
peak of its own address space) and ru_maxrss, which on Linux also counts the parent's
peak carried over the fork/exec (pytest's ~100 MB), so it is the stricter bound. The big
document is random bytes (1 MiB blocks, each different), so it is stored: 2 GiB really pass
through the encrypter and the volumes, and holding even one volume in memory would break
the limit. A 256 MiB text document goes through deflate alongside it. 7zz then tests the
result, so the streaming is not bought with a broken archive.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

SEVEN = shutil.which("7zz")
MIB = 1024 * 1024
BIG = 2048 * MIB
TEXT = 256 * MIB
VOLUME = 256 * MIB
LIMIT_KB = 300 * 1000  # ru_maxrss is in KiB on Linux; 300 MB
NEEDED = 2 * (BIG + TEXT) + 512 * MIB

CHILD = """
import json, resource, sys
from pathlib import Path
from daemon.publication.archive import Document, build_archive
root = Path(sys.argv[1])
docs = [Document("scan.bin", root / "scan.bin"), Document("log.csv", root / "log.csv")]
result = build_archive(docs, root / "out", "big", int(sys.argv[2]), sys.argv[3])
status = Path("/proc/self/status").read_text()
hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
print(json.dumps({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "hwm_kb": hwm,
                  "volumes": [str(v) for v in result.volumes], "bytes_in": result.bytes_in,
                  "bytes_out": result.bytes_out, "methods": result.methods}))
"""


def write_documents(root: Path) -> None:
    rng = random.Random(2026)
    block = bytearray(rng.randbytes(MIB))
    with (root / "scan.bin").open("wb") as out:
        for i in range(BIG // MIB):
            block[:8] = i.to_bytes(8, "little")  # every block differs (no 1 MiB repeat)
            block[MIB // 2:MIB // 2 + 8] = rng.randbytes(8)
            out.write(block)
    words = [b"flange", b"torque", b"drawing", b"revision", b"tolerance", b"bolt", b"weld"]
    lines = b"".join(b"%d,%s,%s\n" % (rng.randint(0, 10**9), rng.choice(words),
                                     rng.choice(words)) for _ in range(40_000))
    with (root / "log.csv").open("wb") as out:
        written = 0
        while written < TEXT:
            chunk = lines[: TEXT - written]
            out.write(chunk)
            written += len(chunk)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(SEVEN is None, reason="7zz is not installed (scripts/test.sh installs 7zip)")
def test_a_2_gib_document_is_archived_in_bounded_memory(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    if free < NEEDED:
        pytest.skip(f"needs {NEEDED // MIB} MiB free in {tmp_path}, has {free // MIB}")
    try:
        build_and_check(tmp_path)
    finally:  # gigabytes: do not leave them to pytest's retention of old tmp dirs
        for child in tmp_path.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def build_and_check(tmp_path: Path) -> None:
    write_documents(tmp_path)
    (tmp_path / "out").mkdir()
    password = "MemoryTest0123456789abcdefghijklmnopqrstuvwx"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(VOLUME), password],
                         capture_output=True, text=True, env=env, timeout=500)
    assert run.returncode == 0, run.stderr
    (tmp_path / "scan.bin").unlink()  # room for 7zz's temporary needs; the log stays
    report = json.loads(run.stdout)
    print(f"building a {(BIG + TEXT) // MIB} MiB archive: peak RSS (VmHWM) "
          f"{report['hwm_kb'] / 1024:.1f} MiB, ru_maxrss {report['maxrss_kb'] / 1024:.1f} MiB")
    assert report["methods"] == {"scan.bin": "copy", "log.csv": "deflate"}
    assert report["bytes_in"] == BIG + TEXT
    assert report["bytes_out"] > BIG
    volumes = [Path(v) for v in report["volumes"]]
    assert len(volumes) == -(-report["bytes_out"] // VOLUME)
    assert all(v.stat().st_size == VOLUME for v in volumes[:-1])
    assert report["hwm_kb"] < LIMIT_KB
    assert report["maxrss_kb"] < LIMIT_KB
    tested = subprocess.run([str(SEVEN), "t", f"-p{password}", str(volumes[0])],
                            capture_output=True, text=True, timeout=300)
    assert tested.returncode == 0 and "Everything is Ok" in tested.stdout, tested.stdout
