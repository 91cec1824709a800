"""What people write around a decision, as data: greetings, sign-offs, footers, disclaimers.

docs/replies.md is the grammar for readers; this module is the same grammar for the parser.
Every list is compared with a whole line (or the start of one) after NFKC folding and
lower-casing, so a full-width "Ｈｉ" or "ｂｅｓｔ ｒｅｇａｒｄｓ" from an IME counts too.
Nothing here is a regular expression over unbounded text: matchers look at one short line.
"""

from __future__ import annotations

import unicodedata

# Lines longer than this are never a greeting, sign-off or footer (and are not inspected).
SHORT = 80

# --------------------------------------------------------------------------- greetings

# An English opening: one of these words, then at most a few name words, then , . ! : or
# nothing ("Hi Alice,", "Dear Mr. Sato,", "Good morning all!", "Hello,").
GREETING_WORDS_EN = (
    "hi", "hello", "hey", "dear", "hiya", "greetings", "good morning", "good afternoon",
    "good evening", "morning", "afternoon", "thanks", "thank you", "many thanks",
    "thanks a lot", "thank you very much", "to whom it may concern",
)
# Titles that may stand before a name in an English opening ("Dear Mr. Sato,").
TITLES_EN = ("mr", "mrs", "ms", "miss", "dr", "prof", "sir", "madam", "all", "team", "everyone")
# Words that never make a line a greeting, whatever stands around them: an opening that
# carries one of these is a sentence ("No,", "Sorry, Alice,") and must be read as such.
NOT_GREETING_EN = frozenset({
    "no", "not", "yes", "sorry", "unfortunately", "however", "but", "ok", "okay", "please",
    "approve", "approved", "reject", "rejected", "deny", "denied", "return", "returned", "hold",
    "cannot", "can't", "won't", "don't", "for", "the", "this", "that", "it", "is", "i", "we",
})
# Japanese openings, each a whole sentence; any may be followed by 。、！ and by another one.
GREETINGS_JA = (
    "いつもお世話になっております", "いつもお世話になります", "お世話になっております",
    "お世話になります", "大変お世話になっております", "お疲れ様です", "お疲れさまです",
    "おつかれさまです", "お疲れ様でございます", "お疲れ様でした", "おはようございます",
    "こんにちは", "こんばんは", "失礼いたします", "失礼します", "ご連絡ありがとうございます",
    "ご申請ありがとうございます", "申請ありがとうございます", "ご確認ありがとうございます",
    "ありがとうございます", "ご苦労様です", "ご苦労さまです", "取り急ぎ",
    # acknowledgements that open a reply and decide nothing
    "確認しました", "確認いたしました", "内容を確認しました", "内容を確認いたしました",
    "申請内容を確認しました", "申請内容を確認いたしました", "拝見しました", "拝見いたしました",
)
# "Thanks for the update." opens a reply too, when it says nothing more (no decision word,
# no negation: NOT_GREETING_EN below, minus the few words such a sentence needs).
THANKS_OPENERS_EN = ("thanks for ", "thank you for ", "many thanks for ")
THANKS_WORDS_OK = frozenset({"for", "the", "this", "that", "it", "your", "you"})
# A name line: a short name followed by one of these ("山田さん", "田中部長", "各位").
HONORIFICS_JA = (
    "さん", "様", "さま", "殿", "君", "くん", "部長", "課長", "係長", "主任", "次長", "室長",
    "所長", "本部長", "社長", "副社長", "専務", "常務", "取締役", "マネージャー", "リーダー",
    "先生", "各位", "御中", "の皆様", "の皆さん", "皆様", "皆さん", "みなさま",
)
# "お疲れ様です。山田です。": a short self-introduction after a greeting on the same line.
SELF_INTRO_JA = ("です", "でございます")
NAME_MAX_JA = 12  # characters of a name before an honorific

# --------------------------------------------------------------------------- sign-offs

