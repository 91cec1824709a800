"""The reply grammar of docs/replies.md, rule by rule: where the decision may stand,
which openings and closings are skipped, and what is never a decision."""

from __future__ import annotations

import pytest

from daemon.parsing.message import parse_mail
from daemon.parsing.reply import Decision, ParsedDecision, extract_reply_text, parse_decision
from daemon.parsing.replytext import MAX_BLOCKS, MAX_LINES, MAX_OWN_LINES, addressed_names
from daemon.parsing.replywords import GREETINGS_JA, SIGNOFFS_EN, SIGNOFFS_JA

ATTR = "On Sat, Nov 21, 2026 at 10:00 AM ringi <ringi+t@example.com> wrote:"
QUOTE = "> To decide, reply with one word:\n>   APPROVE   (or 承認)\n>   REJECT    (or 却下)\n"
A = Decision.APPROVE
R = Decision.REJECT


def read(body: str, names: tuple[str, ...] = ()) -> tuple[Decision, str] | None:
    parsed = parse_decision(body, names)
    return None if parsed is None else (parsed.decision, parsed.reason)


# --------------------------------------------------------------------------- position

@pytest.mark.parametrize(("body", "expected"), [
    (f"{ATTR}\n{QUOTE}\nReject\nToo expensive.", (R, "Too expensive.")),
    (f"{QUOTE}\nApprove", (A, "")),
    (f"{ATTR}\n\n{QUOTE}\n\n\n承認します。\n問題ありません。\n", (A, "問題ありません。")),
    (f"> Amount: 5\nFine.\n{QUOTE}Approve\n> more\nsee you", (A, "")),  # interleaved
    (f"Approve\n{QUOTE}\nApproved\n", (A, "")),  # two blocks, the same decision
    (f"Hi all,\n{QUOTE}\nApprove", (A, "")),  # greeting above, decision below
])
def test_decision_below_or_between_quotes(body: str, expected: tuple[Decision, str]) -> None:
    assert read(body) == expected
    assert read(body.replace("\n", "\r\n")) == expected


@pytest.mark.parametrize("body", [
    f"Approve\n{QUOTE}\nReject",                    # two own blocks disagree
    f"{QUOTE}Approve\n> x\nReject: no budget",      # interleaved, disagreeing
    "Approve\nReject",                             # one block, two decisions
    f"{QUOTE}\n{QUOTE}",                            # nothing written at all
    f"{ATTR}\nAPPROVE\n\nReject",                   # original pasted unquoted: nothing below
    "Hello\n\n---------- Forwarded message ---------\nFrom: a@b.example\n\nApprove",
    "FYI\n\nBegin forwarded message:\n\nFrom: a@b.example\n\nApprove",
    "ご確認ください。\n\n-----Original Message-----\n差出人: 田中\n"
    "送信日時: 2026年11月21日\n\n承認",
])
def test_ambiguous_or_foreign_text_is_no_decision(body: str) -> None:
    assert parse_decision(body) is None


def test_top_text_for_forms_is_still_the_text_above_the_quote() -> None:
    # relation forms read extract_reply_text: it keeps meaning "what stands above the quote".
    assert extract_reply_text(f"{QUOTE}\nApprove") == ""
    assert extract_reply_text(f"Approve\n{QUOTE}\nReject") == "Approve"


