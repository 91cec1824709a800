"""Where mail goes: an SMTP relay, or `.eml` files in the spool outbox (embedded default)."""

from __future__ import annotations

import os
import smtplib
import ssl
import uuid
from pathlib import Path
from typing import Protocol

from daemon.config import Config, RelayConfig
from daemon.outbox.addresses import Envelope, Unsendable, envelope
from daemon.security.secrets import check_private
from daemon.workqueue.queue import PermanentError, TemporaryError


class Transport(Protocol):
    # `sender`: the envelope MAIL FROM (a VERP return path naming this mail), or the default.
    # `label`: words a person can tell the mail by (a file transport names its file with it).
    def send(self, recipient: str, raw: bytes, sender: str | None = None,
             label: str = "") -> None: ...


class FileTransport:
    """Atomic write-then-rename, so a reader never sees half a message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".tmp").mkdir(exist_ok=True)

    def send(self, recipient: str, raw: bytes, sender: str | None = None,
             label: str = "") -> None:
        recipient = checked(recipient).address
        # "20261203-190232-000004-R-2026-000001-approval_request.eml": sorted by name, the
        # folder reads in the order the mails were made; a uuid if there is no label.
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:120]
        name = f"{safe or uuid.uuid4().hex}.eml"
        tmp = self.folder / ".tmp" / name
        # The return path rides along for whatever submits the file (sendmail -f).
        envelope_from = f"X-Ringi-Envelope-From: {sender}\r\n" if sender else ""
        with open(tmp, "wb") as fh:
            fh.write(f"X-Ringi-Envelope-To: {recipient}\r\n{envelope_from}".encode() + raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / name)


class SmtpTransport:
    def __init__(self, cfg: RelayConfig, sender: str) -> None:
        self.cfg = cfg
        self.sender = sender
        self.password = ""
        if cfg.password_file:
            check_private(cfg.password_file)
            self.password = cfg.password_file.read_text(encoding="utf-8").strip()

    def send(self, recipient: str, raw: bytes, sender: str | None = None,
             label: str = "") -> None:
        env = checked(recipient)
        try:
            with smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout_seconds) as c:
                if self.cfg.starttls:
                    c.starttls(context=ssl.create_default_context(
                        cafile=str(self.cfg.ca_file) if self.cfg.ca_file else None))
                if self.cfg.username:
                    self._login(c)
                c.sendmail(sender or self.sender, [env.address], raw,
                           mail_options=self._options(c, env))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _classify(code, text) from exc
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryError(f"relay {self.cfg.host}:{self.cfg.port}: {exc}") from exc


    def _options(self, c: smtplib.SMTP, env: Envelope) -> list[str]:
        """SMTPUTF8 when the address needs it; a relay without it can never take the mail."""
        if not env.utf8:
            return []
        c.ehlo_or_helo_if_needed()
        if not c.has_extn("smtputf8"):
            raise PermanentError(f"the relay {self.cfg.host}:{self.cfg.port} does not offer "
                                 f"SMTPUTF8, which mail to {env.address} (a non-ASCII local "
                                 "part) needs")
        return ["SMTPUTF8"]

    def _login(self, c: smtplib.SMTP) -> None:
        """AUTH PLAIN when offered: one clear 535 instead of smtplib trying every mechanism."""
        c.ehlo_or_helo_if_needed()
        if "plain" in c.esmtp_features.get("auth", "").lower().split():
            c.user, c.password = self.cfg.username, self.password
            c.auth("PLAIN", c.auth_plain)
        else:
            c.login(self.cfg.username, self.password)


def checked(recipient: str) -> Envelope:
    """The envelope for `recipient`, or PermanentError: no relay takes a malformed address."""
    try:
        return envelope(recipient)
    except Unsendable as exc:
        raise PermanentError(f"unsendable address: {exc}") from None


def _classify(code: int, text: bytes | str) -> Exception:
    msg = text.decode(errors="replace") if isinstance(text, bytes) else text
    if 400 <= code < 500:
        return TemporaryError(f"{code} {msg}")
    return PermanentError(f"{code} {msg}")


def make_transport(cfg: Config) -> Transport:
    if cfg.relay.host:
        return SmtpTransport(cfg.relay, cfg.mail.request_address)
    return FileTransport(cfg.outbox_dir)
