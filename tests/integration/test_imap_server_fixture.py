"""The Dovecot test helper itself: a real server, real IMAP, real TLS."""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imap_server import DovecotServer, dovecot_available, running_dovecot

pytestmark = pytest.mark.skipif(
    not dovecot_available(),
    reason="Dovecot is not installed (DEBIAN_FRONTEND=noninteractive apt-get install -y "
    "--no-install-recommends dovecot-imapd)",
)

RAW = b"From: a@example.com\r\nTo: ringi@example.com\r\nSubject: test\r\n\r\nhello\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DovecotServer]:
    with running_dovecot(tmp_path / "imap") as srv:
        yield srv


def test_start_append_and_read_back_with_flags(server: DovecotServer) -> None:
    assert server.host == "127.0.0.1"
    server.append("INBOX", RAW)
    server.append("Approvals", RAW.replace(b"test", b"second"), ("\\Seen", "$RingiProcessed"))

    assert server.messages("INBOX") == [(1, set(), RAW)]
    [(uid, flags, raw)] = server.messages("Approvals")
    assert uid == 1
    assert flags == {"\\Seen", "$RingiProcessed"}
    assert b"Subject: second" in raw
    # Reading with BODY.PEEK left the unread message unread.
    assert server.messages("INBOX")[0][1] == set()


def test_keyword_set_by_a_client_is_seen_by_the_helper(server: DovecotServer) -> None:
    server.append("INBOX", RAW)
    server.append("INBOX", RAW)
    with server.client() as imap:
        imap.select("INBOX")
        typ, _ = imap.uid("STORE", "2", "+FLAGS.SILENT", "($RingiProcessed)")
        assert typ == "OK"
    assert [(uid, flags) for uid, flags, _ in server.messages("INBOX")] == [
        (1, set()),
        (2, {"$RingiProcessed"}),
    ]


def test_create_mailbox_and_empty_mailbox(server: DovecotServer) -> None:
    server.create_mailbox("Archive")
    server.create_mailbox("Archive")  # already there: fine
    assert server.messages("Archive") == []
    with server.client() as imap:
        _, listing = imap.list()
    names = [line.rsplit(b" ", 1)[-1].strip(b'"') for line in listing if isinstance(line, bytes)]
    assert names.count(b"Archive") == 1


def test_wrong_password_is_refused(server: DovecotServer) -> None:
    imap = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(server.user, server.password + "x")
    finally:
        imap.shutdown()


def test_restart_keeps_port_and_mail_and_cuts_clients(server: DovecotServer) -> None:
    port = server.port
    server.append("INBOX", RAW, ("$RingiProcessed",))
    client = server.connect()
    client.select("INBOX")

    started = time.monotonic()
    server.restart()
    elapsed = time.monotonic() - started

    assert server.port == port
    assert server.messages("INBOX") == [(1, {"$RingiProcessed"}, RAW)]
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        client.noop()
    client.shutdown()
    assert elapsed < 5, f"restart took {elapsed:.2f}s"
    # New mail after the restart continues the UID sequence.
    server.append("INBOX", RAW)
    assert [uid for uid, _, _ in server.messages("INBOX")] == [1, 2]


def test_many_quick_restarts(tmp_path: Path) -> None:
    srv = DovecotServer(tmp_path / "imap")
    started = time.monotonic()
    try:
        for _ in range(5):
            srv.start()
            assert srv.capabilities()
            srv.stop()
    finally:
        srv.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"5 start/stop cycles took {elapsed:.2f}s"
    assert not srv.running


def test_stop_is_idempotent_and_frees_the_port(tmp_path: Path) -> None:
    srv = DovecotServer(tmp_path / "imap")
    srv.start()
    srv.stop()
    srv.stop()
    with pytest.raises(OSError):
        imaplib.IMAP4(srv.host, srv.port, timeout=2)


def test_idle_is_advertised_by_default(server: DovecotServer) -> None:
    assert "IDLE" in server.capabilities(authenticated=False)
    assert "IDLE" in server.capabilities()
    assert "MOVE" in server.capabilities()