# A line that is only a closing (optionally followed by a name on the same line: "Thanks,
# Taro"): it and everything after it in that part of the reply is the signature.
SIGNOFFS_EN = (
    "best regards", "kind regards", "warm regards", "warmest regards", "regards",
    "best wishes", "with best regards", "with kind regards", "many thanks", "thanks",
    "thank you", "thanks and regards", "thanks & regards", "thanks again", "thx", "cheers",
    "sincerely", "yours sincerely", "sincerely yours", "yours truly", "yours", "best",
    "all the best", "br", "rgds", "respectfully", "cordially", "thank you very much",
    "thank you so much", "thanks a lot", "thanks so much", "thanks in advance",
    "much appreciated", "have a nice day", "have a good day", "have a great weekend",
)
SIGNOFFS_JA = (
    "よろしくお願いいたします", "よろしくお願い致します", "よろしくお願いします",
    "宜しくお願いいたします", "宜しくお願い致します", "宜しくお願いします",
    "よろしくお願い申し上げます", "宜しくお願い申し上げます", "以上よろしくお願いいたします",
    "以上よろしくお願いします", "以上宜しくお願いいたします", "何卒よろしくお願いいたします",
    "何卒よろしくお願い申し上げます", "引き続きよろしくお願いいたします",
    "今後ともよろしくお願いいたします", "よろしく", "宜しく", "以上", "以上です",
    "以上となります", "以上宜しく", "敬具", "ありがとうございます", "ありがとうございました",
    "お願いいたします", "お願い致します", "お願いします", "以上お願いいたします",
    "以上お願いします", "取り急ぎご連絡まで", "取り急ぎご返信まで", "失礼いたします",
    "今後ともよろしくお願いします", "引き続きよろしくお願いします",
)
NAME_AFTER_SIGNOFF_JA = 10  # "よろしくお願いします。山田": a closing with a short name after it
# Signature rules people draw by hand (the `-- ` delimiter is handled with the quote cut).
RULE_CHARS = frozenset("-=_*~#─━―－＝＊～・…")

# --------------------------------------------------------------------------- footers

# Mobile and webmail footers: the line and everything after it are not the person's words.
FOOTERS = (
    "sent from my ", "sent from mail for windows", "sent from outlook", "sent from yahoo",
    "sent from samsung", "sent from the all new aol", "sent with proton", "sent via ",
    "get outlook for ", "outlook for ios", "outlook for android", "android 用の outlook",
    "ios 用の outlook",
)
FOOTER_ENDS_JA = ("から送信", "から送信されました", "より送信", "を入手")
FOOTER_DEVICES = ("iphone", "ipad", "android", "outlook", "モバイル", "携帯", "スマートフォン",
                  "galaxy", "xperia", "aquos", "gmail", "mail")

# --------------------------------------------------------------------------- disclaimers

# A disclaimer starts with one of these and, somewhere in the rest of its part, says one
# of DISCLAIMER_WORDS; from its first line on, nothing is the person's words.
DISCLAIMER_STARTS = (
    "this e-mail", "this email", "this message", "this communication", "the information in",
    "the information contained", "the content of this", "the contents of this",
    "confidentiality notice", "confidential", "disclaimer", "important notice", "important:",
    "privileged", "notice:", "caution:", "if you are not the intended", "if you have received",
    "本メール", "このメール", "本電子メール", "この電子メール", "本メッセージ", "このメッセージ",
    "※本メール", "※このメール", "【機密", "【注意", "【免責", "機密保持", "免責事項",
    "※このメール", "※本メッセージ", "注意:", "注意事項",
)
DISCLAIMER_WORDS = (
    "confidential", "intended recipient", "intended solely", "intended only", "privileged",
    "addressee", "disclos", "received this", "in error", "機密", "秘密", "宛先", "誤って",
    "誤送信", "削除", "破棄", "第三者", "開示", "複製", "送信専用",
)


