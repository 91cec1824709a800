"""The partner's steps run as written: the shell blocks of docs/partners.md and the commands
of a delivery's README.txt, verbatim, with the real openssl, 7zz and sha256sum, on a real
delivery made for a key pair made by the guide's own first block."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

from tests.integration.test_outcomes import World
from tests.integration.test_publication import PARTNER_MAIL, partner_world, release
from tests.support import ROOT, CapturingRelay

GUIDE = ROOT / "docs" / "partners.md"
# The placeholders the guide tells the partner to replace (and nothing else is replaced).
NAME_PLACEHOLDER = "R-2026-000123-yourname-7"
FOLDER_PLACEHOLDER = "/path/to/receiving-folder"
DOCS = {"D-100-A.pdf": os.urandom(1_500_000),  # D-100-A.pdf is the guide's own example
        "notes 1.txt": "tolerance ±0.05 mm\n".encode() * 4000}  # a space, for the quoting


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.S | re.M)


def bash(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The script under `set -e` (a failing step stops it), then a marker it must reach."""
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script + "\necho ALL-DONE\n"],
                          cwd=home, env={**os.environ, "HOME": str(home)},
                          capture_output=True, text=True, timeout=120, check=False)


def check_run(out: subprocess.CompletedProcess[str], manifest: dict[str, object],
              stamp_fp: str, stamps_checked: int) -> None:
    assert out.returncode == 0 and out.stdout.endswith("ALL-DONE\n"), out.stdout + out.stderr
    assert f"{stamp_fp}  -\n" in out.stdout  # step 0: the stamp key's fingerprint
    assert out.stdout.count("Verified OK") == 1 + stamps_checked  # the manifest, the stamps
    for v in manifest["volumes"]:  # type: ignore[attr-defined]
        assert f"{v['sha256']}  ./{v['name']}\n" in out.stdout  # step 2


def released(w: World, tmp_path: Path) -> tuple[str, Path, dict[str, object]]:
    release(w, "drawing", DOCS)
    w.one(PARTNER_MAIL)  # published
    share = tmp_path / "share" / "kobe"
    [name] = os.listdir(share)
    return name, share, json.loads((share / name / "manifest.json").read_text())


def test_the_guide_and_the_readme_run_as_written(tmp_path: Path, db_url: str,
                                                 relay: CapturingRelay) -> None:
    keys, each = shell_blocks(GUIDE.read_text(encoding="utf-8"))
    home = tmp_path / "home"
    home.mkdir()
    made = bash(keys, home)  # section 1: the partner makes its key pair
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(os.stat(home / "partner-private.pem").st_mode) == 0o600
    w = partner_world(tmp_path, db_url, relay,
                      public_key=(home / "partner-public.pem").read_bytes())
    try:
        name, share, manifest = released(w, tmp_path)
        fp = w.app.stamp_key.fingerprint
        assert each.count(NAME_PLACEHOLDER) == 1 and each.count(FOLDER_PLACEHOLDER) == 1
        script = each.replace(NAME_PLACEHOLDER, name).replace(FOLDER_PLACEHOLDER,
                                                              shlex.quote(str(share)))
        out = bash(script, home)
        check_run(out, manifest, fp, stamps_checked=1)
        # The last step prints the document's SHA-256: the one the manifest states.
        assert out.stdout.endswith(
            f"{hashlib.sha256(DOCS['D-100-A.pdf']).hexdigest()}  D-100-A.pdf\nALL-DONE\n")
        files = home / f"{name}-files"
        for fname, data in DOCS.items():
            assert (files / fname).read_bytes() == data
            assert (files / "stamps" / f"{fname}.sig").is_file()
        # Nothing was extracted into the delivery's copy, and the delivery is unchanged.
        assert sorted(os.listdir(home / name)) == sorted(
            [*os.listdir(share / name), "password.txt"])

        # The README.txt of the delivery: its commands, exactly as they are written there.
        readme = (share / name / "README.txt").read_text(encoding="utf-8")
        home2 = tmp_path / "home2"
        home2.mkdir()
        shutil.copy(home / "partner-private.pem", home2 / "partner-private.pem")
        out = bash(readme_commands(readme), home2)
        check_run(out, manifest, fp, stamps_checked=len(DOCS))
        assert out.stdout.endswith("".join(
            f"{hashlib.sha256(data).hexdigest()}  {fname}\n" for fname, data in DOCS.items())
            + "ALL-DONE\n")
        for fname, data in DOCS.items():
            assert (home2 / f"{name}-files" / fname).read_bytes() == data
    finally:
        w.app.stop()


def readme_commands(readme: str, heading: str = "How to open it") -> str:
    """The indented block after `heading`, as a script."""
    lines = readme.split(heading, 1)[1].splitlines()
    block: list[str] = []
    for line in lines[1:]:
        if line.startswith("    "):
            block.append(line)
        elif block and line.strip():
            break
    return textwrap.dedent("\n".join(block))
