"""The HTML alternative of an outgoing mail, derived from its rendered text.

One template source per mail: the HTML is built from the text part, never from a template of
its own, so both always say the same. Everything in the text is escaped (it quotes subjects,
reasons and names as their writers typed them); only `mailto:` and `https:` URLs become links,
and only a `mailto:` to ringi's own address becomes a decision button. Inline CSS only: no
external resources, no images (clients block them, and they would tell who opened a mail).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

# A URL runs to whitespace, a quote or an angle bracket (and an ideographic space / bracket).
_URL = re.compile(r"(?i)\b(?:mailto:|https://)[^\s<>\"'\u3000「」（）]+")
_TRAILING = ".,;:!?)]}。、"  # prose punctuation after a URL is not part of it
_BUTTON = ("display:inline-block;padding:6px 14px;margin:2px 0;border-radius:4px;"
           "background:#1a5fb4;color:#ffffff;text-decoration:none;font-weight:bold;")
_LINK = "color:#1a5fb4;"
_BODY = ("font-family:Arial,'Hiragino Sans','Meiryo',sans-serif;font-size:14px;"
         "line-height:1.5;color:#222222;")
_LINE = "white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere;"
_LABEL_MAX = 24  # "  Approve: mailto:..." -> button "Approve"; a longer prefix stays text
_MARKS = {"done": ("\u2713", "#2e7d32"), "now": ("\u25cf", "#1a5fb4"),
          "next": ("\u25cb", "#777777")}


@dataclass(frozen=True)
class Route:
    """A case's route for the progress line: who approved, who is asked, what comes next."""

    done: tuple[str, ...] = ()
    now: tuple[str, ...] = ()
    next: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.done or self.now or self.next)


def route_of(view: Any, asked: Sequence[str], ahead: Sequence[str]) -> Route:
    """The progress line of a case view (its counted approvals) and the open asks."""
    approvals = view.get("approvals", []) if isinstance(view, dict) else []
    done = tuple(str(a.get("name", "")) for a in approvals if isinstance(a, dict))
    return Route(done, tuple(asked), tuple(ahead))


def phases_ahead(phases: Sequence[Any], route: Any, locale: str) -> tuple[str, ...]:
    """The titles of the route's phases after the one a case stands in (`case.route`); who
    is asked there is resolved only when the case gets there."""
    if not isinstance(route, dict) or "phase" not in route:
        return ()
    titles = ((p.title_ja if locale == "ja" else p.title) or p.name
              for p in phases[int(route["phase"]) + 1:])
    return tuple(str(t) for t in titles)


def html_body(text: str, own_address: str, route: Route | None = None,
              lang: str = "en") -> str:
    """A complete HTML document saying what `text` says, line for line.

    `own_address` is ringi's request address: a `mailto:` to it (or to a `+token` address of
    it) is one of ringi's decision links and is drawn as a button; any other `mailto:` or
    `https:` URL is an ordinary link, so text a requester wrote cannot pose as a button.
    """
    local, _, domain = own_address.lower().partition("@")
    # One pre-wrap block, lines split by <br> and no newline in the source (a newline would be
    # a second break): browsers keep indentation, and HTML-to-text (ours, a client's quote)
    # gets the same lines back.
    lines = "<br>".join(_line(line, local, domain) for line in text.rstrip("\n").split("\n"))
    progress = _progress(route) if route else ""
    return (f'<!DOCTYPE html>\n<html lang="{escape(lang)}"><head>'
            '<meta charset="utf-8"></head>\n'
            f'<body style="margin:0;padding:12px;">\n{progress}'
            f'<div style="{_BODY}{_LINE}">{lines}</div>\n</body></html>\n')


def _line(line: str, local: str, domain: str) -> str:
    out: list[str] = []
    at = 0
    for m in _URL.finditer(line):
        url = m.group(0).rstrip(_TRAILING)
        if url.lower() in ("mailto:", "https://"):
            continue
        start, end = m.start(), m.start() + len(url)
        prefix = line[at:start]
        if url.lower().startswith("mailto:") and _ours(url, local, domain):
            label = prefix.strip().rstrip(":").strip()
            if len(label) > _LABEL_MAX or ":" in label or "\uff1a" in label:
                label = ""
            # "  Approve: mailto:..." becomes "  [Approve]": the label moves into the button.
            indent = prefix[: len(prefix) - len(prefix.lstrip())] if label else prefix
            word = label or _word_of(url) or url[len("mailto:"):].split("?", 1)[0]
            out.append(escape(indent) + f'<a href="{escape(url, quote=True)}" '
                       f'style="{_BUTTON}">{escape(word)}</a>')
        else:
            out.append(escape(prefix) + f'<a href="{escape(url, quote=True)}" '
                       f'style="{_LINK}">{escape(url)}</a>')
        at = end
    out.append(escape(line[at:]))
    return "".join(out)


def _ours(url: str, local: str, domain: str) -> bool:
    addr = url[len("mailto:"):].split("?", 1)[0].lower()
    name, _, host = addr.partition("@")
    return host == domain and (name == local or name.startswith(local + "+"))


def _word_of(url: str) -> str:
    """The decision word a mailto link puts in the reply's body (`&body=APPROVE`)."""
    query = urlsplit(url).query
    return parse_qs(query).get("body", [""])[0].split("\n", 1)[0].strip()


def _progress(route: Route) -> str:
    items: list[str] = []
    for kind, names in (("done", route.done), ("now", route.now), ("next", route.next)):
        mark, color = _MARKS[kind]
        weight = "bold" if kind == "now" else "normal"
        for name in names:
            items.append(f'<span style="color:{color};font-weight:{weight};'
                         f'white-space:nowrap;">{mark} {escape(name)}</span>')
    arrow = ' <span style="color:#999999;">\u2192</span> '
    return ('<div style="font-family:Arial,sans-serif;font-size:13px;padding:8px 10px;'
            'margin-bottom:12px;background:#f3f5f8;border-radius:4px;">'
            f"{arrow.join(items)}</div>\n")
