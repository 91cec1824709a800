"""bench/orgchange.py runs end to end at a tiny size, so it cannot rot unnoticed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import PG_URL
from tests.support import ROOT


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_reorganisation_bench_runs_small(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("RINGI_TEST_DATABASE_URL is not set")
    args = [sys.executable, str(ROOT / "bench" / "orgchange.py"), "--people", "300",
            "--cases", "200", "--touch", "0.5"]
    if backend == "postgresql":
        args += ["--database-url", PG_URL]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "300 people" in out and "200 waiting cases" in out
    counts = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)",
                                                      out.split("outcomes: ")[1].split("\n")[0]))
    # Every kind of change happened: posts changed hands, and staff left with nobody above.
    assert counts["moves"] > 0 and counts["fails"] > 0 and counts["unchanged"] > 0
    assert sum(counts.values()) == 200  # one pending ask per case
    for step in ("verify", "commit", "reroute", "rollback"):
        assert re.search(rf"{step}\s+[\d.]+ s \(CPU\s+[\d.]+ s\)\s+peak RSS\s+\d+ MB", out), out
