"""A newcomer's first hour: `ringi --version`, options after the subcommand, a clear word
when ringi runs outside its checkout without a configuration (and nothing created there),
`scripts/run.sh` not reinstalling when nothing changed, and outbox files a person can tell
apart. Real `ringi` processes and the real bootstrap script."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from daemon.cli.main import hoist
from tests.support import ROOT

RINGI = str(ROOT / ".venv" / "bin" / "ringi")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RINGI_")}


def test_version_and_options_after_the_subcommand(tmp_path: Path) -> None:
    out = subprocess.run([RINGI, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ringi, version ")
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text(f'[instance]\nname = "after-the-subcommand"\n[paths]\nrules = '
                   f'"{ROOT / "rules"}"\nspool = "{tmp_path / "spool"}"\n')
    for argv in (["--config", str(cfg), "check-config"], ["check-config", "--config", str(cfg)],
                 ["check-config", f"--config={cfg}"]):
        shown = subprocess.run([RINGI, *argv], capture_output=True, text=True, check=True,
                               cwd=tmp_path, env=clean_env())
        assert 'name = "after-the-subcommand"' in shown.stdout, (argv, shown.stdout)
    assert hoist(["case", "show", "--", "--config", "x"], ("--config",)) == \
        ["case", "show", "--", "--config", "x"]  # after "--" it is an argument


def test_outside_a_checkout_without_configuration(tmp_path: Path) -> None:
    for command in (["run"], ["status"], ["case", "show", "R-2026-000001"]):
        out = subprocess.run([RINGI, *command], capture_output=True, text=True, cwd=tmp_path,
                             env=clean_env(), timeout=60, check=False)
        assert out.returncode == 2, out
        assert "is not a ringi checkout" in out.stderr and "--config FILE" in out.stderr
        assert "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # no spool, no database left behind


def test_bootstrap_installs_only_when_the_dependencies_change(tmp_path: Path) -> None:
    """The real script, with a stand-in `python` that records what pip would install
    (installing for real takes a minute and needs the package index)."""
    home = tmp_path / "checkout"
    (home / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", home / "scripts")
    shutil.copy(ROOT / "pyproject.toml", home)
    venv = home / ".venv" / "bin"
    venv.mkdir(parents=True)
    calls = tmp_path / "pip-calls"
    fake = venv / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ntouch {venv / "ringi"}\n'
                    f'chmod +x {venv / "ringi"}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    def bootstrap(*args: str) -> list[str]:
        subprocess.run(["bash", "scripts/bootstrap.sh", *args], cwd=home, check=True)
        return calls.read_text().splitlines() if calls.exists() else []

    assert len(bootstrap()) == 1  # first run: installed
    assert len(bootstrap()) == 1  # nothing changed: not again
    assert len(bootstrap("test")) == 2 and "-e .[test]" in bootstrap("test")[-1]
    assert len(bootstrap("test")) == 2
    with (home / "pyproject.toml").open("a") as fh:
        fh.write("\n# a new dependency would change this file\n")
    assert len(bootstrap()) == 3  # changed: installed again


def test_the_embedded_outbox_names_each_mail(tmp_path: Path) -> None:
    """After the README's Try it (tests/integration/test_try_it.py), the outbox reads in
    order; here the naming rule itself, through the real file transport."""
    from daemon.outbox.transport import FileTransport

    outbox = tmp_path / "outbox"
    t = FileTransport(outbox)
    t.send("a@example.com", b"Subject: x\r\n\r\nx\r\n",
           label="20261203-190232-000004-R-2026-000001-approval_request")
    t.send("a@example.com", b"Subject: y\r\n\r\ny\r\n", label="../../evil name")
    t.send("a@example.com", b"Subject: z\r\n\r\nz\r\n")
    names = sorted(p.name for p in outbox.glob("*.eml"))
    assert "20261203-190232-000004-R-2026-000001-approval_request.eml" in names
    assert ".._.._evil_name.eml" in names  # never a path: stays inside the outbox
    assert len(names) == 3
