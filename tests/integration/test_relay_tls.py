"""Outgoing mail through a relay that requires STARTTLS and a login (real aiosmtpd, real TLS)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from daemon.app import App
from daemon.store.models import WorkItem
from daemon.workqueue.queue import State
from tests.support import free_port, make_config


def make_cert(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "relay.pem", tmp / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class AuthRelay:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str]]] = []

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login, auth_data.password) == (b"ringi", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not session.authenticated:
            return "530 5.7.0 authentication required"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
def test_starttls_and_login(tmp_path: Path, db_url: str, password: str) -> None:
    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    handler = AuthRelay()
    port = free_port()
    relay = Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx,
                       require_starttls=True, authenticator=handler.authenticate,
                       auth_require_tls=True)
    relay.start()
    pw = tmp_path / "relay.password"
    pw.write_text(password + "\n")
    os.chmod(pw, 0o600)
    cfg = make_config(tmp_path, db_url, port, free_port(),
                      relay={"starttls": True, "username": "ringi", "password_file": str(pw),
                             "ca_file": str(cert)})
    app = App(cfg)
    app.prepare()
    try:
        with app.store.transaction() as s:
            app.notifier.to_address(s, "help", "smith@example.com", "en", {"types": []})
        app.outbox_runner.run_once()
        if password == "s3cret":
            # MAIL FROM is the mail's own signed return path (bounces name the mail).
            assert handler.received == [(app.return_paths.address(1), ["smith@example.com"])]
            assert handler.received[0][0].startswith("ringi+bounce-1-")
        else:  # a refused login is a permanent failure: dead letter, recorded error
            assert handler.received == []
            with app.store.transaction() as s:
                # The first mail dead; the administrator's alert about it is queued after.
                item = s.scalars(select(WorkItem).where(WorkItem.queue == "outbound")
                                 .order_by(WorkItem.id)).first()
            assert item is not None
            assert item.state == State.DEAD and "535" in (item.last_error or "")
    finally:
        app.stop()
        relay.stop()


def test_relay_password_file_must_be_private(tmp_path: Path, db_url: str) -> None:
    from daemon.security.secrets import InsecureSecretError

    pw = tmp_path / "relay.password"
    pw.write_text("x")
    os.chmod(pw, 0o644)
    cfg = make_config(tmp_path, db_url, free_port(), free_port(),
                      relay={"username": "ringi", "password_file": str(pw)})
    with pytest.raises(InsecureSecretError):
        App(cfg)
