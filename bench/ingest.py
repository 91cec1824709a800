"""Ingest benchmark: N requests over SMTP until every approval-request mail reached the relay.

Starts `ringi run` as a separate process (embedded SQLite by default, or --database-url),
a capturing aiosmtpd relay in this process, and SMTP clients sending travel requests from
the sample organisation's staff. Prints the rates; docs/operations.md records them.

    .venv/bin/python bench/ingest.py --requests 500 --clients 4
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import tomli_w
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.config import Config, config_as_dict  # noqa: E402

# (requester, approver asked first) from samples/organisation.toml
PAIRS = [("tanaka@example.com", "sato@example.com"), ("smith@example.com", "takahashi@example.com")]
BODY = ("Type: travel\nDestination: Osaka\nPurpose: Customer visit\nDeparture date: 2026-11-10\n"
        "Return date: 2026-11-11\nAmount: 24500\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    def __init__(self) -> None:
        self.requests = 0
        self.total = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.expected = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.total += 1
            if any(r in ("sato@example.com", "takahashi@example.com")
                   for r in envelope.rcpt_tos):
                self.requests += 1
                if self.requests >= self.expected:
                    self.done.set()
        return "250 OK"


def scratch_database(url: str) -> str:
    """A throw-away database beside the one named, so the bench never touches real data."""
    import uuid

    import sqlalchemy as sa

    name = f"ringi_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def client(port: int, jobs: list[int], sent: list[float]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        for i in jobs:
            sender, _ = PAIRS[i % len(PAIRS)]
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = sender, "ringi@example.com", f"Trip {i}"
            msg.set_content(BODY)
            smtp.send_message(msg)
            sent.append(time.perf_counter())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--database-url", default="",
                    help="PostgreSQL server to use (a scratch database is created on it)")
    args = ap.parse_args()
    db_url = scratch_database(args.database_url) if args.database_url else ""

    relay = Relay()
    relay.expected = args.requests
    relay_port, smtp_port = free_port(), free_port()
    ctl = Controller(relay, hostname="127.0.0.1", port=relay_port)
    ctl.start()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config.model_validate({
            "instance": {"name": "bench", "log_level": "WARNING"},
            "paths": {"spool": f"{tmp}/spool", "rules": str(ROOT / "rules"),
                      "templates": str(ROOT / "mailtemplates")},
            "database": {"url": db_url},
            "smtp": {"port": smtp_port},
            "relay": {"host": "127.0.0.1", "port": relay_port},
            "queue": {"poll_seconds": 0.2},
            "directory": {"file": str(ROOT / "samples" / "organisation.toml")},
        })
        cfg_file = Path(tmp) / "ringi.toml"
        cfg_file.write_text(tomli_w.dumps(config_as_dict(cfg)))
        proc = subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(cfg_file),
                                 "run"], cwd=ROOT, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", smtp_port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("daemon did not start") from None
                    time.sleep(0.1)
            jobs = [list(range(c, args.requests, args.clients)) for c in range(args.clients)]
            sent: list[float] = []
            start = time.perf_counter()
            threads = [threading.Thread(target=client, args=(smtp_port, j, sent)) for j in jobs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            accepted = time.perf_counter() - start
            if not relay.done.wait(600):
                raise SystemExit(f"only {relay.requests}/{args.requests} approval requests arrived")
            finished = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(30)
            ctl.stop()
            if db_url:
                drop_database(args.database_url, db_url)
    backend = "postgresql" if args.database_url.startswith("postgresql") else "sqlite"
    print(f"backend={backend} requests={args.requests} clients={args.clients}")
    print(f"smtp accepted (250, durably stored): {args.requests / accepted:.1f} requests/s "
          f"({accepted:.2f} s)")
    print(f"end to end (every approval request at the relay): "
          f"{args.requests / finished:.1f} requests/s ({finished:.2f} s); "
          f"mails relayed: {relay.total}")


if __name__ == "__main__":
    main()
