"""HTML-to-text, so mail with no text/plain part still yields a body the reply cut can read."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _HTMLText(HTMLParser):
    """HTML to text; <blockquote> becomes '> ' quoting so the reply cut still sees the quote."""

    _BLOCK = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4",
                        "h5", "h6", "blockquote", "pre", "hr", "dd"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.buf: list[str] = []
        self.depth = {"blockquote": 0, "pre": 0, "hidden": 0}
        self.line_quote = 0

    def _break(self) -> None:
        line = "".join(self.buf).replace("\xa0", " ").strip()
        quote = "> " * min(self.line_quote, 10)  # capped: hostile nesting must not explode
        self.lines.append(quote + line if line else "")
        self.buf, self.line_quote = [], self.depth["blockquote"]

    def _tag(self, tag: str, step: int) -> None:
        if tag in self._BLOCK:
            self._break()
        key = "hidden" if tag in self._HIDDEN else tag
        if key in self.depth:
            self.depth[key] = max(0, self.depth[key] + step)
            self.line_quote = self.depth["blockquote"]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, 1)

    def handle_endtag(self, tag: str) -> None:
        self._tag(tag, -1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:  # <br/> is one break; <script/> must not open a hidden region
            self._break()

    def handle_data(self, data: str) -> None:
        if self.depth["hidden"]:
            return
        if not self.depth["pre"]:
            self.buf.append(re.sub(r"[ \t\r\n\f]+", " ", data))
            return
        first, *rest = data.split("\n")
        self.buf.append(first)
        for line in rest:
            self._break()
            self.buf.append(line)

    def text(self) -> str:
        self._break()
        return re.sub(r"\n{3,}", "\n\n", "\n".join(self.lines)).strip("\n")


def html_to_text(html: str) -> str:
    """Plain text of an HTML body, for mailers that send no text/plain alternative."""
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but be certain intake never dies here
        return re.sub(r"<[^>]*>", "", html)
    return parser.text()
