"""The `relation` commands by mail, as a department clerk sends them (SPEC 7): the form,
refusals with their reasons and nothing stored, a Japanese registration, a proxy registered
by a responsible approver who then decides a case, the gap warning confirmed by replying,
the history (text and CSV) for any employee and nothing for an outsider. Real SMTP
listener, real relay, real store, frozen clock (Monday 2026-11-02)."""

from __future__ import annotations

import csv
import datetime
import io
import re
from pathlib import Path

from sqlalchemy import select

from daemon.store.condition_models import AuditEntry
from daemon.store.directory_models import ApprovalRelation
from tests.integration.test_outcomes import (
    BROWN,
    ITO,
    KATO,
    SMITH,
    TAKAHASHI,
    WATANABE,
    World,
    number_of,
    start_world,
    travel,
)
from tests.support import ROOT, Captured, CapturingRelay, send

OUTSIDER = "stranger@elsewhere.example"


def registered(w: World) -> list[tuple[str, str, str, str]]:
    with w.app.store.transaction() as s:
        return [(r.approver_id, r.object_id, r.kind, str(r.valid_to)) for r in s.scalars(
            select(ApprovalRelation).where(ApprovalRelation.source == "registered",
                                           ApprovalRelation.active.is_(True))
            .order_by(ApprovalRelation.id))]


def relation_id(mail: Captured) -> str:
    m = re.search(r"(?:relation|関係) (\d+)", mail.subject)
    assert m, mail.subject
    return m.group(1)


