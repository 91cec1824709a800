"""Terminal-safe output: text from mail and files reaches the operator's terminal with every
control character made visible, whichever `ringi` command prints it."""

from __future__ import annotations

import re
import shutil
import smtplib
from email.message import EmailMessage
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from daemon.cli.main import cli
from daemon.store.models import Attachment, Case, CaseEvent, WorkItem
from tests.integration.test_outcomes import SMITH, TAKAHASHI, number_of, start_world
from tests.support import REQUEST, ROOT, CapturingRelay, write_config

# Retitle the terminal, clear the screen, a C1 CSI, a bidi override, a CR that overwrites.
HOSTILE = "\x1b]0;pwned\x07 \x1b[2J \x9b31m \u202eevil\u202c \rOK"
IN_MAIL = HOSTILE.split(" \r")[0]  # a header cannot carry the CR itself
# Anything a terminal acts on: C0 but TAB and LF, DEL, C1, bidi controls, line separators.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                 "\u202a-\u202e\u2066-\u2069]")


def hostile_request(port: int) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SMITH, REQUEST, f"Laptop {IN_MAIL}"
    msg.set_content("Type: purchase\nItem: Laptop \x1b[2J\x9b\nSupplier: ACME\x1b]0;x\x07\n"
                    "Quantity: 1\nAmount: 180000\nCategory: equipment\n"
                    f"Notes: {HOSTILE}\n")
    msg.add_attachment(b"%PDF-1.4 quote", maintype="application", subtype="pdf",
                       filename=f"quote{IN_MAIL}.pdf")
    with smtplib.SMTP("127.0.0.1", port) as c:
        c.send_message(msg)


def test_every_command_prints_mail_text_with_controls_made_visible(
        tmp_path: Path, relay: CapturingRelay) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "conditions" / "x.toml").write_text(
        'name = "x"\nsetter = "watanabe"\n[[conditions]]\nname = "n\\u001b[2J"\n'
        'expr = "case.amount <= 5"\n[[examples]]\nname = "e\\u001b]0;pwned\\u0007"\n'
        'fields = { amount = "9" }\nexpect = "reject"\n')
    w = start_world(tmp_path, f"sqlite:///{tmp_path / 'r.db'}", relay, rules=rules,
                    paths={"rules": str(rules)})
    try:
        hostile_request(w.port)
        number = number_of(w.one(SMITH))
        w.reply(w.one(TAKAHASHI), TAKAHASHI, f"reject\nReason: too dear {IN_MAIL}")
        w.app.inbound_runner.drain()
        # Whatever intake kept, the stored record holds raw controls (older data, other
        # channels): the printing side alone must make them harmless.
        with w.app.store.transaction() as s:
            case = s.scalar(select(Case).where(Case.number == number))
            assert case is not None
            case.title = f"Laptop {HOSTILE}"
            case.fields = {**case.fields, "notes": HOSTILE}
            event = s.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)).first()
            assert event is not None
            event.reason = HOSTILE
            s.add(Attachment(case_id=case.id, added_at=case.created_at,
                             filename=f"q{HOSTILE}.pdf", content_type="application/pdf",
                             size=1, sha256="0" * 64))
            item = s.scalars(select(WorkItem)).first()
            assert item is not None
            item.last_error = f"refused {HOSTILE}\nsecond line"
    finally:
        w.app.stop()
    cfg_file = write_config(w.app.cfg, tmp_path)
    runner = CliRunner()
    conf = ["--config", str(cfg_file)]
    outputs = {}
    for label, args in (("set", ["factor", "set", "supplier_note", HOSTILE]),
                        ("factors", ["factor", "list"]), ("show", ["case", "show", number]),
                        ("status", ["status"]), ("audit", ["audit", "show"]),
                        ("verify", ["audit", "verify"]), ("rules", ["rules", "check"]),
                        ("nocase", ["case", "show", f"R{HOSTILE}"]),
                        ("unset", ["factor", "unset", f"n{HOSTILE}"])):
        result = runner.invoke(cli, [*conf, *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), label
        text = (result.stdout_bytes + result.stderr_bytes).decode()
        assert not RAW.search(text), (label, RAW.findall(text))
        outputs[label] = text
    # Made visible, not dropped: the operator sees that something was there.
    shown = outputs["show"]
    assert "Laptop \\x1b]0;pwned\\x07 \\x1b[2J \\x9b31m \\u202eevil\\u202c \\x0dOK" in shown
    assert "reason: \\x1b]0;pwned\\x07" in shown
    assert "attachment: q\\x1b]0;pwned\\x07" in shown
    assert "refused \\x1b]0;pwned\\x07" in outputs["status"]
    assert "\\x9b31m \\u202eevil" in outputs["audit"]  # the factor's value (JSON keeps C1)
    assert "\\x1b]0;pwned\\x07" in outputs["factors"]
    assert "pass  x: e\\x1b]0;pwned\\x07: reject (failing: n\\x1b[2J)" in outputs["rules"]
    assert "ringi: no case R\\x1b]0;pwned\\x07" in outputs["nocase"]
