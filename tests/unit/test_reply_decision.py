"""Tests for daemon.parsing.reply: the decision must come from the new text only."""

from __future__ import annotations

import base64

import pytest

from daemon.parsing.message import parse_mail
from daemon.parsing.reply import Decision, ParsedDecision, extract_reply_text, parse_decision

# The request mail ringi sends lists every decision word, so any quote of it is a trap:
# if quote cutting fails, the decision or the reason below will come out wrong.
QUOTED_EN = (
    "> Please reply with APPROVE, REJECT, RETURN or HOLD on the first line.\n"
    "> APPROVE\n"
    "> Request #123: business trip to Osaka\n"
)
ORIGINAL_EN = (
    "APPROVE\n"
    "Please reply with APPROVE, REJECT, RETURN or HOLD on the first line.\n"
    "Request #123: business trip to Osaka\n"
)
INSTRUCTION_JA = "1行目に「承認」「却下」「差し戻し」「保留」のいずれかを書いて返信してください。"
QUOTED_JA = f"> 承認\n> {INSTRUCTION_JA}\n"
ORIGINAL_JA = f"承認\n{INSTRUCTION_JA}\n"


CLIENT_STYLES = [
    pytest.param(
        "Reject\nOver budget.\n\n"
        "On Sat, Nov 21, 2026 at 10:00 AM Yamada Taro <taro@example.com> wrote:\n\n" + QUOTED_EN,
        Decision.REJECT, "Over budget.", id="gmail-en"),
    pytest.param(
        "Reject\nOver budget.\n\n"
        "On Sat, Nov 21, 2026 at 10:00 AM Yamada Taro <\ntaro@example.com> wrote:\n\n"
        + ORIGINAL_EN,  # wrapped attribution, and an unquoted original below it
        Decision.REJECT, "Over budget.", id="gmail-en-wrapped"),
    pytest.param(
        "却下します\n予算超過のため\n\n"
        "2026年11月21日(土) 10:00 山田 太郎 <taro@example.com>:\n\n" + QUOTED_JA,
        Decision.REJECT, "予算超過のため", id="gmail-ja"),
    pytest.param(
        "却下します\n予算超過のため\n\n"
        "2026年11月21日(土) 10:00 山田 太郎 <\ntaro@example.com>:\n" + ORIGINAL_JA,
        Decision.REJECT, "予算超過のため", id="gmail-ja-wrapped"),
    pytest.param(
        "Return\nPlease attach the quote.\n\n"
        "________________________________\n"
        "From: Yamada Taro <taro@example.com>\nSent: Saturday, November 21, 2026 10:00 AM\n"
        "To: Sato <sato@example.com>\nSubject: [ringi] #123\n\n" + ORIGINAL_EN,
        Decision.RETURN, "Please attach the quote.", id="outlook-en"),
    pytest.param(
        "Hold until Monday\n\n-----Original Message-----\nFrom: Yamada Taro\n"
        "Sent: Saturday\n\n" + ORIGINAL_EN,
        Decision.HOLD, "until Monday", id="outlook-en-original-message"),
    pytest.param(
        "差し戻します\n見積書を添付してください。\n\n"
        "________________________________\n"
        "差出人: 山田 太郎 <taro@example.com>\n送信日時: 2026年11月21日 10:00\n"
        "宛先: 佐藤 <sato@example.com>\n件名: [稟議] #123\n\n" + ORIGINAL_JA,
        Decision.RETURN, "見積書を添付してください。", id="outlook-ja"),
    pytest.param(
        "保留\n来週確認します\n\n差出人: 山田 太郎\n送信日時: 2026年11月21日 10:00\n\n"
        + ORIGINAL_JA,
        Decision.HOLD, "来週確認します", id="outlook-ja-no-rule"),
    pytest.param(
        "保留\n\n送信者: 山田 太郎 <taro@example.com>\n" + ORIGINAL_JA,
        Decision.HOLD, "", id="outlook-ja-sender-with-address"),
    pytest.param(
        "Approved\n\nOn Nov 21, 2026, at 10:00, Yamada Taro <taro@example.com> wrote:\n\n"
        "> REJECT\n" + QUOTED_EN,
        Decision.APPROVE, "", id="apple-en"),
    pytest.param(
        "承認します\n\n2026/11/21 10:00、山田 太郎 <taro@example.com>のメール:\n\n" + QUOTED_JA,
        Decision.APPROVE, "", id="apple-ja"),
    pytest.param(
        "Denied: no budget left\n\nOn 11/21/26 10:00 AM, Yamada Taro wrote:\n" + QUOTED_EN,
        Decision.REJECT, "no budget left", id="thunderbird-en"),
    pytest.param(
        "承認\n\nOn 2026/11/21 10:00, 山田 太郎 wrote:\n" + ORIGINAL_JA,
        Decision.APPROVE, "", id="thunderbird-ja"),
    pytest.param(
        "却下\n\n山田 太郎 さんのメッセージ:\n" + ORIGINAL_JA,
        Decision.REJECT, "", id="ja-no-message"),
    pytest.param(
        "却下\n\n山田 太郎 さんは書きました:\n" + ORIGINAL_JA,
        Decision.REJECT, "", id="ja-kakimashita"),
    pytest.param(
        "Return\n\nYamada Taro <taro@example.com> wrote:\n" + ORIGINAL_EN,
        Decision.RETURN, "", id="bare-wrote"),
    pytest.param(
        "Return\nwrong date\n\nYamada Taro wrote:\n" + QUOTED_EN,
        Decision.RETURN, "wrong date", id="old-thunderbird-name-only"),
    # Only mail-parser-reply knows this one; it proves the library cut is in use.
    pytest.param(
        "Reject\n\nAm 21.11.2026 um 10:00 schrieb Yamada Taro <taro@example.com>:\n" + ORIGINAL_EN,
        Decision.REJECT, "", id="library-german-attribution"),
]


