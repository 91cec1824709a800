"""`ringi relation` as a department clerk uses it (SPEC 7): each refusal with its reason and
nothing stored, a registration by an uninterested party, the gap warning and its
acceptance, a proxy registered by a responsible approver, the history any employee may
read and nobody outside the directory, and a directory import that leaves registered
relations alone. Real store, real CLI, the company's own date."""

from __future__ import annotations

import datetime
import re
from dataclasses import replace
from pathlib import Path

from click.testing import CliRunner, Result

from daemon.audit.trail import AuditTrail
from daemon.cli.main import cli
from daemon.clock import SystemClock
from daemon.config import load_config
from daemon.directory.relations import record_of, registry_for
from daemon.store.db import Store
from daemon.store.directory_models import ApprovalRelation
from tests.support import ROOT, free_port, make_config, ringi, write_config

# The sample organisation with open-ended relations, so the test holds on any date.
ORG = (ROOT / "samples" / "organisation.toml").read_text().replace(
    "valid_to = 2027-12-31\n", "")
TODAY = datetime.date.today()  # the CLI's clock is the system's (UTC, the default zone)
SOON = TODAY + datetime.timedelta(days=10)


def setup(tmp_path: Path, db_url: str, **sections: object) -> Path:
    cfg = make_config(tmp_path, db_url, None, free_port(), **sections)
    cfg_file = write_config(cfg, tmp_path)
    org = tmp_path / "org.toml"
    org.write_text(ORG)
    done = ringi(cfg_file, "directory", "import", str(org))
    assert done.exit_code == 0, done.output
    return cfg_file


def add(cfg_file: Path, by: str, approver: str, obj: str, kind: str = "responsible",
        *extra: str) -> Result:
    which = "--unit" if obj in ("sales", "procurement", "eng", "accounting", "hq",
                                "design") else "--person"
    return ringi(cfg_file, "relation", "add", "--by", by, "--approver", approver, which, obj,
                 "--kind", kind, "--from", TODAY.isoformat(), *extra)


def listed(cfg_file: Path, subject: str) -> list[str]:
    out = ringi(cfg_file, "relation", "list", subject, "--by", "clark")
    assert out.exit_code == 0, out.output
    return [line for line in out.output.splitlines() if "->" in line]


def test_each_refusal_names_its_reason_and_stores_nothing(tmp_path: Path, db_url: str) -> None:
    cfg_file = setup(tmp_path, db_url)
    before = listed(cfg_file, "")
    cases = [
        # Brown belongs to Sales; and Watanabe is already Sales' responsible approver.
        (("brown", "yamamoto", "sales"), ["you belong to sales", "sales already has a "
                                          "responsible approver then: watanabe->unit sales"]),
        (("ito", "ito", "procurement"), ["you cannot register yourself as the approver"]),
        (("brown", "watanabe", "brown"), ["you cannot register your own approver"]),
        (("ito", "mori", "mori"), ["mori cannot be their own approver"]),
        # A staff member approves nothing, and a proxy needs a responsible registrar.
        (("clark", "kato", "mori", "proxy"), ["kato is not qualified to approve",
                                              "only a registered responsible approver may "
                                              "register a proxy"]),
        (("ito", "nobody", "procurement"), ["nobody is not in the directory"]),
        (("ito", "mori", "atlantis"), ["person atlantis is not in the directory"]),
    ]
    for args, reasons in cases:
        out = add(cfg_file, *args)
        assert out.exit_code == 1, (args, out.output)
        assert "refused, nothing stored" in out.output, out.output
        for reason in reasons:
            assert reason in out.output, (args, reason, out.output)
    past = ringi(cfg_file, "relation", "add", "--by", "ito", "--approver", "mori", "--unit",
                 "procurement", "--kind", "responsible", "--from",
                 (TODAY - datetime.timedelta(days=3)).isoformat())
    assert past.exit_code == 1 and "is in the past" in past.output, past.output
    assert listed(cfg_file, "") == before
    history = ringi(cfg_file, "relation", "history", "--by", "clark")
    assert history.exit_code == 0 and "no history" in history.output, history.output


