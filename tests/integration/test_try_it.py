"""The README's quick start as a newcomer follows it: the daemon on its embedded default
(no configuration file) in a fresh checkout, the "Try it" block run verbatim, then the
approvals the README describes, by mail, to the end. Real daemon process, real SMTP."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import smtplib
import socket
import subprocess
from email.message import EmailMessage
from pathlib import Path

from tests.support import ROOT, wait_until

PORT = 8025  # the embedded default's listener, as the README says


def try_it_block() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("### Try it", 1)[1]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)[0]


def outbox(home: Path) -> list[EmailMessage]:
    folder = home / "spool" / "outbox"
    found = []
    for p in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def to(home: Path, address: str) -> list[EmailMessage]:
    return [m for m in outbox(home) if address in str(m["To"])]


def about(home: Path, address: str, *words: str) -> list[EmailMessage]:
    """The mails to `address` whose subject holds every one of `words`."""
    return [m for m in to(home, address) if all(w in str(m["Subject"]) for w in words)]


def answer(ask: EmailMessage, sender: str, text: str) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, str(ask["Reply-To"]), f"Re: {ask['Subject']}"
    m["In-Reply-To"] = str(ask["Message-ID"])
    m.set_content(text)
    with smtplib.SMTP("127.0.0.1", PORT, timeout=10) as smtp:
        smtp.send_message(m)


def listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", PORT), 0.5).close()
    except OSError:
        return False
    return True


def test_the_readme_try_it_runs_as_written(tmp_path: Path) -> None:
    home = tmp_path / "checkout"
    home.mkdir()
    for part in ("rules", "samples", "mailtemplates"):
        shutil.copytree(ROOT / part, home / part)
    (home / ".venv").symlink_to(ROOT / ".venv")
    assert not listening(), f"port {PORT} is taken: the embedded default needs it"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGI_")}
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([str(home / ".venv" / "bin" / "ringi"), "run"], cwd=home,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(listening, 60, "the daemon's listener")
        out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", try_it_block()],
                             cwd=home, env=env, capture_output=True, text=True, timeout=120,
                             check=False)
        # `ls` may run before the daemon wrote both mails; the README's promise is that
        # they come: the acknowledgement to Tanaka and the approval request to Sato.
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(lambda: to(home, "tanaka@example.com") and to(home, "sato@example.com"),
                   30, "the acknowledgement and the approval request")
        # Named so a person can tell them apart, in the order they were made.
        names = sorted(p.name for p in (home / "spool" / "outbox").glob("*.eml"))
        assert sorted(n.split("-R-2026-000001-")[1] for n in names) == \
            ["ack.eml", "approval_request.eml"], names
        show = subprocess.run([".venv/bin/ringi", "case", "show", "R-2026-000001"], cwd=home,
                              env=env, capture_output=True, text=True, timeout=60, check=True)
        assert "sato" in show.stdout.lower(), show.stdout
        # Sato approves: a trip under ¥50,000 needs nobody else, Tanaka gets the result.
        answer(about(home, "sato@example.com", "R-2026-000001", "[#")[0], "sato@example.com",
               "承認")
        wait_until(lambda: about(home, "tanaka@example.com", "R-2026-000001", "承認されました"),
                   30, "Tanaka's result")
        assert to(home, "suzuki@example.com") == []
        # The same request for ¥54,500: after Sato, Suzuki is asked, then Tanaka told.
        block = try_it_block()
        again = block[:block.index("EOF\n") + 4].replace("Amount: 24,500", "Amount: 54,500")
        assert again != block[:block.index("EOF\n") + 4]
        subprocess.run(["bash", "-e", "-c", again], cwd=home, env=env, check=True, timeout=60)
        ask = wait_until(lambda: about(home, "sato@example.com", "R-2026-000002", "[#"), 30,
                         "Sato's second ask")
        answer(ask[0], "sato@example.com", "APPROVE")
        wait_until(lambda: to(home, "suzuki@example.com"), 30, "the ask to Suzuki")
        answer(to(home, "suzuki@example.com")[0], "suzuki@example.com", "APPROVE")
        wait_until(lambda: about(home, "tanaka@example.com", "R-2026-000002", "承認されました"),
                   30, "Tanaka's second result")
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
    assert daemon.returncode in (0, -15), (tmp_path / "daemon.log").read_text()[-3000:]
