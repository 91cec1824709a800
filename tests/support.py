"""Shared test helpers: real servers on loopback, and waiting for real asynchronous work."""

from __future__ import annotations

import email
import email.policy
import functools
import os
import smtplib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import tomli_w
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result

from daemon.cli.main import cli
from daemon.config import Config, config_as_dict

ROOT = Path(__file__).resolve().parent.parent
REQUEST = "ringi@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll for a real asynchronous effect (a delivered mail, a stored row)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


@dataclass
class Captured:
    rcpt: list[str]
    mail_from: str
    message: EmailMessage

    @property
    def to(self) -> str:
        return self.rcpt[0]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


class CapturingRelay:
    """A real SMTP server (aiosmtpd) standing in for the company relay."""

    def __init__(self) -> None:
        self.mails: list[Captured] = []
        self.lock = threading.Lock()
        self.fail_next: list[str] = []  # SMTP replies to give instead of 250
        self.refuse: dict[str, list[str]] = {}  # the same, only for mail to one address
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0)
            for rcpt in envelope.rcpt_tos:
                if self.refuse.get(rcpt):
                    return self.refuse[rcpt].pop(0)
            msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
            self.mails.append(Captured(list(envelope.rcpt_tos), envelope.mail_from, msg))  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Captured]:
        with self.lock:
            return [m for m in self.mails if address in m.rcpt]

    def wait_for(self, address: str, count: int = 1, timeout: float = 20.0) -> list[Captured]:
        return wait_until(lambda: len(self.to(address)) >= count and self.to(address),
                          timeout, f"{count} mail(s) to {address}")  # type: ignore[no-any-return]

    def clear(self) -> None:
        with self.lock:
            self.mails.clear()


def make_config(tmp: Path, db_url: str, relay_port: int | None, smtp_port: int,
                **sections: Any) -> Config:
    data: dict[str, Any] = {
        "instance": {"name": "test-instance", "log_level": "DEBUG"},
        "paths": {"spool": str(tmp / "spool"), "rules": str(ROOT / "rules"),
                  "templates": str(ROOT / "mailtemplates")},
        "database": {"url": db_url},
        "smtp": {"host": "127.0.0.1", "port": smtp_port},
        "mail": {"request_address": REQUEST},
        "relay": {"host": "127.0.0.1" if relay_port else "", "port": relay_port or 25},
        "queue": {"poll_seconds": 0.05, "backoff_base_seconds": 0.2, "backoff_max_seconds": 1},
        "directory": {"file": str(ROOT / "samples" / "organisation.toml")},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:  # a list of tables, e.g. imap = [{...}]
            data[name] = values
    cfg = Config.model_validate(data)
    if "stamp_key_file" not in data.get("publication", {}):
        place_stamp_key(cfg.stamp_key_path)
    return cfg


def write_config(cfg: Config, folder: Path) -> Path:
    """`cfg` as the file `ringi --config` reads: the commands take no other configuration."""
    path = folder / "ringi.toml"
    path.write_text(tomli_w.dumps(config_as_dict(cfg)))
    return path


def ringi(cfg_file: Path, *args: str) -> Result:
    """One `ringi` command run in-process against that configuration file."""
    return CliRunner().invoke(cli, ["--config", str(cfg_file), *args])


@functools.cache
def stamp_key_pem() -> bytes:
    """One RSA-3072 stamp key per test run: generating one for every App costs ~0.2 s."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def place_stamp_key(path: Path) -> None:
    """Put the shared test stamp key where a configuration expects it (0600, parent 0700)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(stamp_key_pem())


def send(port: int, sender: str, subject: str, body: str, to: str = REQUEST,
         headers: dict[str, str] | None = None, envelope_from: str | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(msg, from_addr=sender if envelope_from is None else envelope_from,
                            to_addrs=[to])


def reply_to(mail: Captured, port: int, sender: str, text: str,
             to: str | None = None) -> None:
    """Answer like a mail client: new text on top, the original quoted below."""
    quoted = "\n".join("> " + line for line in mail.body.splitlines())
    body = f"{text}\n\nOn Mon, 2 Nov 2026 at 09:00, ringi <{REQUEST}> wrote:\n{quoted}\n"
    send(port, sender, "Re: " + mail.subject, body,
         to=to or str(mail.message["Reply-To"]),
         headers={"In-Reply-To": str(mail.message["Message-ID"])})