@pytest.mark.parametrize(("body", "decision", "reason"), CLIENT_STYLES)
def test_client_reply_styles(body: str, decision: Decision, reason: str) -> None:
    assert parse_decision(body) == ParsedDecision(decision, reason)


@pytest.mark.parametrize(("body", "decision", "reason"), CLIENT_STYLES)
def test_client_reply_styles_with_crlf(body: str, decision: Decision, reason: str) -> None:
    assert parse_decision(body.replace("\n", "\r\n")) == ParsedDecision(decision, reason)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Reject\n\n> APPROVE\n> approve it please", ParsedDecision(Decision.REJECT, "")),
        ("APPROVE\n\n> REJECT\n> reject reasons: none", ParsedDecision(Decision.APPROVE, "")),
        ("却下\n\n> 承認\n> 承認します", ParsedDecision(Decision.REJECT, "")),
        ("承認\n\n> 却下：予算超過", ParsedDecision(Decision.APPROVE, "")),
        ("  \n\nreject\n> approve", ParsedDecision(Decision.REJECT, "")),
    ],
)
def test_quote_never_wins(body: str, expected: ParsedDecision) -> None:
    assert parse_decision(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Approve", (Decision.APPROVE, "")),
        ("approve.", (Decision.APPROVE, "")),
        ("APPROVE:", (Decision.APPROVE, "")),
        ("Approved!", (Decision.APPROVE, "")),
        ("**Approve**", (Decision.APPROVE, "")),
        ("rejected - too expensive", (Decision.REJECT, "too expensive")),
        ("Deny", (Decision.REJECT, "")),
        ("Returned, see below\nfix the date", (Decision.RETURN, "see below\nfix the date")),
        ("HOLD", (Decision.HOLD, "")),
        ("Reject: reason: over budget", (Decision.REJECT, "over budget")),
        ("Reject\nReason: over budget\nsecond line\n\n  third line  ",
         (Decision.REJECT, "over budget\nsecond line\nthird line")),
        ("承認", (Decision.APPROVE, "")),
        ("承認します。問題ありません", (Decision.APPROVE, "問題ありません")),
        ("承認する", (Decision.APPROVE, "")),
        ("却下：予算超過", (Decision.REJECT, "予算超過")),
        ("却下します、理由：予算超過", (Decision.REJECT, "予算超過")),
        ("否認", (Decision.REJECT, "")),
        ("差し戻し", (Decision.RETURN, "")),
        ("差戻し\n理由：見積書がありません", (Decision.RETURN, "見積書がありません")),
        ("差し戻します。日付が誤っています", (Decision.RETURN, "日付が誤っています")),
        ("保留", (Decision.HOLD, "")),
        ("保留します\n来週再検討", (Decision.HOLD, "来週再検討")),
        ("\u3000承認\u3000問題なし", (Decision.APPROVE, "問題なし")),
        ("【承認】", (Decision.APPROVE, "")),
        ("「却下」です。\n予算なし", (Decision.REJECT, "です。\n予算なし")),
        ("ＡＰＰＲＯＶＥ", (Decision.APPROVE, "")),  # full-width Latin from a Japanese IME
        ("Approve\n-- \nTaro Yamada\nAccounting", (Decision.APPROVE, "")),
        ("Approve\nOK from my side\n\nSent from my iPhone", (Decision.APPROVE, "OK from my side")),
        ("承認\niPhoneから送信", (Decision.APPROVE, "")),
    ],
)
def test_decision_words_and_reasons(body: str, expected: tuple[Decision, str]) -> None:
    assert parse_decision(body) == ParsedDecision(*expected)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "\n\n  \n",
        "> APPROVE\n> please approve",
        "On Sat, Nov 21, 2026 at 10:00 AM Yamada <a@b.jp> wrote:\n> APPROVE",
        "2026年11月21日(土) 10:00 山田 <a@b.jp>:\n> 承認",
        "approvement of the plan",
        "holder",
        "Returning this tomorrow",
        "Approve?",
        "I approve",
        "Thanks, approve",
        "承認者を変更してください",
        "承認しますか？",
        "保留中",
        "-----Original Message-----\nApprove",
        "-- \nApprove",
    ],
)
def test_no_decision(body: str) -> None:
    assert parse_decision(body) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Reject\nline two\n\nOn Mon, Jan 5, 2026 at 9:00 AM A <a@b> wrote:\n> x",
         "Reject\nline two"),
        ("承認\r\n\r\n> 却下\r\n", "承認"),
        ("> only a quote", ""),
        ("no quote at all\nsecond", "no quote at all\nsecond"),
        ("text\n-- \nsig", "text"),
        ("承認\n________________________________\n差出人: 山田 <a@b.jp>\n承認", "承認"),
        ("text\n__________\nnot a header\nmore", "text\n__________\nnot a header\nmore"),
        ("From: a budget perspective this is fine", "From: a budget perspective this is fine"),
    ],
)
def test_extract_reply_text(body: str, expected: str) -> None:
    assert extract_reply_text(body) == expected


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "line",
    ["On " + "a " * 100_000, "2026/11/21 " + "1" * 100_000, "x" * 100_000 + "から送信"],
)
def test_hostile_long_lines_stay_fast(line: str) -> None:
    # The library's and our attribution patterns are super-linear on long lines.
    assert parse_decision(f"Approve\n{line}") == ParsedDecision(Decision.APPROVE, line.strip())