_SIGNOFF_INITIALS = frozenset(s[0] for s in (*SIGNOFFS_EN, *SIGNOFFS_JA))
_SIGNOFFS_LONGEST_FIRST = sorted(SIGNOFFS_EN, key=len, reverse=True)
_GREETINGS_LONGEST_FIRST = sorted(GREETING_WORDS_EN, key=len, reverse=True)


def fold(line: str) -> str:
    """NFKC and lower case: the form every list above is written in."""
    return unicodedata.normalize("NFKC", line).lower().strip()


def _strip_punct(text: str) -> str:
    return text.strip(" \t,.!:;、。，．！：…~～-—")


# A line holding one of these is never a greeting: it may be the decision itself.
DECISION_STEMS_JA = ("承認", "却下", "否認", "差し戻", "差戻", "保留")


def _has_stem(text: str) -> bool:
    return any(stem in text for stem in DECISION_STEMS_JA)


def _is_name_words(words: list[str]) -> bool:
    """At most four words that could be names or titles ("mr. sato", "alice and bob")."""
    if len(words) > 4:
        return False
    for word in words:
        bare = word.strip(".,!:;")
        if not bare or bare in NOT_GREETING_EN or any(c.isdigit() for c in bare):
            return False
    return True


def _greeting_en(line: str) -> bool:
    body = _strip_punct(line)
    if body.startswith(THANKS_OPENERS_EN) and len(body) <= SHORT:
        said = {w.strip(".,!:;") for w in body.split()}
        return not (said - THANKS_WORDS_OK) & NOT_GREETING_EN
    for word in _GREETINGS_LONGEST_FIRST:
        if body == word or body.startswith(word + " ") or body.startswith(word + ","):
            rest = body[len(word):].replace(",", " ").split()
            return _is_name_words(rest)
    # "Alice," / "Mr. Sato," / "Sato-san,": a name alone on a line, ending with a comma.
    words = body.split()
    return (line.rstrip().endswith(",") and 0 < len(words) <= 3 and _is_name_words(words)
            and all(w[:1].isalpha() for w in words) and words[0] not in SIGNOFFS_EN)


def _name_line_ja(body: str) -> bool:
    for honorific in HONORIFICS_JA:
        if body.endswith(honorific):
            name = body[:-len(honorific)].strip()
            return (len(name) <= NAME_MAX_JA and not any(c in name for c in "。、！？?!")
                    and not _has_stem(name))
    return False


def _self_intro_ja(body: str) -> bool:
    """"佐藤です。" or "経理部の山田です": a name (ideographs, katakana, "の") and です."""
    for intro in SELF_INTRO_JA:
        head, sep, tail = _strip_punct(body).partition(intro)
        if sep and not tail and 0 < len(head) <= NAME_MAX_JA and not _has_stem(head) and all(
                c == "の" or c.isspace() or "\u4e00" <= c <= "\u9fff" or "\u30a0" <= c <= "\u30ff"
                or (c.isascii() and c.isalpha()) for c in head):
            return True
    return False


def _strip_greeting_ja(body: str) -> str | None:
    """The line with its leading Japanese greetings removed; None if it opens with none."""
    stripped = False
    while True:
        body = body.lstrip(" 　、。！!,")
        for greeting in GREETINGS_JA:
            if body.startswith(greeting):
                body = body[len(greeting):]
                stripped = True
                break
        else:
            break
    if not stripped:
        return None
    # "お疲れ様です。経理部の山田です。": a short self-introduction closes the line.
    for intro in SELF_INTRO_JA:
        head, sep, tail = body.partition(intro)
        if sep and len(head) <= NAME_MAX_JA + 4 and not _strip_punct(tail) \
                and not any(c in head for c in "。！？?!") and not _has_stem(head):
            return ""
    return body.lstrip(" 　、。！!,")