def csv_of(mail: Captured) -> list[dict[str, str]]:
    parts = [p for p in mail.message.iter_attachments()
             if p.get_filename() == "relation-history.csv"]
    assert len(parts) == 1, [p.get_filename() for p in mail.message.iter_attachments()]
    data = parts[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_the_form_and_every_refusal_by_mail_store_nothing(world: World) -> None:
    w = world
    w.send(BROWN, "relation register", "")
    form = w.one(BROWN)
    assert form.subject == "relation register: the form to fill in"
    assert "Approver:\nPerson:\nUnit:\nKind: responsible\nValid from: 2026-11-02" in form.body
    # Brown belongs to Sales, which has Watanabe as its responsible approver already.
    w.send(BROWN, "Re: relation register",
           "Hello,\n\nApprover: yamamoto\nUnit: sales\nKind: responsible\n"
           "Valid from: 2026-11-10\n\nBest regards,\nEmily\n")
    refused = w.one(BROWN)
    assert refused.subject == "relation register: not done", refused.subject
    assert "you belong to sales, so you cannot register its approver" in refused.body
    assert "sales already has a responsible approver then: watanabe->unit sales" \
        in refused.body
    # A staff member approves nothing, and registers no proxy (not a responsible approver).
    w.send(SMITH, "relation register", "Approver: kato\nPerson: brown\nKind: proxy\n"
           "Valid from: 2026-11-03\nValid to: 2026-11-30\n")
    body = w.one(SMITH).body
    assert "kato is not qualified to approve" in body
    assert "only a registered responsible approver may register a proxy" in body
    # A misspelt line is a problem, never a silently open-ended relation.
    w.send(ITO, "relation register", "Approver: mori\nUnit: procurement\nKind: responsible\n"
           "Valid from: 2026-11-03\nVaild to: 2026-11-30\n")
    bad = w.one(ITO)
    assert "「vaild to」は承認関係の書式の項目ではありません" in bad.body
    assert "承認者: \n" not in bad.body and "承認者:\n" in bad.body  # the blank form again
    w.send(ITO, "relation end abc", "")
    assert "関係を番号で指定してください" in w.one(ITO).body
    w.send(ITO, "relation register", "Approver: mori\nUnit: procurement\nKind: boss\n"
           "Valid from: 2026-02-30\n")
    bad = w.one(ITO).body
    assert "「boss」は「責任者」でも「代理」でもありません" in bad
    assert "「2026-02-30」は存在しない日付です" in bad
    assert registered(w) == []
    w.nothing_more(BROWN, SMITH, ITO)


def test_japanese_registration_gap_confirmed_by_reply_and_history(world: World) -> None:
    w = world
    w.send(ITO, "承認関係 登録", "お疲れ様です。\n\n承認者: mori@example.com\n対象部署: 総務部\n"
           "種別: 責任者\n開始日: ２０２６年１１月３日\n終了日:\n備考: 新任\n\n伊藤\n")
    assert "unit 総務部 は名簿にありません" in w.one(ITO).body  # no such unit
    # People and units by id, address, or their unique name in either language.
    w.send(ITO, "承認関係 登録", "お疲れ様です。\n\n承認者: 森 大輔\n対象部署: 購買部\n"
           "種別: 責任者\n開始日: ２０２６年１１月３日\n終了日:\n備考: 新任\n\n伊藤\n")
    done = w.one(ITO)
    assert done.subject.startswith("承認関係 登録: 完了（関係 "), done.subject
    assert "mori->unit procurement responsible 2026-11-03.." in done.body
    number = relation_id(done)
    assert registered(w) == [("mori", "procurement", "responsible", "None")]
    # Only its registrar (or the administrator) may change it.
    w.send(BROWN, f"relation update {number}", "Valid to: 2026-12-31\n")
    assert "only its registrar (ito) or the administrator may change it" in w.one(BROWN).body
    # Ending it leaves Procurement without a responsible approver: a warning, nothing stored.
    w.send(ITO, f"承認関係 終了 {number}", "終了日: 2026/11/20\n")
    warning = w.one(ITO)
    m = re.fullmatch(r"承認関係 確認 ([0-9A-F]{12})", warning.subject)
    assert m, warning.subject
    assert "2026年11月21日以降" in warning.body
    assert registered(w) == [("mori", "procurement", "responsible", "None")]
    # Another employee's reply with the same code stores nothing.
    w.send(BROWN, f"Re: {warning.subject}", "")
    assert "No change waits for that code" in w.one(BROWN).body
    w.send(ITO, f"Re: {warning.subject}", "よろしくお願いします。")
    stored = w.one(ITO)
    assert "保存しました: 関係" in stored.body and "了承済み: 2026年11月21日以降" in stored.body
    assert registered(w) == [("mori", "procurement", "responsible", "2026-11-20")]
    w.send(ITO, f"Re: {warning.subject}", "")  # single use
    assert "このコードで待っている変更はありません" in w.one(ITO).body
    # Any employee reads the history, as text and CSV; an outsider gets nothing of it.
    w.send(KATO, "relation history Procurement", "")
    history = w.one(KATO)
    assert "registered by ito (mail)" in history.body
    assert "ended by ito (mail)" in history.body and "gap accepted" in history.body
    rows = csv_of(history)
    assert [(r["action"], r["by"], r["valid_to"]) for r in rows] == [
        ("registered", "ito", ""), ("ended", "ito", "2026-11-20")]
    w.send(OUTSIDER, "relation history procurement", "")
    outsider = w.one(OUTSIDER)
    assert "mori" not in outsider.body and not list(outsider.message.iter_attachments())
    with w.app.store.transaction() as s:
        audited = [r.kind for r in s.scalars(select(AuditEntry).where(
            AuditEntry.kind.like("relation %")).order_by(AuditEntry.seq))]
    assert audited == ["relation registered", "relation ended"]
    w.nothing_more(ITO, KATO, BROWN, OUTSIDER)


def test_a_proxy_registered_by_a_responsible_approver_decides_a_case(world: World) -> None:
    w = world
    # Watanabe, Sales' responsible approver, registers the director as Takahashi's proxy.
    w.send(WATANABE, "relation register", "Approver: yamamoto@example.com\n"
           "Person: takahashi\nKind: proxy\nValid from: 2026-11-02\nValid to: 2026-11-30\n"
           "Note: Takahashi on leave\n")
    done = w.one(WATANABE)
    assert "登録しました" in done.body, done.body
    w.send(SMITH, "relation list takahashi", "")
    listing = w.one(SMITH).body
    assert "yamamoto->person takahashi proxy 2026-11-02..2026-11-30" in listing
    assert "Takahashi on leave" in listing
    w.send(SMITH, "Trip", travel("54,500"))
    number = number_of(w.one(SMITH))
    w.reply(w.one(TAKAHASHI), "yamamoto@example.com", "承認")
    assert number in w.one("yamamoto@example.com").subject  # the decision is confirmed
    assert any("on behalf of Kenji Takahashi" in d
               for k, d in w.events(number) if k == "decision"), w.events(number)


def guide_forms() -> list[tuple[str, str]]:
    """The two example mails of docs/employees.md (subject, text), exactly as printed there."""
    section = (ROOT / "docs" / "employees.md").read_text().split("## Approval relations", 1)[1]
    lines = section.split("\n")
    start = lines.index("    Subject: relation register")
    block = []
    for line in lines[start:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    mails = []
    for part in "\n".join(block).split("Subject: ")[1:]:
        subject, _, body = part.partition("\n")
        mails.append((subject.strip(), body.strip() + "\n"))
    return mails


def test_the_guide_forms_register_as_it_says(world: World) -> None:
    w = world
    (en_subject, en_form), (ja_subject, ja_form) = guide_forms()
    assert (en_subject, ja_subject) == ("relation register", "承認関係 登録")
    w.send(ITO, en_subject, en_form)
    assert "mori->unit procurement responsible 2027-04-01.." in w.one(ITO).body
    w.send(WATANABE, ja_subject, ja_form)
    assert "yamamoto->person brown proxy 2027-04-01..2027-04-30" in w.one(WATANABE).body
    assert registered(w) == [("mori", "procurement", "responsible", "None"),
                             ("yamamoto", "brown", "proxy", "2027-04-30")]


def test_the_registrar_is_the_authenticated_sender(world: World) -> None:
    """Under `sender_auth = "authentication-results"` a registration whose From the
    receiving server did not vouch for is neither stored nor answered."""
    w = world
    w.app.cfg.mail.sender_auth = "authentication-results"
    w.app.cfg.mail.trusted_authserv_ids = ["mx.example.com"]
    form = "Approver: mori\nUnit: procurement\nKind: responsible\nValid from: 2026-11-03\n"
    send(w.port, ITO, "relation register", form, headers={
        "Authentication-Results": "mx.example.com; dmarc=fail header.from=example.com"})
    w.send(ITO, "relation register", form)  # no verdict at all
    w.nothing_more(ITO)
    assert registered(w) == []
    send(w.port, ITO, "relation register", form, headers={
        "Authentication-Results": "mx.example.com; dmarc=pass header.from=example.com"})
    assert "mori->unit procurement responsible 2026-11-03.." in w.one(ITO).body
    assert registered(w) == [("mori", "procurement", "responsible", "None")]


def test_a_proxy_holds_from_the_company_day_it_starts(tmp_path: Path, db_url: str,
                                                     relay: CapturingRelay) -> None:
    """Relations are in company days (`[workflow] timezone`): in Tokyo a proxy from
    3 November stands in from 15:00 UTC on the 2nd, not from the UTC midnight after."""
    w = start_world(tmp_path, db_url, relay, workflow={"timezone": "Asia/Tokyo"})
    try:
        w.send(WATANABE, "relation register", "Approver: yamamoto\nPerson: takahashi\n"
               "Kind: proxy\nValid from: 2026-11-03\nValid to: 2026-11-30\n")
        assert "登録しました" in w.one(WATANABE).body
        w.send(SMITH, "Trip", travel("54,500"))
        number = number_of(w.one(SMITH))
        ask = w.one(TAKAHASHI)
        w.clock.set(datetime.datetime(2026, 11, 2, 14, 30, tzinfo=datetime.UTC))  # 23:30 JST
        w.reply(ask, "yamamoto@example.com", "承認")
        assert "判断できるのはご本人のみです" in w.one("yamamoto@example.com").body
        w.clock.set(datetime.datetime(2026, 11, 2, 15, 30, tzinfo=datetime.UTC))  # 00:30, 3rd
        w.reply(ask, "yamamoto@example.com", "承認")
        assert number in w.one("yamamoto@example.com").subject
        assert any("on behalf of Kenji Takahashi" in d
                   for k, d in w.events(number) if k == "decision"), w.events(number)
    finally:
        w.app.stop()