def test_idle_false_hides_idle_before_and_after_login(tmp_path: Path) -> None:
    with running_dovecot(tmp_path / "imap", idle=False) as srv:
        before, after = srv.capabilities(authenticated=False), srv.capabilities()
        assert "IDLE" not in before
        assert "IDLE" not in after
        assert {"MOVE", "UIDPLUS", "IMAP4REV1"} <= after
        # The greeting's list (what imaplib keeps) does not show IDLE either.
        imap = imaplib.IMAP4(srv.host, srv.port, timeout=10)
        try:
            assert "IDLE" not in imap.capabilities
        finally:
            imap.logout()


def test_two_instances_at_once_are_independent(tmp_path: Path) -> None:
    with (
        running_dovecot(tmp_path / "a") as one,
        running_dovecot(tmp_path / "b", idle=False) as two,
    ):
        assert one.port != two.port
        one.append("INBOX", RAW)
        assert two.messages("INBOX") == []
        assert len(one.messages("INBOX")) == 1
        assert "IDLE" in one.capabilities() and "IDLE" not in two.capabilities()


def test_instances_started_from_threads(tmp_path: Path) -> None:
    servers = [DovecotServer(tmp_path / f"s{i}") for i in range(3)]
    errors: list[BaseException] = []

    def run(srv: DovecotServer) -> None:
        try:
            srv.start()
            srv.append("INBOX", RAW)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert all(len(s.messages("INBOX")) == 1 for s in servers)
    finally:
        for s in servers:
            s.stop()


def test_starttls_with_the_ca_file(tmp_path: Path) -> None:
    with running_dovecot(tmp_path / "imap", tls="starttls") as srv:
        assert srv.ca_file is not None and srv.ca_file.exists()
        imap = imaplib.IMAP4(srv.host, srv.port, timeout=10)
        try:
            assert "STARTTLS" in imap.capabilities
            imap.starttls(ssl.create_default_context(cafile=str(srv.ca_file)))
            imap.login(srv.user, srv.password)
            imap.select("INBOX")
        finally:
            imap.logout()
        assert srv.logins()[-1] == (srv.user, "PLAIN", True)
        srv.append("INBOX", RAW)
        assert srv.messages("INBOX") == [(1, set(), RAW)]


def test_starttls_is_refused_without_the_ca(tmp_path: Path) -> None:
    with running_dovecot(tmp_path / "imap", tls="starttls") as srv:
        imap = imaplib.IMAP4(srv.host, srv.port, timeout=10)
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                imap.starttls(ssl.create_default_context())
        finally:
            with contextlib.suppress(OSError):
                imap.shutdown()


def test_loopback_login_without_starttls_shows_as_not_tls(tmp_path: Path) -> None:
    """Dovecot accepts it on loopback; logins() is how a test tells the difference."""
    with running_dovecot(tmp_path / "imap", tls="starttls") as srv:
        imap = imaplib.IMAP4(srv.host, srv.port, timeout=10)
        imap.login(srv.user, srv.password)
        imap.logout()
        assert srv.logins()[-1] == (srv.user, "PLAIN", False)


def test_implicit_tls_with_the_ca_file(tmp_path: Path) -> None:
    with running_dovecot(tmp_path / "imap", tls="implicit") as srv:
        assert srv.ca_file is not None
        context = ssl.create_default_context(cafile=str(srv.ca_file))
        imap = imaplib.IMAP4_SSL(srv.host, srv.port, ssl_context=context, timeout=10)
        try:
            imap.login(srv.user, srv.password)
            typ, _ = imap.append("INBOX", "(\\Flagged)", None, RAW)
            assert typ == "OK"
        finally:
            imap.logout()
        assert srv.messages("INBOX") == [(1, {"\\Flagged"}, RAW)]
        assert srv.logins()[-1][2] is True
        # The port speaks TLS only: a plain client gets no IMAP greeting.
        with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError, EOFError)):
            imaplib.IMAP4(srv.host, srv.port, timeout=1)


def test_no_tls_means_no_ca_and_no_starttls(server: DovecotServer) -> None:
    assert server.ca_file is None
    assert "STARTTLS" not in server.capabilities(authenticated=False)