def greeting_rest(line: str) -> str | None:
    """For a line that opens with a greeting: what follows the greeting on that line
    ("" when the whole line is a greeting). None when the line is no greeting.

    Only a greeting that ends a sentence may share its line with more text
    ("お疲れ様です。承認します。", "Hello Alice. Approved."); "Thanks, approve" stays unread.
    """
    if len(line) > SHORT:
        return None
    body = fold(line)
    if not body:
        return None
    if _greeting_en(body) or _name_line_ja(_strip_punct(body)) or _self_intro_ja(body):
        return ""
    rest = _strip_greeting_ja(body)
    if rest is not None:
        if not rest or _name_line_ja(_strip_punct(rest)):
            return ""
        return _original_tail(line, rest)
    # "Hello Alice. Approved." - an English greeting sentence, then the rest of the line.
    for end in (". ", "! "):
        head, sep, tail = body.partition(end)
        if sep and tail.strip() and _greeting_en(head):
            return _original_tail(line, tail.strip())
    return None


def _original_tail(line: str, folded_tail: str) -> str:
    """The unfolded end of `line` that folds to `folded_tail` (so the reason is not rewritten)."""
    for start in range(len(line)):
        if fold(line[start:]) == folded_tail:
            return line[start:].strip()
    return folded_tail


def is_signoff(line: str) -> bool:
    """A closing line: "Best regards," "Thanks, Taro" "よろしくお願いいたします。" "以上"."""
    if len(line) > SHORT:
        return False
    body = _strip_punct(fold(line))
    if not body or (body[0] not in _SIGNOFF_INITIALS):
        return False
    compact = body.replace(" ", "").replace("、", "").replace(",", "")
    if compact in SIGNOFFS_JA:
        return True
    for signoff in SIGNOFFS_JA:
        if len(signoff) >= 6 and compact.startswith(signoff):
            name = _strip_punct(compact[len(signoff):])
            if len(name) <= NAME_AFTER_SIGNOFF_JA and not any(c in name for c in "。！？!?") \
                    and not _has_stem(name):
                return True
    for signoff in _SIGNOFFS_LONGEST_FIRST:
        if body == signoff:
            return True
        if not body.startswith((signoff + ",", signoff + " ")):
            continue
        # "Thanks, Taro" / "Best regards Alice Smith": a closing and a name, nothing else;
        # without a comma the name must be capitalised ("Best price" is a sentence).
        rest = body[len(signoff):].replace(",", " ").split()
        original = unicodedata.normalize("NFKC", line).strip()
        written = original[len(signoff):].replace(",", " ").split()
        comma = body.startswith(signoff + ",")
        return (0 < len(rest) <= 3 and _is_name_words(rest)
                and (comma or all(w[:1].isupper() for w in written)))
    return False


def is_rule(line: str) -> bool:
    """A hand-drawn line ("-----", "━━━━", "*****") that opens a signature block."""
    body = line.strip()
    return 4 <= len(body) <= SHORT and all(c in RULE_CHARS for c in body)


def is_footer(line: str) -> bool:
    """"Sent from my iPhone", "Get Outlook for Android", "iPhoneから送信"."""
    if len(line) > SHORT:
        return False
    body = fold(line).strip("_ ")
    if body.startswith(FOOTERS):
        return True
    return body.endswith(FOOTER_ENDS_JA) and any(d in body for d in FOOTER_DEVICES)


def starts_disclaimer(lines: list[str], index: int) -> bool:
    """Line `index` opens a legal disclaimer running to the end of `lines`."""
    if index > 2000:
        return False  # a disclaimer follows a short reply, not thousands of lines of text
    head = fold(lines[index][:SHORT]).lstrip("*※■□◆◇●○【[( ")
    start = next((s.lstrip("※【") for s in DISCLAIMER_STARTS
                  if head.startswith(s.lstrip("※【"))), None)
    if start is None:
        return False
    # The evidence must come after the opening words: "Confidential project, keep it quiet"
    # is a sentence, "Confidential: ... intended recipient ..." a disclaimer.
    tail = fold("\n".join(x[:SHORT * 4] for x in lines[index:index + 12]))
    tail = tail.lstrip("*※■□◆◇●○【[( ")[len(start):]
    return any(word in tail for word in DISCLAIMER_WORDS)