def _mail(body: bytes, ctype: str, charset: str, cte: str) -> bytes:
    return (b"From: Sato <sato@example.jp>\r\nSubject: Re: request\r\nMIME-Version: 1.0\r\n"
            + f"Content-Type: {ctype}; charset={charset}\r\n"
              f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body)


def test_end_to_end_iso_2022_jp_outlook_reply() -> None:
    text = ("却下します\r\n理由：予算超過\r\n\r\n________________________________\r\n"
            "差出人: 山田 太郎 <taro@example.com>\r\n送信日時: 2026年11月21日 10:00\r\n"
            "件名: 稟議\r\n\r\n承認\r\n")
    raw = _mail(text.encode("iso2022_jp"), "text/plain", "iso-2022-jp", "7bit")
    assert parse_decision(parse_mail(raw).text) == ParsedDecision(Decision.REJECT, "予算超過")


def test_end_to_end_cp932_base64_reply() -> None:
    text = "承認します。\r\n\r\n2026/11/21 10:00、山田 <a@b.jp>のメール:\r\n> 却下\r\n"
    raw = _mail(base64.encodebytes(text.encode("cp932")), "text/plain", "Shift_JIS", "base64")
    assert parse_decision(parse_mail(raw).text) == ParsedDecision(Decision.APPROVE, "")


def test_end_to_end_html_only_gmail_reply() -> None:
    html = ('<div dir="ltr">却下します<div>理由：予算超過</div></div><br>'
            '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">'
            '2026年11月21日(土) 10:00 山田 太郎 &lt;<a href="mailto:t@example.com">'
            't@example.com</a>&gt;:<br></div>'
            '<blockquote class="gmail_quote">承認</blockquote></div>')
    raw = _mail(base64.encodebytes(html.encode()), "text/html", "UTF-8", "base64")
    assert parse_decision(parse_mail(raw).text) == ParsedDecision(Decision.REJECT, "予算超過")


def test_end_to_end_html_blockquote_without_attribution() -> None:
    html = "<p>Approve</p><blockquote><p>REJECT</p><p>please decide</p></blockquote>"
    raw = _mail(html.encode(), "text/html", "utf-8", "8bit")
    assert parse_decision(parse_mail(raw).text) == ParsedDecision(Decision.APPROVE, "")