def test_register_end_with_a_gap_and_read_the_history(tmp_path: Path, db_url: str) -> None:
    cfg_file = setup(tmp_path, db_url)
    out = add(cfg_file, "ito", "mori", "procurement", "responsible", "--note", "new head")
    assert out.exit_code == 0, out.output
    assert out.output.startswith("registered: relation ")
    rid = out.output.split()[2]
    assert any("mori->unit procurement responsible" in line and "registered by ito" in line
               for line in listed(cfg_file, "procurement"))
    # Only the registrar (or the administrator) may change it.
    other = ringi(cfg_file, "relation", "end", rid, "--by", "kato")
    assert other.exit_code == 1 and "only its registrar (ito)" in other.output, other.output
    # Ending it leaves Procurement without a responsible approver: a warning, nothing stored.
    end = ringi(cfg_file, "relation", "end", rid, "--by", "ito", "--on", SOON.isoformat())
    assert end.exit_code == 1, end.output
    after = (SOON + datetime.timedelta(days=1)).isoformat()
    assert "nothing stored" in end.output and f"from {after} on" in end.output, end.output
    assert any(line.endswith("..  (registered, registered by ito)  new head")
               or f"procurement responsible {TODAY.isoformat()}.. " in line
               for line in listed(cfg_file, "procurement")), listed(cfg_file, "procurement")
    ended = ringi(cfg_file, "relation", "end", rid, "--by", "ito", "--on", SOON.isoformat(),
                  "--accept-gap")
    assert ended.exit_code == 0, ended.output
    assert f"gap accepted: no responsible approver from {after} on" in ended.output
    assert any(f"{TODAY.isoformat()}..{SOON.isoformat()}" in line
               for line in listed(cfg_file, "procurement"))
    # Any employee reads the history, as text and as CSV; nobody outside the directory.
    text = ringi(cfg_file, "relation", "history", "procurement", "--by", "kato")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert len(lines) == 2, lines
    assert f"relation {rid} registered by ito (command)" in lines[0]
    assert f"relation {rid} ended by ito (command)" in lines[1] and "gap accepted" in lines[1]
    as_csv = ringi(cfg_file, "relation", "history", "procurement", "--by", "kato", "--csv")
    assert as_csv.output.splitlines()[0].startswith("id,relation,at,by,channel,action")
    assert len(as_csv.output.splitlines()) == 3
    outsider = ringi(cfg_file, "relation", "history", "procurement", "--by", "stranger")
    assert outsider.exit_code == 1 and "not in the directory" in outsider.output
    assert "procurement" not in outsider.output.replace("'stranger'", "")
    # Every change is in the audit trail too.
    audit = ringi(cfg_file, "audit", "show", "--subject", f"relation {rid}")
    assert "relation registered" in audit.output and "relation ended" in audit.output


def test_a_responsible_approver_registers_a_proxy(tmp_path: Path, db_url: str) -> None:
    cfg_file = setup(tmp_path, db_url)
    # Watanabe is Sales' responsible approver: he may register a proxy for Brown.
    out = add(cfg_file, "watanabe", "yamamoto", "brown", "proxy")
    assert out.exit_code == 0, out.output
    # The strict variant wants a responsible approver of that same object.
    strict = setup(tmp_path / "strict", db_url, relations={"proxy_rule": "same_object"})
    refused = add(strict, "watanabe", "yamamoto", "brown", "proxy")
    assert refused.exit_code == 1
    assert "only a responsible approver of person brown may register its proxy" in \
        refused.output


def test_a_directory_import_leaves_registered_relations_alone(tmp_path: Path,
                                                             db_url: str) -> None:
    cfg_file = setup(tmp_path, db_url)
    assert add(cfg_file, "ito", "mori", "procurement").exit_code == 0
    again = ringi(cfg_file, "directory", "import", str(tmp_path / "org.toml"))
    assert again.exit_code == 0, again.output
    assert "relation mori" not in again.output  # nothing deactivated
    assert any("mori->unit procurement" in line for line in listed(cfg_file, "procurement"))


