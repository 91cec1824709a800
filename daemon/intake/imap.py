"""IMAP mailbox channel: IDLE when offered, polling otherwise, reconnect with back-off.

A message is flagged (or moved) only after store_inbound committed it. If the daemon dies
in between, the next sweep finds the message again; its identity (account, mailbox,
UIDVALIDITY, UID) is already stored, so it is acknowledged without a second case.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import email.utils
import logging
import ssl
import threading
import time
from collections.abc import Callable

from imapclient import IMAPClient

from daemon.config import ImapAccount
from daemon.intake.duplicates import Dedupe
from daemon.intake.store import store_inbound
from daemon.security.secrets import check_private
from daemon.workqueue.queue import WorkQueue

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
DELETED = b"\\Deleted"
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")


def envelope_of(raw: bytes) -> tuple[str, list[str]]:
    """Sender and recipients as the delivering MTA recorded them in the headers."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    return_path = str(headers.get("Return-Path", "") or "").strip()
    sender = email.utils.parseaddr(return_path)[1] if return_path not in ("", "<>") else ""
    if return_path == "" and headers.get("From"):
        sender = email.utils.parseaddr(str(headers["From"]))[1]
    rcpts: list[str] = []
    for name in RECIPIENT_HEADERS:
        for _, addr in email.utils.getaddresses([str(v) for v in headers.get_all(name, [])]):
            if addr and addr.lower() not in rcpts:
                rcpts.append(addr.lower())
    return sender, rcpts


class ImapChannel:
    """One thread per configured mailbox."""

    def __init__(
        self, account: ImapAccount, queue: WorkQueue, on_stored: Callable[[], None],
        dedupe: Dedupe | None = None,
    ) -> None:
        self.account = account
        self.queue = queue
        self.on_stored = on_stored
        self.dedupe = dedupe  # recognises a mail already stored (another UID, SMTP, ...)
        check_private(account.password_file)
        self.password = account.password_file.read_text(encoding="utf-8").strip()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"imap-{account.name}",
                                       daemon=True)
        self.connected = threading.Event()  # for tests and status: a session is up

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.thread.join(timeout)

    # --- connection ------------------------------------------------------------------------

    def connect(self) -> tuple[IMAPClient, int]:
        acc = self.account
        ctx = ssl.create_default_context(cafile=str(acc.ca_file) if acc.ca_file else None)
        client = IMAPClient(acc.host, acc.port, ssl=acc.security == "tls", ssl_context=ctx,
                            timeout=acc.timeout_seconds)
        try:
            if acc.security == "starttls":
                client.starttls(ctx)
            client.login(acc.username, self.password)
            if acc.processed == "move" and not client.folder_exists(acc.move_to):
                client.create_folder(acc.move_to)
            info = client.select_folder(acc.mailbox)
        except Exception:
            _close(client)
            raise
        return client, int(info[b"UIDVALIDITY"])

    def _run(self) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            try:
                client, uidvalidity = self.connect()
            except Exception as exc:
                log.warning("imap %s: cannot connect (%s); retrying in %.0fs",
                            self.account.name, exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.account.reconnect_max_seconds)
                continue
            log.info("imap %s: connected to %s", self.account.name, self.account.host)
            self.connected.set()
            try:
                self._session(client, uidvalidity)
                delay = 1.0
            except Exception as exc:
                log.warning("imap %s: session ended (%s); reconnecting in %.0fs",
                            self.account.name, exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, self.account.reconnect_max_seconds)
            finally:
                self.connected.clear()
                _close(client)

    def _session(self, client: IMAPClient, uidvalidity: int) -> None:
        idle = self.account.idle and b"IDLE" in client.capabilities()
        while not self.stopping.is_set():
            self.sweep(client, uidvalidity)
            if idle:
                self._idle_wait(client)
            else:
                client.noop()  # notice a dead connection even with nothing to fetch
                self.stopping.wait(self.account.poll_seconds)

    def _idle_wait(self, client: IMAPClient) -> None:
        """Wait for the server to announce new mail, at most poll_seconds (then sweep)."""
        deadline = time.monotonic() + self.account.poll_seconds
        client.idle()
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                if client.idle_check(timeout=min(1.0, self.account.poll_seconds)):
                    return
        finally:
            client.idle_done()

    # --- one pass over the mailbox ---------------------------------------------------------

    def sweep(self, client: IMAPClient, uidvalidity: int) -> int:
        acc = self.account
        if acc.processed == "flag":
            uids = client.search(["NOT", "KEYWORD", acc.processed_flag, "NOT", "DELETED"])
        else:
            uids = client.search(["NOT", "DELETED"])
        for uid in sorted(uids):
            if self.stopping.is_set():
                break
            fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid)
            if not fetched or b"BODY[]" not in fetched:
                continue  # expunged meanwhile by someone else
            raw = bytes(fetched[b"BODY[]"])
            sender, rcpts = envelope_of(raw)
            key = f"imap:{acc.name}:{acc.mailbox}:{uidvalidity}:{uid}"
            stored = store_inbound(self.queue, "imap", sender, rcpts, raw, source_key=key,
                                   meta={"account": acc.name, "mailbox": acc.mailbox,
                                         "uidvalidity": uidvalidity, "uid": uid},
                                   dedupe=self.dedupe)
            if stored.duplicate_of is not None:
                log.info("imap %s: uid %s is a duplicate of intake %s; acknowledging",
                         acc.name, uid, stored.duplicate_of)
            elif stored.new:
                self.on_stored()
            else:
                log.info("imap %s: uid %s was stored before (intake %s); acknowledging",
                         acc.name, uid, stored.id)
            self.acknowledge(client, uid)
        return len(uids)

    def acknowledge(self, client: IMAPClient, uid: int) -> None:
        """Only ever called after the message is committed to the store."""
        acc = self.account
        if acc.processed == "flag":
            client.add_flags([uid], [SEEN, acc.processed_flag.encode()])
        elif b"MOVE" in client.capabilities():
            client.move([uid], acc.move_to)
        else:
            client.copy([uid], acc.move_to)
            client.add_flags([uid], [DELETED])
            if b"UIDPLUS" in client.capabilities():
                client.uid_expunge([uid])
            else:
                client.expunge()


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()
