"""Read an approver's decision from a reply mail (the grammar is docs/replies.md).

The decision must come only from the approver's own text: the quoted request usually
contains every decision word (it lists them as instructions). daemon.parsing.replytext
finds the own text (above, below or between quotes); here the first line that is not a
greeting must start with a decision word, and anything that contradicts, negates or
questions that decision elsewhere in the own text makes the reply no decision at all:
a safe failure costs the approver one more mail, a misread costs a wrong approval.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from daemon.parsing.replytext import addressed_names, extract_reply_text, own_blocks
from daemon.parsing.replywords import (
    SHORT,
    greeting_rest,
    is_rule,
    is_signoff,
    starts_disclaimer,
    trailing_signature,
)

__all__ = ["Decision", "ParsedDecision", "extract_reply_text", "parse_decision"]


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"
    HOLD = "hold"


@dataclass(frozen=True)
class ParsedDecision:
    decision: Decision
    reason: str


_WORDS: dict[str, Decision] = {
    "approve": Decision.APPROVE, "approved": Decision.APPROVE,
    "reject": Decision.REJECT, "rejected": Decision.REJECT,
    "deny": Decision.REJECT, "denied": Decision.REJECT,
    "return": Decision.RETURN, "returned": Decision.RETURN,
    "hold": Decision.HOLD,
}
_POLITE = ("", "します", "する", "しました", "いたします", "致します", "です", "でお願いします",
           "でお願いいたします", "でお願い致します", "とします", "といたします",
           "とさせていただきます")
for _stem, _decision in (("承認", Decision.APPROVE), ("却下", Decision.REJECT),
                         ("否認", Decision.REJECT), ("不承認", Decision.REJECT),
                         ("差し戻し", Decision.RETURN), ("差戻し", Decision.RETURN),
                         ("保留", Decision.HOLD)):
    _WORDS.update({_stem + suffix: _decision for suffix in _POLITE})
_WORDS.update({"差し戻します": Decision.RETURN, "差戻します": Decision.RETURN,
               "差し戻しました": Decision.RETURN})
# Longest first, so that "承認します" wins over "承認" and the remainder is the reason.
_JA_WORDS = sorted((w for w in _WORDS if not w.isascii()), key=len, reverse=True)

_SEPARATORS = " \t\u3000:：-－–—、。,，.．!！」』】）)]］>＞*＊・"
_REASON_LABEL = re.compile(r"^(?:reason|理由)\s*[:：]\s*", re.I)


def _is_boundary(rest: str) -> bool:
    """A decision word must be whole: "approvement", "承認者" or "承認しますか" are not."""
    if not rest:
        return True
    category = unicodedata.category(rest[0])
    return (rest[0].isspace() or category[0] in "PS") and rest.lstrip()[:1] not in ("?", "？")


def _match_word(line: str) -> tuple[Decision, str] | None:
    """Match the decision word at the start of `line`, returning it and the original rest."""
    # NFKC per character keeps a map back to the original, so the reason is not rewritten.
    normal: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(line):
        folded = unicodedata.normalize("NFKC", char).lower()
        normal.append(folded)
        origin.extend([index] * len(folded))
    flat = "".join(normal)
    start = 0
    while start < len(flat) and (flat[start].isspace()
                                 or unicodedata.category(flat[start])[0] in "PS"):
        start += 1
    latin = re.match(r"[a-z]+", flat[start:])
    candidates = [latin.group()] if latin else [w for w in _JA_WORDS if flat.startswith(w, start)]
    for word in candidates:
        end = start + len(word)
        rest = line[origin[end]:] if end < len(origin) else ""
        if word in _WORDS and _is_boundary(flat[end:]):
            return _WORDS[word], rest
    return None


# Words of each decision's family that may be negated or questioned anywhere in the own
# text ("I cannot approve", "approval is not possible", "承認できません", "承認しますか？").
_FAMILY_EN: dict[Decision, tuple[str, ...]] = {
    Decision.APPROVE: ("approv",), Decision.REJECT: ("reject", "deny", "denied", "denial"),
    Decision.RETURN: ("return",), Decision.HOLD: ("hold",),
}
_FAMILY_JA: dict[Decision, tuple[str, ...]] = {
    Decision.APPROVE: ("承認",), Decision.REJECT: ("却下", "否認", "不承認"),
    Decision.RETURN: ("差し戻", "差戻"), Decision.HOLD: ("保留",),
}
_NEGATIONS_EN = frozenset({
    "not", "no", "never", "cannot", "can't", "cant", "won't", "wont", "don't", "dont",
    "didn't", "doesn't", "shouldn't", "couldn't", "wouldn't", "unable", "neither", "nor",
    "isn't", "aren't", "wasn't", "refuse", "hardly", "without",
})
_ALL_EN_STEMS = tuple(stem for stems in _FAMILY_EN.values() for stem in stems)
# Mentions of a decision's words beyond this are not weighed one by one: no decision.
_MENTIONS = 100
_COPULAS_EN = frozenset({"is", "was", "will", "would", "can", "could", "should", "must"})
_NEGATIONS_JA = (
    "できません", "できない", "できかね", "出来ません", "出来ない", "しかね", "いたしかね",
    "致しかね", "しません", "しない", "せず", "できず", "は難しい", "は困難", "は不可",
    "不可", "ではありません", "ではない", "じゃない", "されません", "しておりません",
)
_QUESTIONS_JA = ("か", "かな", "かね", "でしょうか")  # a sentence ending so asks
_SENTENCE_ENDS = re.compile(r"[.!?。！？\n]")
_WORD = re.compile(r"[a-z']+|[?]")


def _contradicted_en(text: str, decision: Decision) -> bool:
    """A word of the decision's family negated ("cannot approve", "approval is not
    possible", "no approval") or in a question ("Should I approve this?")."""
    stems = _FAMILY_EN[decision]
    mentions = 0
    for sentence in re.split(r"(?<=[.!?。！？\n])", text.lower().replace("’", "'")):
        question = sentence.rstrip().endswith(("?", "？"))
        for clause in re.split(r"[,;、]", sentence):
            words = _WORD.findall(clause)
            for index, word in enumerate(words):
                if not word.startswith(stems):
                    continue
                mentions += 1
                if mentions > _MENTIONS:
                    return True  # too many to weigh: safer read as no decision
                before, after = words[max(0, index - 3):index], words[index + 1:index + 3]
                if question or any(w in _NEGATIONS_EN for w in before) \
                        or words[index - 1:index] == ["no"] or after[:1] == ["?"] \
                        or (after[:1] and after[0] in _COPULAS_EN
                            and after[1:2] and after[1] in _NEGATIONS_EN):
                    return True
    return False


