"""Every mail template, in every language, on every branch: a readable header and body.

The branches are found in the template source (`x == "value"`, `x in (...)`, `{% if x %}`),
so a branch added to a template is rendered here without editing this test.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import pytest

from daemon.notify.templates import LOCALES, Templates
from daemon.notify.wording import SUBJECT_MAX
from tests.support import ROOT

TEMPLATES = Templates(ROOT / "mailtemplates", zone="Asia/Tokyo")
NAMES = sorted(p.stem for p in (ROOT / "mailtemplates" / "en").glob("*.txt"))
AT = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
TOKEN = "a" * 32
ALIASES = {"x": "view.execution"}  # `{% set x = view.execution %}` in _execution.inc

VIEW: dict[str, Any] = {
    "number": "R-2026-000123", "title": "Trip to Osaka for the Kansai customer review",
    "type": "travel", "type_title": "Travel", "state": "in_review", "requester": "Taro Tanaka",
    "amount": "¥180,000", "created": "2026-12-03 09:00 UTC",
    "fields": [{"label": "Amount", "value": "180,000"}],
    "approvals": [{"name": "Sato (Manager)", "at": AT, "reason": "ok"},
                  {"name": "Suzuki", "at": AT, "reason": ""}],
    "attachments": [{"filename": "quote.pdf", "size": 10, "sha256": "ab" * 32}],
    "execution": {"state": "scheduled", "reason": "not_enabled", "destination": "ACME",
                  "due": AT, "later": True, "sent": AT},
}
DOCUMENTS = [
    {"filename": f"{why}.pdf", "name": f"{why}.pdf", "q": f"{why}.pdf", "sha256": "ab" * 32,
     "size": 9, "short": "abcd", "outcome": "refused", "why": why, "detail": "pdf"}
    for why in ("too_large", "blocked", "empty", "refused", "not_done", "no_documents")
] + [{"filename": f"{o}.pdf", "name": f"{o}.pdf", "q": f"{o}.pdf", "sha256": "ab" * 32,
      "size": 9, "short": "abcd", "outcome": o, "why": "", "detail": ""}
     for o in ("added", "already")]
GAPS = [{"first": "2027-01-01", "last": None, "text": "from 2027-01-01"},
        {"first": "2027-01-02", "last": "2027-01-02", "text": "2027-01-02"},
        {"first": "2027-01-03", "last": "2027-01-05", "text": "2027-01-03 to 2027-01-05"}]

BASE: dict[str, Any] = {
    "view": VIEW, "case": {"number": "R-2026-000123", "title": "Trip"}, "recipient": "Taro Tanaka",
    "request_address": "ringi@example.com", "token": TOKEN,
    "links": {w: f"mailto:x?{w}" for w in ("APPROVE", "REJECT", "RETURN", "HOLD")},
    "note": "", "note_detail": "Sato (Manager)", "mode": "single", "expires": AT,
    "next": "Suzuki (Director)", "by": "Sato (Manager)", "to": "Suzuki", "reason": "too dear",
    "decision": "hold", "documents": DOCUMENTS, "number": "R-2026-000123",
    "problem": "unknown_token", "problems": ["Amount: '12,0OO' is not an amount of money"],
    "asked": "Sato", "step_state": "approved", "decided_by": "Sato", "decided_at": AT,
    "case_state": "approved", "outcome": "ok", "command": "status", "state": "in_review",
    "waiting": ["Sato"], "items": [{
        "number": "R-2026-000123", "title": "Trip", "asked": AT, "type_title": "Travel",
        "requester": "Taro Tanaka", "amount": "¥180,000", "on_hold": True, "mode": "all",
        "links": {w: f"mailto:x?{w}" for w in ("APPROVE", "REJECT", "RETURN", "HOLD")}}],
    "changes": ["Amount: 180,000 → 170,000"], "action": "add", "why": "not_found",
    "given": "travle", "types": [{"name": "travel", "title": "Travel"}],
    "type_title": "Travel", "type_name": "travel", "form": "Type: travel\nAmount: \n",
    "subject": "Trip to Osaka", "address": "stranger@example.net", "code": "123456",
    "what": "set 'default'", "hours": 24, "entry": "req.txt", "folder": "inbox",
    "reorganisation": 3, "alert_subject": "Disk full", "alert_body": "The spool is full.",
    "bounced": True, "admin": True, "error": "550 no such user", "attempts": 3, "item": 7,
    "approved": "3 Dec 2026 18:00 (Asia/Tokyo)", "requester": "Taro Tanaka",
    "requester_email": "tanaka@example.com", "attachment": "order.csv",
    "partner": "Kobe Precision", "title": "Bracket drawing", "delivery": "d-1",
    "folder_q": "/srv/kobe", "volumes": ["a.7z.001"], "stamp_fingerprint": "ab:cd",
    "misses": [{"condition": "amount", "given": "¥600,000", "required": "at most ¥500,000",
                "documents": ["quote.pdf"]}],
    "notes": ["Amount lowered."], "set_name": "default", "until": AT, "current": "[x]\n",
    "step": "manager", "detail": "nobody holds the post", "gaps": GAPS,
    "word": "register", "arg": "tanaka", "relation": "sato -> tanaka", "relation_id": 12,
    "object": "tanaka", "reasons": [{"text": "you cannot approve yourself"}],
    "lines": ["12 sato -> tanaka"], "total": 3, "cancelled": False,
    "relation_id_": 12, "approver": "Sato", "approver_id": "sato", "object_type": "person",
    "object_id": "tanaka", "object_name": "Taro Tanaka", "kind": "responsible",
    "last_day": "2027-04-30", "days_left": 3, "from_file": False, "for_registrar": True,
    "registered_by": "sato", "recipient_id": "sato", "window": 7,
    "saved": "set 'default'", "conditions": True, "listing": ["default"],
    "reapplied": True, "deferred": False, "revision_until": AT,
    # digests (daemon.cases.digests, digestreplies, commands)
    "daily": True, "more": 2, "hour": 8, "day": dt.date(2026, 12, 3), "example": "R-2026-000123",
    "on": True, "changed": True, "timezone": "Asia/Tokyo", "owner": "Sato", "done": 1,
    "refused": 2,
    "open_items": [{"number": "R-2026-000124", "title": "Fair", "requester": "Taro Tanaka"}],
    "results": [
        {"number": "R-2026-000123", "title": "Trip", "line": "R-2026-000123 reject: no",
         "outcome": "done", "decision": "reject", "reason": "no", "next": "Suzuki"},
        {"number": "R-2026-000124", "title": "Fair", "line": "R-2026-000124 approve",
         "outcome": "refused", "problem": "moved_on",
         "detail": {"step_state": "approved", "decided_by": "Sato", "decided_at": AT,
                    "case_state": "in_review", "asked": "Sato"}},
        {"number": "R-2026-000125", "title": "", "line": "R-2026-000125 approve",
         "outcome": "refused", "problem": "not_in_digest", "detail": {}},
        {"number": "R-2026-000126", "title": "Bus", "line": "R-2026-000126 hold",
         "outcome": "kept"}],
}
# Names a template asks `is defined` about: also rendered without them.
OPTIONAL = ("conditions", "listing", "reapplied", "deferred", "documents", "view",
            "revision_until")

_EQ = re.compile(r"([a-z_][\w.]*)\s*(?:==|!=)\s*(\"[^\"]*\"|\d+)")
_IN = re.compile(r"([a-z_][\w.]*)\s+in\s+\(([^)]*)\)")
_GET = re.compile(r"\}\.get\(([a-z_][\w.]*)")
_IF = re.compile(r"(?:{%-?\s*(?:el)?if|\bif)\s+(not\s+)?([a-z_][\w.]*)\s*(?:%}|else|and|or|\))")


def _set(ctx: dict[str, Any], name: str, value: Any) -> None:
    for alias, real in ALIASES.items():
        if name == alias or name.startswith(alias + "."):
            name = real + name[len(alias):]
    *path, last = name.split(".")
    where: Any = ctx
    for part in path:
        if not isinstance(where, dict) or part not in where or where[part] is None:
            return  # a loop variable (d.why, g.last): covered by the data itself
        where = where[part]
    if isinstance(where, dict) and (path or last in ctx):
        where[last] = value


def _source(name: str, locale: str) -> str:
    text = (ROOT / "mailtemplates" / locale / f"{name}.txt").read_text()
    for inc in re.findall(r'include "([^"]+)"', text):
        text += (ROOT / "mailtemplates" / inc).read_text()
    return text


def _branch_values(source: str) -> Iterator[tuple[str, Any]]:
    for name, literal in _EQ.findall(source):
        yield name, int(literal) if literal.isdigit() else literal.strip('"')
    for name, listed in _IN.findall(source):
        for literal in re.findall(r'"([^"]*)"', listed):
            yield name, literal
    for name in _GET.findall(source):
        for literal in re.findall(r'"(\w+)":', source):
            yield name, literal
    for _, name in _IF.findall(source):
        if name not in ("none", "true", "false", "defined"):
            yield name, None
            yield name, []


def contexts(name: str, locale: str,
             base: dict[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The base context, then one variant per branch found in the template's source."""
    base = BASE if base is None else base
    source = _source(name, locale)
    yield "base", deepcopy(base)
    done: set[str] = set()
    for var, value in _branch_values(source):
        if f"{var}={value!r}" in done:
            continue
        done.add(f"{var}={value!r}")
        ctx = deepcopy(base)
        _set(ctx, var, value)
        yield f"{var}={value!r}", ctx
    for var in OPTIONAL:
        if f"{var} is defined" in source:
            ctx = deepcopy(base)
            del ctx[var]
            yield f"no {var}", ctx


