"""The `relation` mail commands' subject and form as clerks type them (SPEC 7), and every
answer rendered in both languages with its subject and body apart."""

from __future__ import annotations

import datetime

import pytest

from daemon.directory.registration import REASONS
from daemon.notify.templates import LOCALES, Templates
from daemon.parsing.relationform import blank_form, parse_form, parse_subject
from tests.support import ROOT


@pytest.mark.parametrize(("subject", "parsed"), [
    ("relation register", ("register", "")),
    ("Re: relation register: the form to fill in", ("register", "")),  # a reply to the form
    ("RE：承認関係 登録: 記入用の書式", ("register", "")),
    ("ＲＥＬＡＴＩＯＮ　ＥＮＤ　１２", ("end", "12")),  # typed with a Japanese IME
    ("relation update #12", ("update", "12")),
    ("Fwd: relation history brown@example.com", ("history", "brown@example.com")),
    ("Re: 承認関係 確認 ABCDEF123456", ("confirm", "ABCDEF123456")),
    ("関係 一覧 sales", ("list", "sales")),
    ("relations list", ("list", "")),
    ("Relation registered for Sales", None),  # a title, not a command
    ("relation list sales and more", None),
    ("relation", None),
])
def test_subjects(subject: str, parsed: tuple[str, str] | None) -> None:
    assert parse_subject(subject) == parsed


def test_a_registration_in_japanese_with_an_ime() -> None:
    form = parse_form("お疲れ様です。\n\n承認者：mori\n対象部署： procurement\n種別: 代理人\n"
                      "開始日: ２０２６年１２月１日\n終了日: 無期限\n備考: 育休中\n\n伊藤\n",
                      "register")
    assert form.problems == []
    assert form.given == {"approver": "mori", "unit": "procurement", "kind": "代理人",
                          "valid_from": "２０２６年１２月１日", "valid_to": "無期限",
                          "note": "育休中"}
    assert (form.kind, form.valid_from, form.valid_to, form.open_ended) == \
        ("proxy", datetime.date(2026, 12, 1), None, True)


def test_the_quote_and_signature_end_the_form() -> None:
    form = parse_form("Valid to: 2026-12-31\n-- \nApprover: someone\n", "update")
    assert form.given == {"valid_to": "2026-12-31"} and form.problems == []
    form = parse_form("Valid to: 2027/1/15\n\n> Approver: x\n", "end")
    assert form.valid_to == datetime.date(2027, 1, 15) and "approver" not in form.given


def test_problems_are_named_and_nothing_is_guessed() -> None:
    form = parse_form("Approver: mori\nVaild to: 2026-12-31\nKind: boss\n"
                      "Valid from: 2026-02-30\nValid to: tomorrow\n", "register")
    assert [p.en for p in form.problems] == [
        "'vaild to' is not a line of the relation form (Approver, Person, Unit, For, Kind, "
        "Valid from, Valid to, Note)",
        "Kind: 'boss' is neither responsible nor proxy",
        "Valid from: '2026-02-30' is not a real date",
        "Valid to: 'tomorrow' is not a date; write it as 2026-12-31"]
    assert all(p.ja for p in form.problems)
    # What an update or an end cannot change is refused, not ignored.
    form = parse_form("Kind: proxy\nPerson: brown\nValid to: 2026-12-31\n", "update")
    assert [p.en.split(" cannot")[0] for p in form.problems] == ["Kind", "Person"]
    assert parse_form("Approver: sato\n", "end").problems[0].en.startswith("Approver cannot")
    # Blank lines of the form are not given; a form with no lines at all is empty.
    assert parse_form(blank_form("en", datetime.date(2026, 12, 3)).replace(
        "responsible", "").replace("2026-12-03", ""), "register").empty
    assert not parse_form("Approver: x\n", "register").empty


