"""The HTML alternative: derived from the text, hostile text stays text, decision links become
buttons only when they are ringi's own, the route is a progress line, attachments survive."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser

from daemon.clock import FrozenClock
from daemon.config import MailConfig
from daemon.notify.compose import Composer, OutgoingFile
from daemon.notify.html import Route, html_body, phases_ahead, route_of
from daemon.notify.templates import Rendered
from daemon.outbox.outbox import wire_bytes
from daemon.parsing.htmltext import html_to_text

OWN = "ringi@example.com"
CLOCK = FrozenClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
APPROVE = "mailto:ringi+tok123@example.com?subject=Re%3A%20%5BR-1%5D%20x&body=APPROVE"


class _Tags(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    p.close()
    return p


def links(html: str) -> list[tuple[str, str]]:
    """(href, style) of every <a>."""
    return [(a.get("href") or "", a.get("style") or "") for t, a in parsed(html).tags
            if t == "a"]


def test_hostile_text_never_becomes_markup() -> None:
    text = ('Title: <script>alert(1)</script>\nReason: "><img src=x onerror=alert(1)>\n'
            "See javascript:alert(document.cookie) and data:text/html,<b>x</b>\n"
            "<a href=\"javascript:alert(1)\">click</a> &amp; <!-- -->")
    html = html_body(text, OWN)
    tags = {t for t, _ in parsed(html).tags}
    assert tags <= {"html", "head", "meta", "body", "div", "br", "span"}  # no script, img, a
    assert "<script" not in html and "<img" not in html  # only as escaped text
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    # What a reader sees is the text as written, line for line.
    assert html_to_text(html) == text


def test_only_mailto_and_https_become_links() -> None:
    text = ("a https://intranet.example.com/cases/R-1?x=1&y=2.\n"
            "b http://plain.example.com/ c ftp://f.example.com/ d javascript:alert(1)\n"
            'e https://x.example.com/"onmouseover="alert(1)\n'
            "f mailto:someone@elsewhere.example.com")
    got = links(html_body(text, OWN))
    assert [h for h, _ in got] == ["https://intranet.example.com/cases/R-1?x=1&y=2",
                                   "https://x.example.com/",
                                   "mailto:someone@elsewhere.example.com"]
    assert all("background" not in style for _, style in got)  # links, not buttons


def test_decision_links_to_ringi_become_buttons_with_the_same_url() -> None:
    text = f"Or use one of these links:\n  Approve: {APPROVE}\n  承認: {APPROVE}\n{APPROVE}"
    html = html_body(text, OWN)
    got = links(html)
    assert [h for h, _ in got] == [APPROVE] * 3
    assert all("background" in style for _, style in got)
    labels = re.findall(r'<a [^>]*>([^<]*)</a>', html)
    assert labels == ["Approve", "承認", "APPROVE"]  # the label, else the decision word


def test_a_lookalike_address_is_no_button() -> None:
    text = ("  Approve: mailto:ringi+x@example.com.evil.test?body=APPROVE\n"
            "  Approve: mailto:ringi-x@example.com?body=APPROVE\n"
            "  Approve: mailto:xringi@example.com?body=APPROVE")
    assert all("background" not in style for _, style in links(html_body(text, OWN)))


def test_a_long_prefix_stays_text_beside_the_button() -> None:
    html = html_body(f"[R-1] Please decide by Friday, thanks: {APPROVE}", OWN)
    assert "[R-1] Please decide by Friday, thanks: <a " in html
    assert re.findall(r'<a [^>]*>([^<]*)</a>', html) == ["APPROVE"]


def test_progress_line_marks_each_person() -> None:
    route = Route(done=("Sato (Manager)", "<b>Evil</b>"), now=("鈴木 (部長)",),
                  next=("Finance",))
    html = html_body("body", OWN, route)
    line = html.split('<div style="font-family:Arial,\'Hiragino', 1)[0]
    shown = "".join(parsed(line).text)
    assert "\u2713 Sato (Manager)" in shown and "\u2713 <b>Evil</b>" in shown
    assert "\u25cf 鈴木 (部長)" in shown and "\u25cb Finance" in shown
    assert shown.index("\u2713") < shown.index("\u25cf") < shown.index("\u25cb")
    assert "<b>" not in line  # the name is text
    assert "\u2713" not in html_body("body", OWN, Route())  # nothing to draw, no line


def test_route_of_a_case_view() -> None:
    view = {"approvals": [{"name": "Sato", "at": None, "reason": ""}]}
    assert route_of(view, ["Takahashi"], ["Finance"]) == Route(("Sato",), ("Takahashi",),
                                                              ("Finance",))
    assert not route_of(None, [], [])


def test_phases_ahead() -> None:
    class P:
        def __init__(self, name: str, title: str, title_ja: str) -> None:
            self.name, self.title, self.title_ja = name, title, title_ja

    phases = [P("line", "Line", "所属長"), P("fin", "Finance", "経理"), P("x", "", "")]
    assert phases_ahead(phases, {"phase": 0, "step": 0, "sub": 0}, "en") == ("Finance", "x")
    assert phases_ahead(phases, {"phase": 1}, "ja") == ("x",)
    assert phases_ahead(phases, None, "en") == ()
    assert phases_ahead(phases, {"deferred": 3}, "en") == ()


def test_japanese_and_long_lines_keep_their_structure() -> None:
    long = "あ" * 3000 + " " + "x" * 5000
    text = f"佐藤様\n\n  件名: 大阪出張\n{long}\n"
    html = html_body(text, OWN, lang="ja")
    assert 'lang="ja"' in html and "pre-wrap" in html
    assert html_to_text(html).split("\n") == [line.strip() for line in text.strip().split("\n")]
    msg = Composer(MailConfig(request_address=OWN), CLOCK).compose(
        Rendered("大阪出張", text), "sato@example.com", lang="ja")
    back = email.message_from_bytes(wire_bytes(msg), policy=email.policy.default)
    assert isinstance(back, EmailMessage)
    assert max(len(line) for line in wire_bytes(msg).split(b"\r\n")) <= 998
    part = back.get_body(("html",))
    assert part is not None and long in part.get_content()


def _compose(html: bool, files: tuple[OutgoingFile, ...] = ()) -> EmailMessage:
    body = f"Dear <Sato>,\n\n  Approve: {APPROVE}\n"
    msg = Composer(MailConfig(request_address=OWN, html=html), CLOCK).compose(
        Rendered("Approval needed", body), "sato@example.com", reply_token="tok123",
        attachments=files, route=Route(("Tanaka",), ("Sato",)))
    back = email.message_from_bytes(wire_bytes(msg), policy=email.policy.default)
    assert isinstance(back, EmailMessage)
    return back


def test_compose_is_alternative_with_the_text_unchanged() -> None:
    msg = _compose(True)
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == f"Dear <Sato>,\n\n  Approve: {APPROVE}\n"
    assert [h for h, _ in links(html.get_content())] == [APPROVE]
    plain_only = _compose(False)
    assert plain_only.get_content_type() == "text/plain"


def test_attachments_go_beside_the_alternative() -> None:
    csv = OutgoingFile("history.csv", "text", "csv", b"a,b\r\n1,2\r\n", "utf-8")
    msg = _compose(True, (csv,))
    assert msg.get_content_type() == "multipart/mixed"
    first, *_ = msg.iter_parts()
    assert first.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in first.iter_parts()] == ["text/plain", "text/html"]
    files = list(msg.iter_attachments())
    assert [(f.get_filename(), f.get_content_type()) for f in files] == [
        ("history.csv", "text/csv")]
    assert files[0].get_payload(decode=True) == b"a,b\r\n1,2\r\n"
    plain = msg.get_body(("plain",))
    assert plain is not None and "Approve: mailto:" in plain.get_content()
