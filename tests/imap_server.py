"""A real Dovecot IMAP server on loopback, for integration tests of IMAP intake.

Install (Debian 12; the same command on a developer's machine and in CI)::

    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd

That pulls in ``dovecot-core`` and creates the system users ``dovecot`` and
``dovenull``. Its post-install step tries to start the system service through
``invoke-rc.d``; without systemd (and with Docker's ``policy-rc.d``) that is
refused, and if a system instance did run it would not matter here: each
``DovecotServer`` is started by hand with ``dovecot -F -c ROOT/dovecot.conf``,
has its own ``base_dir``/``state_dir``/log/mail store under ``root`` and listens
only on 127.0.0.1 at a port of its own, never on 143 or 993.

Running as root, Dovecot drops the mail processes to an unprivileged uid (it
refuses uid 0 for mail users): the mail user here is ``nobody``/``nogroup``,
with ``mail_chroot`` set to ``ROOT/mail`` so the chroot (done while still root)
lets it reach the store even when ``root`` sits under a 0700 folder such as
pytest's ``tmp_path``. The auth process runs as root so that it can read the
passwd-file there. Run as another user, every Dovecot process is that user and
nothing is chrooted.

Typical use::

    server = DovecotServer(tmp_path / "imap", idle=False, tls="starttls")
    server.start()
    try:
        server.append("INBOX", raw_bytes)
        ...  # point the code under test at server.host/server.port/user/password
        assert server.messages("INBOX")[0][1] == {"\\\\Seen", "$RingiProcessed"}
    finally:
        server.stop()

or ``with running_dovecot(root) as server: ...``.

``stop()`` signals the whole process group (the master alone sits out a ~1 s
shutdown wait), so start, stop and restart each take a few tens of ms; open
client connections are cut as when a real server goes down. Dovecot accepts a
login without STARTTLS from loopback (same remote and local IP count as
secured), so a test that must prove TLS was used checks ``logins()``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DovecotServer", "dovecot_available", "dovecot_binary", "running_dovecot"]

_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"]
)
_LIBEXEC_DIRS = ("/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot")

# Dovecot 2.3's own post-login list without IDLE (MOVE etc. kept).
_NO_IDLE_CAPABILITY = (
    "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY "
    "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "
    "CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "
    "CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
    "BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE "
    "LITERAL- NOTIFY SPECIAL-USE"
)

_TLS_MODES = ("none", "starttls", "implicit")

_running: weakref.WeakSet[DovecotServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


def dovecot_binary() -> str | None:
    """Path of the ``dovecot`` master binary, or None."""
    return shutil.which("dovecot", path=_SEARCH_PATH)


def dovecot_available() -> bool:
    """True when Dovecot and its IMAP server (dovecot-imapd) are installed."""
    if dovecot_binary() is None:
        return False
    return any(Path(d, "imap-login").exists() and Path(d, "imap").exists() for d in _LIBEXEC_DIRS)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _quote(mailbox: str) -> str:
    """An IMAP quoted string (ASCII mailbox names only)."""
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: object, what: str) -> None:
    if typ != "OK":
        raise RuntimeError(f"IMAP {what} failed: {typ} {data!r}")


_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_LOGIN_LINE = re.compile(
    r"imap-login: Info: Login: user=<(?P<user>[^>]*)>, method=(?P<method>[^,]+),(?P<rest>[^\n]*)"
)


class DovecotServer:
    """A private Dovecot instance: own config, mail store and runtime dir under a temp folder."""

    host: str
    port: int
    user: str
    password: str
    ca_file: Path | None

    def __init__(self, root: Path, *, idle: bool = True, tls: str = "none") -> None:
        if tls not in _TLS_MODES:
            raise ValueError(f"tls must be one of {_TLS_MODES}, not {tls!r}")
        self.root = Path(root).resolve()
        if re.search(r"[\s%\"'<>#{}$\\]", str(self.root)):
            raise ValueError(f"root must be a plain path for dovecot.conf: {self.root}")
        self.idle = idle
        self.tls = tls
        self.host = "127.0.0.1"
        self.port = _free_port(self.host)
        self.user = "ringi"
        self.password = secrets.token_urlsafe(12)
        self.conf_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.stderr_path = self.root / "dovecot.stderr"
        self.mail_root = self.root / "mail"
        self.ca_file = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepare()

    # -- set-up -------------------------------------------------------------

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state", "tls"):
            (self.root / sub).mkdir(exist_ok=True)
        home = self.mail_root / self.user
        home.mkdir(parents=True, exist_ok=True)
        privileged = os.geteuid() == 0
        if privileged:
            mail_uid = pwd.getpwnam("nobody").pw_uid
            mail_gid = pwd.getpwnam("nobody").pw_gid
            for path in (self.mail_root, home):
                os.chown(path, mail_uid, mail_gid)
            internal_user = _first_user("dovecot", "nobody")
            login_user = _first_user("dovenull", "nobody")
        else:
            mail_uid, mail_gid = os.geteuid(), os.getegid()
            internal_user = login_user = pwd.getpwuid(mail_uid).pw_name
        passwd = self.root / "passwd"
        passwd.write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        passwd.chmod(0o600)
        if self.tls != "none":
            self.ca_file = self._make_certificates()
        self.conf_path.write_text(
            self._config(privileged, mail_uid, mail_gid, internal_user, login_user)
        )

    def _config(
        self, privileged: bool, uid: int, gid: int, internal_user: str, login_user: str
    ) -> str:
        root = self.root
        if privileged:
            # The mail process chroots (as root) into the store, then drops to uid.
            mail = (
                f"mail_chroot = {self.mail_root}\n"
                f"valid_chroot_dirs = {self.mail_root}\n"
                "mail_location = maildir:~\n"
            )
            home = "/%u"
            extra_services = "service auth {\n  user = root\n}\n"
        else:
            mail = f"mail_location = maildir:{self.mail_root}/%u\n"
            home = f"{self.mail_root}/%u"
            # Rootless: every process is this user, nothing is chrooted.
            group = grp.getgrgid(gid).gr_name
            extra_services = (
                f"default_internal_group = {group}\n"
                "service anvil {\n  chroot =\n}\n"
                "service imap-login {\n  chroot =\n}\n"
            )
        if self.tls == "none":
            ssl_conf = "ssl = no\n"
        else:
            # Not "required": Dovecot counts a connection whose remote and local IP
            # are equal as secured, so on loopback it would change nothing.
            ssl_conf = (
                "ssl = yes\n"
                f"ssl_cert = <{root}/tls/server.pem\n"
                f"ssl_key = <{root}/tls/server.key\n"
            )
        plain_port = self.port if self.tls in ("none", "starttls") else 0
        tls_port = self.port if self.tls == "implicit" else 0
        capability = "" if self.idle else f"imap_capability = {_NO_IDLE_CAPABILITY}\n"
        return (
            f"# Generated by tests/imap_server.py for a private test instance.\n"
            f"instance_name = ringi-test-{self.port}\n"
            f"base_dir = {root}/run\n"
            f"state_dir = {root}/state\n"
            f"log_path = {self.log_path}\n"
            f"info_log_path = {self.log_path}\n"
            "protocols = imap\n"
            "listen = 127.0.0.1\n"
            f"default_internal_user = {internal_user}\n"
            f"default_login_user = {login_user}\n"
            "first_valid_uid = 1\n"
            "last_valid_uid = 0\n"
            "auth_mechanisms = plain login\n"
            "disable_plaintext_auth = no\n"
            "auth_verbose = yes\n"
            "auth_failure_delay = 0\n"  # a wrong password fails at once
            f"{ssl_conf}"
            f"{mail}"
            f"{capability}"
            "passdb {\n"
            "  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {root}/passwd\n"
            "}\n"
            "userdb {\n"
            "  driver = static\n"
            f"  args = uid={uid} gid={gid} home={home}\n"
            "}\n"
            "service imap-login {\n"
            "  inet_listener imap {\n"
            f"    port = {plain_port}\n"
            "  }\n"
            "  inet_listener imaps {\n"
            f"    port = {tls_port}\n"
            "    ssl = yes\n"
            "  }\n"
            "}\n"
            f"{extra_services}"
        )

    def _make_certificates(self) -> Path:
        """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ringi test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([
                    x509.IPAddress(ipaddress.ip_address(self.host)),
                    x509.DNSName("localhost"),
                ]),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        tls_dir = self.root / "tls"
        pem = serialization.Encoding.PEM
        (tls_dir / "server.pem").write_bytes(cert.public_bytes(pem))
        key_path = tls_dir / "server.key"
        key_path.write_bytes(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        ca_path = tls_dir / "ca.pem"
        ca_path.write_bytes(ca_cert.public_bytes(pem))
        return ca_path

    # -- process ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start ``dovecot -F`` and wait for an IMAP greeting on the port."""
        if self.running:
            return
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("dovecot is not installed (apt-get install dovecot-imapd)")
        self._wait_port_free(timeout)
        command = [binary, "-F", "-c", str(self.conf_path)]
        setpriv = shutil.which("setpriv", path=_SEARCH_PATH)
        if setpriv and threading.current_thread() is threading.main_thread():
            # If this test process dies without stopping us, the master gets
            # SIGTERM (its children follow it). Tied to the starting thread,
            # hence only from the main one.
            command = [setpriv, "--pdeathsig", "TERM", *command]
        stderr = self.stderr_path.open("ab")
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            cwd=self.root,
            start_new_session=True,  # its own process group, see stop()
        )
        stderr.close()
        _running.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"dovecot exited with {code} while starting\n{self.logs()}")
            if self._greets():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"dovecot gave no IMAP greeting on {self.host}:{self.port} "
                    f"within {timeout}s\n{self.logs()}"
                )
            time.sleep(0.02)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                if self.tls == "implicit":
                    ctx = self.ssl_context()
                    with ctx.wrap_socket(sock, server_hostname=self.host) as tls_sock:
                        return _polite_probe(tls_sock)
                return _polite_probe(sock)
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master and all its children at once, and wait for them.

        Signalling only the master costs a fixed ~1 s (it waits for children);
        signalling the whole process group takes a few milliseconds. Open client
        connections are cut, as when a real server goes down.
        """
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the master leads its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                proc.wait(5)
                break
            if not _group_alive(pgid, besides=proc.pid):
                # Every child is gone, but the master sometimes sits out a 1 s
                # shutdown wait before reaping them; it has nothing left to do.
                time.sleep(0.02)
                if proc.poll() is None:
                    _kill_master_and_reap(proc)
                proc.wait(5)
                break
            time.sleep(0.005)
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                break
            time.sleep(0.01)
        self._wait_port_free(timeout)

    def restart(self) -> None:
        """Stop and start again: same port, same user and password, mail kept."""
        self.stop()
        self.start()

    def _wait_port_free(self, timeout: float) -> None:
        """Children may hold the listener a moment after the master has gone."""
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, self.port))
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"port {self.host}:{self.port} still in use"
                        ) from None
            time.sleep(0.02)

    def logins(self) -> list[tuple[str, str, bool]]:
        """``(user, mechanism, tls)`` of each successful login in the log so far.

        Dovecot lets a loopback client log in without STARTTLS (same remote and
        local IP counts as secured), so this is how a test proves TLS was used.
        """
        if not self.log_path.exists():
            return []
        found = []
        for match in _LOGIN_LINE.finditer(self.log_path.read_text(errors="replace")):
            fields = {f.strip() for f in match.group("rest").split(",")}
            found.append((match.group("user"), match.group("method"), "TLS" in fields))
        return found

    def logs(self) -> str:
        """Dovecot's log and stderr so far (for failure messages)."""
        parts = []
        for path in (self.stderr_path, self.log_path):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client side --------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's CA (only when tls != "none")."""
        if self.ca_file is None:
            raise RuntimeError("this server has no TLS")
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connect(self, *, login: bool = True, timeout: float = 10.0) -> imaplib.IMAP4:
        """An imaplib client, TLS as the server wants it, logged in unless told not to."""
        client: imaplib.IMAP4
        if self.tls == "implicit":
            client = imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=self.ssl_context(), timeout=timeout
            )
        else:
            client = imaplib.IMAP4(self.host, self.port, timeout=timeout)
            if self.tls == "starttls":
                client.starttls(self.ssl_context())
        if login:
            client.login(self.user, self.password)
        return client

    @contextlib.contextmanager
    def client(self, *, login: bool = True) -> Iterator[imaplib.IMAP4]:
        """``with server.client() as imap: ...`` — logs out at the end."""
        imap = self.connect(login=login)
        try:
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def create_mailbox(self, name: str) -> None:
        with self.client() as imap:
            self._ensure_mailbox(imap, name)

    @staticmethod
    def _ensure_mailbox(imap: imaplib.IMAP4, name: str) -> None:
        if name.upper() == "INBOX":
            return
        typ, data = imap.list('""', _quote(name))
        if typ == "OK" and any(item is not None for item in data):
            return
        typ, data = imap.create(_quote(name))
        _check(typ, data, f"CREATE {name}")

    def append(self, mailbox: str, raw: bytes, flags: tuple[str, ...] = ()) -> None:
        """APPEND ``raw`` to ``mailbox`` (created if missing) with ``flags``."""
        with self.client() as imap:
            self._ensure_mailbox(imap, mailbox)
            flag_list = f"({' '.join(flags)})" if flags else None
            typ, data = imap.append(_quote(mailbox), flag_list, None, raw)
            _check(typ, data, f"APPEND {mailbox}")

    def messages(self, mailbox: str) -> list[tuple[int, set[str], bytes]]:
        """``(uid, flags, raw)`` of each message, by UID; read-only, flags untouched.

        ``\\Recent`` is left out of the flags: it depends on who looked first.
        """
        with self.client() as imap:
            typ, data = imap.select(_quote(mailbox), readonly=True)
            _check(typ, data, f"EXAMINE {mailbox}")
            typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            _check(typ, data, f"UID FETCH in {mailbox}")
        result: list[tuple[int, set[str], bytes]] = []
        for item in data:
            if not isinstance(item, tuple):
                continue  # b")" closers and None for an empty mailbox
            head, body = item
            uid, flags = _FETCH_UID.search(head), _FETCH_FLAGS.search(head)
            if uid is None or flags is None:
                raise RuntimeError(f"unexpected FETCH response {head!r}")
            names = {f.decode() for f in flags.group(1).split()} - {"\\Recent"}
            result.append((int(uid.group(1)), names, body))
        return sorted(result, key=lambda m: m[0])

    def capabilities(self, *, authenticated: bool = True) -> set[str]:
        """CAPABILITY as a client sees it after login (or before, if not ``authenticated``).

        Before login over STARTTLS this is the list after the TLS handshake.
        """
        with self.client(login=authenticated) as imap:
            typ, data = imap.capability()
            _check(typ, data, "CAPABILITY")
        return {c.upper() for c in data[-1].decode().split()}