def renders(name: str, locale: str,
            base: dict[str, Any] | None = None) -> Iterator[tuple[str, str, Any]]:
    """(label, raw text, rendered mail) for every branch of one template."""
    template = TEMPLATES.env.get_template(f"{locale}/{name}.txt")
    for label, ctx in contexts(name, locale, base):
        try:
            text = template.render(locale=locale, **ctx)
        except Exception:
            # A variant giving a name a value of a kind its callers never send (a list
            # where a dict is indexed, no view where one always comes) is not a branch;
            # the base context always renders.
            if label == "base":
                raise
            continue
        yield label, text, TEMPLATES.render(name, locale, ctx)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", NAMES)
def test_every_branch_reads_well(name: str, locale: str) -> None:
    seen = 0
    for label, text, mail in renders(name, locale):
        seen += 1
        where = f"{locale}/{name}.txt [{label}]"
        head = text.partition("\n\n")[0]
        assert head.startswith("Subject: ") and "\n" not in head, \
            f"{where}: the subject line runs into the body: {head!r}"
        subject = mail.subject
        assert subject.strip(), where
        shown = subject.removesuffix(f" [#{TOKEN}]")
        assert len(shown) <= SUBJECT_MAX, f"{where}: subject too long: {subject!r}"
        body = mail.body.strip()
        assert body, where
        assert not body.startswith(shown[:30]), f"{where}: body repeats the subject"
        for piece in (subject, body):
            assert "{{" not in piece and "{%" not in piece, f"{where}: {piece!r}"
            assert not re.search(r"\bNone\b", piece), f"{where}: None leaked: {piece!r}"
            assert not re.search(r"\bnone\b", piece.replace("(none)", "")), \
                f"{where}: none leaked: {piece!r}"
    assert seen, f"{locale}/{name}.txt: no context rendered"
