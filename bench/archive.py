"""Archive benchmark: ringi's build_archive against 7-Zip on the same mixed corpus.

The corpus (about 222 MiB, 1,300-odd files) is what partner deliveries hold: 128 MiB of
incompressible binary in four files (scans, CAD exports), a 6 MiB zip, a 64 MiB
measurement log/CSV and up to 24 MiB of many small source files (the Python standard
library's .py files). Each contender writes split volumes of the same size with AES-256
and encrypted headers:

  ringi store   build_archive(mode="store")     vs  7zz a -mx=0 -mhe=on -p... -v...b
  ringi auto    build_archive() (default mode)   vs  7zz a -mx=1 -mhe=on -p... -v...b

Runs alternate and the median of --runs is reported, with the targets: store throughput
>= 0.9x `7zz -mx=0`; auto wall time <= 1.5x `7zz -mx=1` with output <= 1.10x. ringi runs
in this process (as in the daemon, imports done); 7zz is timed as a process. As in the
daemon, every document carries the SHA-256 and size recorded when it was received, and
ringi checks them while streaming (hashed before timing starts, as intake does).

    .venv/bin/python bench/archive.py [--runs 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.publication.archive import Document, build_archive, new_password  # noqa: E402
from daemon.publication.stamp import sha256_file  # noqa: E402

MIB = 1024 * 1024
VOLUME = 64 * MIB
WORDS = ("pressure", "valve", "flange", "torque", "spec", "revision", "drawing", "tolerance",
         "assembly", "bolt", "weld", "inspection", "batch", "supplier", "material", "steel",
         "aluminium", "coating", "thickness", "nominal", "measured", "approved", "rejected",
         "rework", "lot", "serial", "gauge", "calibration", "report")
LEVELS = ("INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR")


def log_lines(rng: random.Random) -> Iterator[str]:
    """Measurement-log lines: timestamps, codes, readings and a few words each."""
    t = 1_790_000_000
    while True:
        t += rng.randint(0, 3)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        yield (f"{t},{rng.choice(LEVELS)},line-{rng.randint(1, 12)},P-{rng.randint(10000, 99999)},"
               f"{rng.uniform(0, 500):.3f},{rng.uniform(-1, 1):.4f},{words}\n")


def write_text(path: Path, size: int, seed: int) -> None:
    lines = log_lines(random.Random(seed))
    with path.open("w") as out:
        written = 0
        while written < size:
            line = next(lines)
            out.write(line)
            written += len(line)


def make_corpus(root: Path) -> list[Document]:
    rng = random.Random(1)
    docs: list[Document] = []
    (root / "binary").mkdir(parents=True)
    for i in range(4):
        path = root / "binary" / f"scan-{i}.bin"
        with path.open("wb") as out:
            for _ in range(32):
                out.write(rng.randbytes(MIB))
        docs.append(Document(f"binary/scan-{i}.bin", path))
    write_text(root / "measurements.csv", 64 * MIB, seed=2)
    docs.append(Document("measurements.csv", root / "measurements.csv"))
    write_text(root / "for-zip.csv", 24 * MIB, seed=3)
    with zipfile.ZipFile(root / "drawings.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(root / "for-zip.csv", "drawings.csv")
    (root / "for-zip.csv").unlink()
    docs.append(Document("drawings.zip", root / "drawings.zip"))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    budget = 24 * MIB
    for src in sorted(stdlib.rglob("*.py")):
        if "site-packages" in src.parts or not src.is_file() or src.is_symlink():
            continue
        size = src.stat().st_size
        if size > budget:
            break
        rel = Path("sources") / src.relative_to(stdlib)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)
        docs.append(Document(rel.as_posix(), root / rel))
        budget -= size
    return [recorded(d) for d in docs]


def recorded(doc: Document) -> Document:
    """The document as the daemon archives it: with its recorded SHA-256 and size."""
    return Document(doc.name, doc.path, sha256_file(doc.path).hex(), doc.path.stat().st_size)


def out_size(out: Path) -> int:
    return sum(p.stat().st_size for p in out.iterdir())


def timed(run: Callable[[], None], out: Path) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    started = time.perf_counter()
    run()
    return time.perf_counter() - started, out_size(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    seven = shutil.which("7zz")
    if seven is None:
        sys.exit("7zz not found (Debian package 7zip)")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ringi-bench-") as tmp:
        corpus, out = Path(tmp) / "corpus", Path(tmp) / "out"
        docs = make_corpus(corpus)
        total = sum(d.path.stat().st_size for d in docs)
        print(f"corpus: {len(docs)} files, {total / MIB:.1f} MiB; volumes of {VOLUME // MIB} MiB")
        (Path(tmp) / "list.txt").write_text("".join(d.name + "\n" for d in docs))
        password = new_password()

        def ringi(mode: str) -> Callable[[], None]:
            def run() -> None:
                build_archive(docs, out, "bench", VOLUME, password, mode=mode)
            return run

        def sevenzip(level: int) -> Callable[[], None]:
            cmd = [seven, "a", "-bd", "-bso0", f"-mx={level}", "-mhe=on", f"-p{password}",
                   f"-v{VOLUME}b", str(out / "bench.7z"), f"@{Path(tmp) / 'list.txt'}"]

            def run() -> None:
                subprocess.run(cmd, cwd=corpus, check=True)
            return run

        contenders = {"ringi store": ringi("store"), "7zz -mx=0": sevenzip(0),
                      "ringi auto": ringi("auto"), "7zz -mx=1": sevenzip(1)}
        times: dict[str, list[float]] = {name: [] for name in contenders}
        sizes: dict[str, int] = {}
        for _ in range(args.runs):
            for name, run in contenders.items():
                elapsed, size = timed(run, out)
                times[name].append(elapsed)
                sizes[name] = size
        timed(ringi("auto"), out)
        subprocess.run([seven, "t", "-bso0", f"-p{password}", str(out / "bench.7z.001")],
                       check=True)
        shutil.rmtree(out)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{'':12} {'median s':>9} {'MB/s':>7} {'output MiB':>11}")
    for name in contenders:
        print(f"{name:12} {median[name]:9.2f} {total / median[name] / 1e6:7.1f} "
              f"{sizes[name] / MIB:11.1f}")
    store = median["7zz -mx=0"] / median["ringi store"]
    wall = median["ringi auto"] / median["7zz -mx=1"]
    size = sizes["ringi auto"] / sizes["7zz -mx=1"]
    print(f"store throughput vs 7zz -mx=0: {store:.2f}x (target >= 0.90) "
          f"{'met' if store >= 0.9 else 'MISSED'}")
    print(f"auto wall time vs 7zz -mx=1: {wall:.2f}x (target <= 1.50) "
          f"{'met' if wall <= 1.5 else 'MISSED'}")
    print(f"auto output vs 7zz -mx=1: {size:.3f}x (target <= 1.10) "
          f"{'met' if size <= 1.1 else 'MISSED'}")


if __name__ == "__main__":
    main()
