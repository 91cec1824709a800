"""A live Postfix between ringi and the world: ringi relays through it, the approver's server
refuses the approval request, Postfix itself writes the DSN and routes it (with
`recipient_delimiter = +`) to the request's return path on ringi's listener.

Runs a private Postfix instance (its own configuration, queue and port under a temporary
folder); needs the Debian `postfix` package and root, as Postfix's master does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.clock import FrozenClock
from daemon.store.models import Bounce
from tests.integration.test_outcomes import ADMIN, SATO, TANAKA, World, number_of, travel
from tests.support import CapturingRelay, free_port, make_config, wait_until

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
pytestmark = pytest.mark.skipif(
    not Path(POSTFIX).exists() or os.geteuid() != 0,
    reason="needs the postfix package and root (Postfix's master runs as root)")

MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def postfix_main(root: Path, ringi_port: int, relay_port: int) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.corp.test
mydomain = corp.test
myorigin = corp.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
recipient_delimiter = +
transport_maps = inline:{{ ringi@example.com=smtp:[127.0.0.1]:{ringi_port},
    example.com=smtp:[127.0.0.1]:{relay_port} }}
default_transport = error:no mail leaves the test
smtp_dns_support_level = disabled
smtp_tls_security_level = none
maillog_file_prefixes = {root}
maillog_file = {root}/postfix.log
alias_maps =
alias_database =
biff = no
"""


@pytest.fixture
def postfix_world(relay: CapturingRelay) -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="ringi-postfix-"))
    root.chmod(0o755)  # Postfix's daemons run as the postfix user
    (root / "conf").mkdir()
    (root / "spool").mkdir()
    (root / "data").mkdir()
    shutil.chown(root / "data", "postfix")
    pf_port, ringi_port = free_port(), free_port()
    (root / "conf" / "main.cf").write_text(postfix_main(root, ringi_port, relay.port))
    (root / "conf" / "master.cf").write_text(MASTER.format(port=pf_port))
    conf = str(root / "conf")
    subprocess.run([POSTFIX, "-c", conf, "start"], check=True, capture_output=True,
                   timeout=30)
    cfg = make_config(root, f"sqlite:///{root / 'ringi.db'}", pf_port, ringi_port)
    app = App(cfg, clock=FrozenClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)))
    try:
        app.prepare()
        app.start()
        yield World(app, relay, app.clock)  # type: ignore[arg-type]
    finally:
        app.stop()
        subprocess.run([POSTFIX, "-c", conf, "stop"], capture_output=True, timeout=30)
        log = root / "postfix.log"
        print(log.read_text() if log.exists() else "(no Postfix log)")
        shutil.rmtree(root, ignore_errors=True)


def test_postfix_bounces_an_approval_request_and_the_administrator_is_asked(
        postfix_world: World) -> None:
    w = postfix_world
    # Sato's mail server refuses the request at the end of DATA: Postfix bounces it.
    w.relay.refuse[SATO] = ["550 5.1.1 <sato@example.com>: Recipient address rejected: "
                            "User unknown in local recipient table"]
    w.send(TANAKA, "Trip", travel("54,500"))
    ack = w.one(TANAKA)  # through Postfix, from the ack's own return path
    assert ack.mail_from.startswith("ringi+bounce-")
    number = number_of(ack)
    asked = w.one(ADMIN)  # Sato has no proxy: the administrator, at once
    assert "Approval needed" in asked.subject and "could not be delivered" in asked.body
    detail = next(d for k, d in w.events(number) if k == "bounced")
    assert "5.1.1" in detail and "User unknown" in detail and "return-path" in detail
    with w.app.store.transaction() as s:
        rows = [(b.reporter, b.matched_by, b.action) for b in s.scalars(select(Bounce))]
    assert rows == [("mx.corp.test", "return-path", "failed")]
    wait_until(lambda: not w.relay.refuse[SATO], what="the refusal to be used")
    w.nothing_more(SATO, TANAKA)