def test_html_bottom_post_through_parse_mail() -> None:
    html = ('<div class="moz-cite-prefix">On 11/21/26 10:00, ringi wrote:<br></div>'
            '<blockquote type="cite"><pre>APPROVE\nREJECT</pre></blockquote>'
            "<p>Reject</p><p>No budget left.</p><p>Best regards,<br>Ken</p>")
    raw = ("From: Ken <ken@example.com>\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + html).encode()
    assert read(parse_mail(raw).text) == (R, "No budget left.")


# --------------------------------------------------------------------------- greetings

@pytest.mark.parametrize("greeting", [
    "Hi Alice,", "Hello,", "Hello", "Dear Mr. Sato,", "Dear all,", "Good morning!",
    "Good afternoon Taro,", "Hi team,", "Alice,", "Thanks,", "Hey Bob", "Ｈｉ Ａｌｉｃｅ，",
    "お疲れ様です。", "お疲れさまです", "いつもお世話になっております。", "田中部長", "山田さん",
    "佐藤様、", "関係者各位", "お疲れ様です。経理部の山田です。", "佐藤です。",
    "いつもお世話になっております。お疲れ様です。", "Thanks for the update!",
    "Thank you for the details.", "確認しました。", "内容を確認いたしました。",
])
def test_greetings_before_the_decision(greeting: str) -> None:
    assert read(f"{greeting}\n\nApprove\nok") == (A, "ok")
    assert read(f"{greeting}\n承認します。") == (A, "")


@pytest.mark.parametrize("greeting", GREETINGS_JA)
def test_every_japanese_greeting_is_skipped(greeting: str) -> None:
    assert read(f"{greeting}。\n却下します。\n予算超過") == (R, "予算超過")


@pytest.mark.parametrize("body", [
    "No,\nApprove", "Sorry,\nApprove", "Unfortunately,\nApprove", "OK,\nApprove",
    "Thanks, approve", "Hi Alice, approve", "I approve", "Please note:\nApprove",
    "確認しましたが、\n承認", "Thanks for the request, approved",
    "Thank you for this but I cannot approve.\nApprove",
])
def test_not_a_greeting_so_no_decision(body: str) -> None:
    assert parse_decision(body) is None


@pytest.mark.parametrize(("body", "expected"), [
    ("お疲れ様です。承認します。", (A, "")),
    ("Hello Alice. Approved, see you in Osaka", (A, "see you in Osaka")),
    ("お疲れ様です。却下します。予算超過です。", (R, "予算超過です。")),
])
def test_a_greeting_sentence_may_share_the_line(body: str, expected: tuple[Decision, str]) -> None:
    assert read(body) == expected


# --------------------------------------------------------------------------- never a decision

@pytest.mark.parametrize("text", [
    "cannot approve", "I cannot approve this.", "承認できません", "承認できません。", "Approve?",
    "Approve ?", "not approved", "Not approved.", "承認しかねます", "承認いたしかねます。",
    "don't approve", "I don't approve this one.", "I do not approve", "承認しません",
    "承認しますか？", "承認してよろしいでしょうか？", "Should I approve this?", "approval?",
    "Hold? I'm not sure", "No approval from me", "Reject?", "却下しますか？",
    "不承認ではありません",
    "I won't approve it", "I'm unable to approve this", "The approval is not possible",
    "Approval is not possible", "承認は難しいです", "承認は不可です",
])
@pytest.mark.parametrize("where", ["first", "after-greeting", "reason", "other-block"])
def test_negated_or_questioned_is_never_a_decision(text: str, where: str) -> None:
    decision = "Reject" if text.lower().startswith(("reject", "却下", "不承認")) else "Approve"
    if "却下" in text:
        decision = "却下"
    body = {
        "first": text,
        "after-greeting": f"Hi Alice,\n\n{text}",
        "reason": f"{decision}\n{text}",
        "other-block": f"{decision}\n{QUOTE}\n{text}",
    }[where]
    assert parse_decision(body) is None, body


@pytest.mark.parametrize(("body", "expected"), [
    ("承認です。", (A, "")), ("却下でお願いします。\n予算超過", (R, "予算超過")),
    ("保留とします。", (Decision.HOLD, "")),
    ("差し戻しでお願いいたします。", (Decision.RETURN, "")),
    ("承認とさせていただきます。", (A, "")),
])
def test_japanese_statement_forms(body: str, expected: tuple[Decision, str]) -> None:
    assert read(body) == expected


@pytest.mark.parametrize("body", ["承認ですか？", "承認ではありません", "承認でしょうか",
                                  "承認では"])
def test_japanese_statement_forms_negated_or_asked(body: str) -> None:
    assert parse_decision(body) is None


@pytest.mark.parametrize(("body", "expected"), [
    ("Reject: I cannot approve this without a quote", (R, "I cannot approve this without a quote")),
    ("Return\nReturn trip by train is fine, the hotel is missing.",
     (Decision.RETURN, "Return trip by train is fine, the hotel is missing.")),
    ("Approved, no issues", (A, "no issues")),
    ("却下します。\n承認者の確認が取れていません。", (R, "承認者の確認が取れていません。")),
    ("Approve\nNot urgent, take your time.", (A, "Not urgent, take your time.")),
    # A case sent back or rejected may say when it would be approved.
    ("Return\nAttach the quote and I will approve.",
     (Decision.RETURN, "Attach the quote and I will approve.")),
    ("却下します。\n見積書があれば承認します。", (R, "見積書があれば承認します。")),
    ("Hold\nI would approve with a quote", (Decision.HOLD, "I would approve with a quote")),
    ("承認します。\n承認しますから大丈夫です", (A, "承認しますから大丈夫です")),
    # "return" and "hold" are everyday verbs too; only with the case as object are they
    # another decision.
    ("Approve\nWe should return by train.", (A, "We should return by train.")),
    ("Approve\nI will hold the meeting in Osaka.", (A, "I will hold the meeting in Osaka.")),
])
def test_words_that_agree_with_the_decision_are_reasons(body: str,
                                                        expected: tuple[Decision, str]) -> None:
    assert read(body) == expected


@pytest.mark.parametrize("body", [
    "Approve\nActually, I reject it.", "承認します。\nと思いましたが、やはり却下します。",
    "Hold\nWe'll return it to Taro instead.", "承認\n差し戻してください。",
    "却下します。\nやはり承認します。", "Reject\nActually, I approve it.",
    "Approve\nI will reject the next one.",  # an approval is read only when nothing else is
    "Approve\nI will return the request.", "Approve\nActually, I return it.",
])
def test_another_decision_stated_anywhere_is_a_contradiction(body: str) -> None:
    assert parse_decision(body) is None


# --------------------------------------------------------------------------- what is stripped

@pytest.mark.parametrize("closing", [*SIGNOFFS_EN, *SIGNOFFS_JA])
def test_every_signoff_ends_the_reason(closing: str) -> None:
    assert read(f"Reject\nNo budget.\n\n{closing}\nTaro Yamada\nSales") == (R, "No budget.")
    assert read(f"Reject\nNo budget.\n{closing.title()},\nTaro") == (R, "No budget.")


@pytest.mark.parametrize(("tail", "names"), [
    ("-- \nTaro", ()),
    ("--\nTaro", ()),
    ("Sent from my iPhone", ()),
    ("Get Outlook for Android", ()),
    ("iPhoneから送信", ()),
    ("Android 用の Outlook を入手", ()),
    ("━━━━━━━━\n山田 太郎\n━━━━━━━━", ()),
    ("==========\nTaro Yamada", ()),
    ("Taro Yamada\nAccounting Department", ()),
    ("Taro Yamada\nTel: 03-1234-5678", ()),
    ("山田 太郎\n株式会社サンプル 経理部\nTEL 03-1234-5678", ()),
    ("山田", ("山田 太郎",)),
    ("Taro", ("Taro Yamada",)),
    ("CONFIDENTIALITY NOTICE: This e-mail is intended only for the addressee.", ()),
    ("This email and any attachments are confidential. If you received it in error, "
     "delete it.", ()),
    ("本メールは機密情報を含みます。誤って受信された場合は削除してください。", ()),
    ("※このメールは送信専用です。", ()),
])
def test_signatures_footers_and_disclaimers_are_not_reasons(tail: str,
                                                            names: tuple[str, ...]) -> None:
    assert read(f"Reject\nNo budget.\n\n{tail}", names) == (R, "No budget.")
    assert read(f"Hi,\nReject\nNo budget.\n\n{tail}\n\n{ATTR}\n{QUOTE}", names) == \
        (R, "No budget.")


@pytest.mark.parametrize(("tail", "reason"), [
    ("Taro Yamada\nTel: 03-1234-5678", "No budget."),
    ("山田 太郎\n株式会社サンプル 経理部\nTEL 03-1234-5678", "No budget."),
    ("Taro Yamada\nAccounting Department", "No budget.\nTaro Yamada\nAccounting Department"),
])
def test_signature_right_under_the_reason(tail: str, reason: str) -> None:
    # Without a blank line, a look-alike name needs a contact line to be taken as signature.
    assert read(f"Reject\nNo budget.\n{tail}") == (R, reason)
    assert read(f"Reject\nNo budget.\n{tail}", ("Taro Yamada", "山田 太郎")) == (R, "No budget.")


@pytest.mark.parametrize(("body", "reason"), [
    ("Return\n- receipt missing\n- wrong date", "- receipt missing\n- wrong date"),
    ("Reject\nOver Budget", "Over Budget"),  # a capitalised line is not a name by itself
    ("却下\n\n予算超過", "予算超過"),
    ("Reject\nConfidential project, ask me in person.", "Confidential project, ask me in person."),
    ("Reject\nThanks for asking, but no budget.", "Thanks for asking, but no budget."),
    ("差し戻します\n見積書を添付のうえ、再申請をよろしくお願いします。",
     "見積書を添付のうえ、再申請をよろしくお願いします。"),
    ("Reject\nbest price is elsewhere", "best price is elsewhere"),
    ("Reject - looks fine but no budget, thanks", "looks fine but no budget"),
    ("却下します。予算超過です。よろしくお願いします。", "予算超過です。"),
])
def test_reason_text_is_kept(body: str, reason: str) -> None:
    parsed = parse_decision(body)
    assert parsed is not None and parsed.reason == reason


# --------------------------------------------------------------------------- bounded work

@pytest.mark.timeout(10)
@pytest.mark.parametrize("body", [
    "\n".join("x" if i % 2 else "> y" for i in range(2 * MAX_BLOCKS + 2)),
    "Approve\n" + "> \n\n" * MAX_LINES,
    "Approve\n" + "reason line\n" * (MAX_OWN_LINES + 1),
])
def test_past_the_limits_nothing_is_read(body: str) -> None:
    assert parse_decision(body) is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize("body", [
    "承認します\n" + "承認者" * 300_000,
    "Approve\n" + "approval reject " * 100_000,
    "お疲れ様です。" * 100_000 + "\n承認",
    "Approve\n" + ("This e-mail " + "a" * 100_000 + "\n") * 10,
    "Approve " + "x, thanks" * 100_000,
    "Approve\n" + "Tel 123\n" * 1500,
    "\n".join("Approve" if i % 2 else "> q" for i in range(MAX_LINES)),
])
def test_hostile_replies_stay_fast(body: str) -> None:
    parsed = parse_decision(body, ("Taro Yamada",))
    assert parsed is None or isinstance(parsed, ParsedDecision)


@pytest.mark.parametrize(("body", "reason"), [
    ("承認します。\n\n佐藤\n\n2026年11月21日(土) 10:00 ringi <r@x.example>:\n"
     "> 佐藤 花子 様\n> 承認", ""),
    ("Approve\n\nHanako\n\n-----Original Message-----\nFrom: ringi <r@x.example>\nSent: today\n\n"
     "Dear Hanako Sato,\n\nAPPROVE", ""),
    ("承認します。\n\n佐藤", "佐藤"),  # no quote naming the approver: the line is kept
])
def test_the_name_the_request_was_addressed_to_closes_the_reply(body: str, reason: str) -> None:
    assert read(body) == (A, reason)


def test_only_the_quoted_salutation_names_the_sender() -> None:
    assert addressed_names("Dear Mr. Tanaka,\nApprove\n> Dear Hanako Sato,\n") == ("Hanako Sato",)
    assert addressed_names("田中 様\n承認") == ()