def test_the_guide_commands_run_as_written(tmp_path: Path, db_url: str) -> None:
    """The `ringi relation` lines of docs/employees.md, verbatim, on the sample organisation,
    on the day they were written (a shifted clock, as an administrator would rehearse)."""
    cfg = make_config(tmp_path, db_url, None, free_port())
    cfg_file = write_config(cfg, tmp_path)
    assert ringi(cfg_file, "directory", "import",
                 str(ROOT / "samples" / "organisation.toml")).exit_code == 0
    guide = (ROOT / "docs" / "employees.md").read_text()
    section = guide.split("## Approval relations\n", 1)[1].split("\n## ", 1)[0]
    lines = re.findall(r"^    (ringi relation .+)$", section, re.MULTILINE)
    assert len(lines) == 7, lines
    written = datetime.datetime(2026, 12, 3, 9, 0, tzinfo=datetime.UTC)
    offset = int((written - datetime.datetime.now(datetime.UTC)).total_seconds())
    outputs = []
    for line in lines:
        args = line.split()[1:]
        out = CliRunner().invoke(cli, ["--config", str(cfg_file), *args],
                                 env={"RINGI_CLOCK_OFFSET": f"{offset}s"})
        outputs.append((out.exit_code, out.output))
    codes = [code for code, _ in outputs]
    assert codes == [0, 0, 0, 1, 0, 0, 0], outputs
    assert "registered: relation 4 (mori->unit procurement responsible 2027-04-01..)" in \
        outputs[0][1]
    assert "registered: relation 5 (yamamoto->person brown proxy 2027-04-01..2027-04-30)" \
        in outputs[1][1]
    assert "updated: relation 5" in outputs[2][1] and "2027-05-15" in outputs[2][1]
    assert "from 2027-10-01 on" in outputs[3][1] and "nothing stored" in outputs[3][1]
    assert "ended: relation 4" in outputs[4][1]
    assert "gap accepted: no responsible approver from 2027-10-01 on" in outputs[4][1]
    assert "mori->unit procurement responsible 2027-04-01..2027-09-30" in outputs[5][1]
    rows = [row for row in outputs[6][1].splitlines() if not row.startswith("ringi: WARNING")]
    assert len(rows) == 3 and rows[0].startswith("id,relation,at,by"), rows  # and 2 changes


def test_a_gap_kept_aside_is_stored_with_its_one_time_code_once(tmp_path: Path,
                                                                 db_url: str) -> None:
    """On the mail channel a gap warning keeps the change aside under a one-time code; the
    registrar (and nobody else) stores it with that code, once."""
    cfg_file = setup(tmp_path, db_url)
    rid = add(cfg_file, "ito", "mori", "procurement").output.split()[2]
    cfg = load_config(cfg_file)
    store = Store(cfg.database_url)
    registry = registry_for(cfg, SystemClock(), AuditTrail(SystemClock()))
    with store.transaction() as s:
        row = s.get(ApprovalRelation, int(rid))
        assert row is not None
        out = registry.change(s, "ito", "end", replace(record_of(row), valid_to=SOON),
                              int(rid), "mail")
    store.dispose()
    assert out.state == "gap" and out.code, out
    wrong = ringi(cfg_file, "relation", "confirm", out.code, "--by", "kato")
    assert wrong.exit_code == 1 and "no change waits for that code" in wrong.output
    done = ringi(cfg_file, "relation", "confirm", out.code.lower(), "--by", "ito")
    assert done.exit_code == 0, done.output
    assert f"stored: relation {rid}" in done.output and "gap accepted" in done.output
    again = ringi(cfg_file, "relation", "confirm", out.code, "--by", "ito")
    assert again.exit_code == 1  # single use
    assert any(f"{TODAY.isoformat()}..{SOON.isoformat()}" in line
               for line in listed(cfg_file, "procurement"))


def test_ending_a_relation_before_it_begins_cancels_it(tmp_path: Path, db_url: str) -> None:
    cfg_file = setup(tmp_path, db_url)
    out = ringi(cfg_file, "relation", "add", "--by", "ito", "--approver", "mori", "--unit",
                "procurement", "--kind", "responsible", "--from", SOON.isoformat())
    assert out.exit_code == 0, out.output
    rid = out.output.split()[2]
    # Today, before it begins: Procurement would have nobody from SOON on, as before.
    warned = ringi(cfg_file, "relation", "end", rid, "--by", "ito")
    assert warned.exit_code == 1 and f"from {SOON.isoformat()} on" in warned.output
    ended = ringi(cfg_file, "relation", "end", rid, "--by", "ito", "--accept-gap")
    assert ended.exit_code == 0, ended.output
    assert f"ended: relation {rid}" in ended.output and "cancelled, it had not begun" in \
        ended.output
    assert not any("mori->unit procurement" in line for line in listed(cfg_file, "procurement"))
    history = ringi(cfg_file, "relation", "history", "procurement", "--by", "kato").output
    assert f"relation {rid} cancelled by ito (command): - (was mori->unit procurement " \
        f"responsible {SOON.isoformat()}..)" in history, history
    again = ringi(cfg_file, "relation", "end", rid, "--by", "ito")
    assert again.exit_code == 1 and "there is no such relation in force" in again.output
