"""A refused request sent back as the person wrote it, the lines to correct marked.

Retyping a whole form because one amount had a letter O in it is what makes people give up
on mail forms. The answer to a refused request therefore holds every line the person wrote
(up to the signature or the quote, where parse_form_text stops too), each wrong line marked
with why, and the required lines they left out added empty with a marker, so the next mail
is this one with a line or two corrected.
"""

from __future__ import annotations

from daemon.cases.casetypes import CaseType
from daemon.parsing.request import FieldProblem, RawForm, render_form

MARK_EN = "   <-- "
MARK_JA = "   ←"


def _note(problem: FieldProblem, ja: bool, label: str) -> str:
    """The message without its leading "Label: " (the marked line already shows it)."""
    text = problem.message_ja if ja else problem.message
    for prefix in (f"{label}: ", f"{label}："):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _written_lines(body: str) -> list[str]:
    """The lines of the body parse_form_text reads, without trailing blank lines."""
    lines: list[str] = []
    for line in body.splitlines():
        text = line.strip()
        if text == "--" or text.startswith(">"):
            break
        lines.append(line.rstrip())
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def prefilled_form(ct: CaseType, body: str, form: RawForm, problems: list[FieldProblem],
                   locale: str) -> str:
    """The request as written, wrong lines marked, missing required lines added, and the
    form's hints below the "--" line (where parsing stops, so the hints never count)."""
    ja = locale.split("-")[0].split("_")[0].lower() == "ja"
    mark = MARK_JA if ja else MARK_EN
    lines = _written_lines(body)
    specs = {spec.name: spec for spec in ct.fields}
    notes: dict[int, list[str]] = {}
    missing: list[str] = []
    for p in problems:
        spec = specs.get(p.field)
        label = (spec.label_ja or spec.label) if ja and spec else spec.label if spec else ""
        keys = [k for k in form.line_of if spec is not None and k in spec.match_keys()] \
            if spec is not None else [p.field]
        numbers = [form.line_of[k] for k in keys if k in form.line_of
                   and form.values.get(k, "").strip()]
        if not numbers and spec is not None:  # a required line left out or left empty
            empty = [form.line_of[k] for k in keys if k in form.line_of]
            if empty:
                numbers = empty[:1]
            else:
                missing.append(f"{label}: {mark}{_note(p, ja, label)}")
                continue
        for n in numbers:
            notes.setdefault(n, []).append(_note(p, ja, label or p.field))
    out = []
    for n, line in enumerate(lines, start=1):
        out.append(f"{line}{mark}{' / '.join(notes[n])}" if n in notes else line)
    if missing:
        out += missing
    hints = render_form(ct, locale).split("\n--\n", 1)[1]
    return "\n".join(out) + "\n\n--\n" + hints