def _contradicted_ja(text: str, decision: Decision) -> bool:
    mentions = 0
    for stem in _FAMILY_JA[decision]:
        start = text.find(stem)
        while start >= 0:
            mentions += 1
            if mentions > _MENTIONS:
                return True  # too many to weigh: safer read as no decision
            if text[max(0, start - 1):start] == "不" and decision != Decision.REJECT:
                return True  # 不承認 in an approval
            sentence = _SENTENCE_ENDS.split(text[start:start + 40], maxsplit=1)[0]
            ending = text[start + len(sentence):start + len(sentence) + 1]
            if any(n in sentence for n in _NEGATIONS_JA) or ending in ("?", "？") \
                    or sentence.rstrip().endswith(_QUESTIONS_JA):
                return True
            start = text.find(stem, start + len(stem))
    return False


_SUBJECTS_EN = frozenset({"i", "we", "i'll", "we'll", "i'd", "we'd", "shall", "rather",
                          "instead"})
# A change of mind: with one of these, another decision stated in the same sentence is a
# contradiction whatever was decided. Without one, only an approval is that strict ("I
# will approve once the quote is attached" is a fine reason to return a case).
_RETRACTIONS_EN = ("actually", "instead", "rather", "correction", "sorry", "second thought",
                   "changed my mind", "scratch that", "on reflection")
_RETRACTIONS_JA = ("やはり", "やっぱり", "訂正", "撤回", "間違", "取り消", "取消", "と思いましたが",
                   "失礼しました", "変更します")
# After a decision stem, forms that state that decision ("やはり却下します", "却下とします").
_STATING_JA = ("します", "いたします", "致します", "する。", "とします", "にします", "とさせ",
               "させて", "してください", "して下さい", "てください", "て下さい", "でお願い",
               "とする", "です", "。")


_THE_CASE = frozenset({"case", "request", "application", "ringi", "one"})


def _about_the_case(following: list[str]) -> bool:
    """"return it", "hold this", "return the request": the object is the case itself."""
    return bool(following) and (following[0] in ("it", "this", "that") or (
        following[0] == "the" and following[1:2] != [] and following[1] in _THE_CASE))


def _states_other_en(text: str, decision: Decision) -> bool:
    """Another decision stated with a subject ("I reject", "we'll return it")."""
    for clause in re.split(r"[.!?。！？\n;]", text.lower().replace("’", "'")):
        words = _WORD.findall(clause)
        for index, word in enumerate(words):
            if not word.startswith(_ALL_EN_STEMS):
                continue
            others = [o for o in Decision if o != decision and word.startswith(_FAMILY_EN[o])]
            if others and others[0] in (Decision.RETURN, Decision.HOLD) \
                    and not _about_the_case(words[index + 1:index + 3]):
                continue  # "we return by train", "I'll hold the meeting": other verbs
            if others and any(w in _SUBJECTS_EN for w in words[max(0, index - 2):index]) \
                    and not any(w in _NEGATIONS_EN for w in words[max(0, index - 3):index]) \
                    and (decision == Decision.APPROVE or any(r in clause for r in _RETRACTIONS_EN)):
                return True
    return False