def _polite_probe(sock: socket.socket | ssl.SSLSocket) -> bool:
    greeting = sock.recv(256)
    if not greeting.startswith(b"* OK"):
        return False
    with contextlib.suppress(OSError):
        sock.sendall(b"p LOGOUT\r\n")
        sock.recv(256)
    return True


_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _kill_master_and_reap(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the master, and reap the dead children it had not reaped yet.

    Orphaned zombies go to PID 1, which in a container may never reap them;
    while this process is a child subreaper they come here instead and are
    reaped by PID (nothing else's exit status is touched).
    """
    zombies = [
        pid for pid, ppid, _, state in _processes() if ppid == proc.pid and state == "Z"
    ]
    libc = None
    previous = ctypes.c_int(0)
    if zombies and sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0)
            if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                libc = None
    try:
        proc.kill()
        proc.wait(5)
        if libc is not None:
            for pid in zombies:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    finally:
        if libc is not None and not previous.value:
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _processes() -> Iterator[tuple[int, int, int, str]]:
    """``(pid, ppid, pgrp, state)`` of each process, from Linux's /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..." — comm may hold spaces and parens.
        fields = stat[stat.rfind(")") + 2 :].split()
        yield int(entry.name), int(fields[1]), int(fields[2]), fields[0]


def _group_alive(pgid: int, besides: int | None = None) -> bool:
    """Whether a live (non-zombie) process other than ``besides`` is in the group.

    Zombies are left out: a container's PID 1 may never reap orphans.
    """
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(
        pgrp == pgid and state != "Z" and pid != besides
        for pid, _, pgrp, state in _processes()
    )


def _first_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"none of the users {names} exists")


@contextlib.contextmanager
def running_dovecot(
    root: Path, *, idle: bool = True, tls: str = "none"
) -> Iterator[DovecotServer]:
    """A started server, stopped on exit; for pytest fixtures::

    @pytest.fixture
    def imap_server(tmp_path):
        if not dovecot_available():
            pytest.skip("dovecot-imapd is not installed")
        with running_dovecot(tmp_path / "imap") as server:
            yield server
    """
    server = DovecotServer(root, idle=idle, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()