def answers() -> list[tuple[str, dict[str, object]]]:
    gap = {"first": datetime.date(2026, 12, 4), "last": None}
    base: dict[str, object] = {
        "word": "register", "arg": "", "form": "", "lines": [], "total": 0,
        "relation_id": None, "relation": "", "cancelled": False, "gaps": [],
        "object_id": "", "problems": [], "reasons": []}
    reasons = [{"code": code, "text": "-", "facts": {
        "approver": "a", "object": "unit u", "unit": "u", "other": "o", "cap": "3",
        "problem": "p", "registrar": "r"}} for code in REASONS]
    return [
        ("relation_reply", {**base, "outcome": "stored", "relation_id": 7,
                            "relation": "a->unit u responsible 2026-12-04..",
                            "gaps": [gap], "object_id": "u"}),
        ("relation_reply", {**base, "outcome": "stored", "word": "end", "arg": "7",
                            "relation_id": 7, "cancelled": True}),
        ("relation_reply", {**base, "outcome": "refused", "reasons": reasons}),
        ("relation_reply", {**base, "outcome": "no_code", "word": "confirm", "arg": "AB"}),
        ("relation_reply", {**base, "outcome": "bad_form", "form": "Approver:",
                            "problems": [{"en": "x", "ja": "x"}]}),
        ("relation_reply", {**base, "outcome": "form", "form": "Approver:"}),
        ("relation_reply", {**base, "outcome": "listing", "word": "list", "lines": ["l"]}),
        ("relation_reply", {**base, "outcome": "history", "word": "history", "arg": "u",
                            "lines": ["h"], "total": 3}),
        ("relation_confirm", {"code": "C0DE", "word": "end", "arg": "7", "gaps": [gap],
                              "object": "unit u", "relation": "r", "hours": 72}),
    ]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("name", "context"), answers())
def test_every_answer_renders_with_a_short_subject(locale: str, name: str,
                                                   context: dict[str, object]) -> None:
    rendered = Templates(ROOT / "mailtemplates").render(
        name, locale, {"request_address": "ringi@example.com", **context})
    assert rendered.subject and "\n" not in rendered.subject
    assert len(rendered.subject) < 80, rendered.subject
    assert rendered.body.strip() and not rendered.body.startswith("\n")
    assert "{" not in rendered.body, rendered.body  # every reason's facts filled in
    assert " end " not in rendered.body or locale == "en"  # the command in the reader's words
    if context.get("outcome") == "refused" and locale == "ja":
        assert "あなたは名簿にありません" in rendered.body  # not the English fallback


OUTLOOK = ("Hello,\n\nApprover: mori\nUnit: procurement\nKind: responsible\n"
           "Valid from: 2027-04-01\nValid to:\n\nBest regards,\nIto\n\n"
           "-----Original Message-----\nFrom: ringi <ringi@example.com>\n"
           "Sent: Monday, November 2, 2026 9:00 AM\nTo: ito@example.com\n"
           "Subject: relation register: the form to fill in\n\nApprover:\nPerson:\nUnit:\n"
           "Kind: responsible\n")
JA_OUTLOOK = ("お疲れ様です。\n\n承認者: yamamoto@example.com\n対象者: brown\n種別: 代理\n"
              "開始日: 2027年4月1日\n終了日: 2027年4月30日\n\n伊藤\n"
              "________________________________\n差出人: ringi <ringi@example.com>\n"
              "送信日時: 2026年11月2日 9:00\n宛先: ito\n件名: 承認関係 登録\n\n承認者:\n対象者:\n")
BOTTOM = ("On Mon, 2 Nov 2026 at 09:00, ringi <ringi@example.com> wrote:\n> Approver:\n"
          "> Person:\n> Kind: responsible\n\nApprover: sato\nPerson: suzuki\nKind: proxy\n"
          "Valid from: 2027-04-01\n\n-- \nTaro\n")


@pytest.mark.parametrize(("text", "given"), [
    (OUTLOOK, {"approver": "mori", "unit": "procurement", "kind": "responsible",
               "valid_from": "2027-04-01"}),
    (JA_OUTLOOK, {"approver": "yamamoto@example.com", "person": "brown", "kind": "代理",
                  "valid_from": "2027年4月1日", "valid_to": "2027年4月30日"}),
    (BOTTOM, {"approver": "sato", "person": "suzuki", "kind": "proxy",
              "valid_from": "2027-04-01"}),
])
def test_a_form_filled_in_a_reply_is_read_without_the_quoted_blank_form(
        text: str, given: dict[str, str]) -> None:
    form = parse_form(text, "register")
    assert form.problems == [] and form.given == given