# --------------------------------------------------------------------------- signature lines

SIGNATURE_LINES = 8  # a signature block has at most this many lines
# A trailing run of such lines, below the reason, is a signature even without `-- ` or a
# closing: contact details, or a name with a department or company.
CONTACT_CUES = ("tel", "phone", "mobile", "fax", "e-mail", "email", "mail:", "@", "http",
                "www.", "ext.", "〒", "内線", "携帯", "電話", "直通", "代表", "ｔｅｌ")
ORG_CUES = ("dept", "department", "division", "section", "group", "team", "office",
            "inc.", "inc", "ltd", "co.,", "corp", "corporation", "company", "manager",
            "director", "株式会社", "有限会社", "(株)", "㈱", "事業部", "本部", "部", "課",
            "室", "グループ", "チーム", "センター", "支店", "営業所")


def _name_tokens(names: tuple[str, ...]) -> set[str]:
    tokens: set[str] = set()
    for name in names:
        tokens.update(t for t in fold(name).replace(",", " ").replace("、", " ").split() if t)
    return tokens


def _kind(line: str, tokens: set[str]) -> str | None:
    """What a short trailing line is: "name", "contact", "org", "maybe-name" or None."""
    if len(line) > SHORT // 2 + 20:
        return None
    body = fold(line)
    words = [w.strip(".,()") for w in body.split()]
    if tokens and words and all(w in tokens for w in words if w):
        return "name"
    if any(cue in body for cue in CONTACT_CUES) and not body.endswith(("。", ".", "?", "？")):
        return "contact" if any(c.isdigit() for c in body) or "@" in body or "http" in body \
            else None
    latin = [w for w in line.split() if w]
    if any(body.endswith(cue) or f" {cue}" in f" {body} " for cue in ORG_CUES[:16]) or \
            any(cue in body for cue in ORG_CUES[16:21]) or \
            (not body.isascii() and body.endswith(ORG_CUES[21:]) and len(body) <= 20):
        return "org"
    if 1 <= len(latin) <= 3 and all(w[:1].isupper() and w.replace(".", "").isalpha()
                                    for w in latin):
        return "maybe-name"  # "Taro Yamada", "T. Yamada"
    if not body.isascii() and len(body) <= 10 and not any(c in body for c in "。、！？?!") \
            and not _has_stem(body):
        return "maybe-name"  # "山田 太郎"
    return None


def trailing_signature(lines: list[str], names: tuple[str, ...] = ()) -> list[str]:
    """`lines` without a trailing signature block: one paragraph at the end made of the
    sender's name, contact lines and department or company lines.

    A capitalised two-word line alone is not enough: the block needs a known name, a
    contact line, or a name with an organisation line; and when a sentence stands right
    above it (no blank line), a look-alike name on top needs a contact line or known name.
    """
    tokens = _name_tokens(names)
    end = len(lines)
    if end > SIGNATURE_LINES * 50:
        return lines  # a reason that long is no reply to strip politely; read as written
    while end > 0 and not lines[end - 1]:
        end -= 1
    start = end
    kinds: list[str] = []
    while start > 0 and lines[start - 1] and len(kinds) <= SIGNATURE_LINES:
        kind = _kind(lines[start - 1], tokens)
        if kind is None:
            break
        kinds.append(kind)
        start -= 1
    strong = "name" in kinds or "contact" in kinds or ("org" in kinds and "maybe-name" in kinds)
    if not kinds or not strong or len(kinds) > SIGNATURE_LINES:
        return lines
    if start > 0 and lines[start - 1] and kinds[-1] == "maybe-name" \
            and "name" not in kinds and "contact" not in kinds:
        return lines  # "Over Budget" right under the decision is a reason, not a name
    return lines[:start]