def _states_other_ja(text: str, decision: Decision) -> bool:
    """Another decision stated in Japanese anywhere ("…と思いましたが、やはり却下します")."""
    for other in Decision:
        if other == decision:
            continue
        for stem in _FAMILY_JA[other]:
            start = text.find(stem)
            mentions = 0
            while start >= 0:
                mentions += 1
                if mentions > _MENTIONS:
                    return True
                tail = text[start + len(stem):start + len(stem) + 8]
                if stem.endswith("戻") and tail.startswith("し"):
                    tail = tail[1:]
                negated = text[max(0, start - 1):start] == "不" and other == Decision.APPROVE
                before = _SENTENCE_ENDS.split(text[max(0, start - 40):start])[-1]
                if not negated and tail.startswith(_STATING_JA) and \
                        not any(n in tail for n in _NEGATIONS_JA) and (
                            decision == Decision.APPROVE
                            or any(r in before for r in _RETRACTIONS_JA)):
                    return True
                start = text.find(stem, start + len(stem))
    return False


def _clean_decision(line: str) -> Decision | None:
    """A line that states a decision on its own ("Reject", "Reject: ...", "却下します。")."""
    matched = _match_word(line)
    if matched is None:
        return None
    decision, rest = matched
    rest = rest.strip()
    if not rest or rest[0] in ":：-－–—。.!！" or rest.strip(_SEPARATORS) == "":
        return decision
    return decision if not line.isascii() and rest[:1] in "、。 \u3000" else None


def _questioned(line: str) -> bool:
    """A line opening with a decision word in a question ("Hold? Not sure", "却下？")."""
    head = line[:40]
    if "?" not in head and "？" not in head:
        return False
    return _match_word(line.replace("?", " ").replace("？", " ")) is not None


def _content(block: list[str], names: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """A block's first line after its greetings, and the lines after it up to the
    signature, sign-off or disclaimer (None if the block holds only greetings)."""
    first: str | None = None
    index = 0
    while index < len(block) and first is None:
        line = block[index]
        index += 1
        rest = greeting_rest(line) if line else ""
        if rest is None:
            first = line
        elif rest:
            first = rest
    if first is None:
        return None
    after = block[index:]
    cut = next((i for i, line in enumerate(after) if line and (
        is_signoff(line) or is_rule(line) or starts_disclaimer(after, i))), len(after))
    return first, trailing_signature(after[:cut], names)


def _strip_closing(text: str) -> str:
    """"looks fine, thanks" -> "looks fine"; "…差し戻します。よろしくお願いします。" likewise."""
    for index in range(len(text) - 1, max(0, len(text) - SHORT), -1):
        if text[index - 1] in ",、。.!！ " and is_signoff(text[index:]):
            return text[:index].rstrip(" ,、")
    return text


def parse_decision(text: str, names: tuple[str, ...] = ()) -> ParsedDecision | None:
    """Decision from a reply body (the whole body: quotes are found and skipped here).

    `names` are the sender's names (From display name, directory names): a trailing line
    made of them is a signature, not part of the reason; the name ringi's request was
    addressed to, found in the quote, counts too. None if no decision is read.
    """
    names = (*names, *addressed_names(text))
    contents = [c for c in (_content(b, names) for b in own_blocks(text)) if c is not None]
    found = [(c, m) for c in contents if (m := _match_word(c[0])) is not None]
    if not found or len({m[0] for _, m in found}) > 1:
        return None  # no decision, or two own blocks that disagree
    (first, after), (decision, rest) = found[0]
    chosen = contents.index(found[0][0])
    others = [line for n, (first_line, lines) in enumerate(contents)
              for line in ([first_line] if n != chosen else []) + lines]
    if any(_clean_decision(line) not in (None, decision) or _questioned(line) for line in others):
        return None  # "Approve" ... "Reject" or "Hold?": a contradiction is no decision
    own_text = "\n".join([first, *others])
    reason_text = "\n".join([rest, *others])
    if _contradicted_en(own_text, decision) or _contradicted_ja(own_text, decision) \
            or _states_other_en(reason_text, decision) or _states_other_ja(reason_text, decision):
        return None
    rest = rest.lstrip(_SEPARATORS)
    rest = "" if is_signoff(rest) else rest  # "Approved, thanks!"
    reason_lines = [line for line in (rest, *after) if line]
    if reason_lines:
        # "Reason:" may follow the word or open the next line; a "- item" list stays whole.
        labelled = _REASON_LABEL.sub("", reason_lines[0])
        if rest or labelled != reason_lines[0]:
            reason_lines[0] = labelled.lstrip(_SEPARATORS)
        reason_lines[-1] = _strip_closing(reason_lines[-1])
    return ParsedDecision(decision, "\n".join(line for line in reason_lines if line).strip())
