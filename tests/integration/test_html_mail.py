"""The HTML alternative end to end (real SMTP listener, real relay): an approval request is
multipart/alternative with its text part as it was and decision buttons carrying the text's
own links; the route is drawn; a reply from a client that answers in HTML (quoting ringi's
HTML) is read as it should be; a mail with an attachment keeps it."""

from __future__ import annotations

import email.utils
import re
import smtplib
from email.message import EmailMessage

from sqlalchemy import select

from daemon.parsing.htmltext import html_to_text
from daemon.store.models import Case
from tests.integration.test_outcomes import (
    KATO,
    SATO,
    TANAKA,
    World,
    number_of,
    travel,
)
from tests.support import Captured


def html_of(mail: Captured) -> str:
    part = mail.message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def hrefs(html: str) -> list[str]:
    return [email.utils.unquote(h).replace("&amp;", "&")
            for h in re.findall(r'<a href="([^"]*)"', html)]


def html_reply(w: World, mail: Captured, sender: str, answer: str,
               outlook: bool = False) -> None:
    """Gmail's reply: the answer in HTML on top, ringi's HTML quoted in a blockquote, and
    no text/plain part at all; or Outlook's: a From/Sent header block, then ringi's HTML
    as it was, not indented."""
    inner = re.search(r"<body[^>]*>(.*)</body>", html_of(mail), re.S)
    assert inner
    quote = (f'<div class="gmail_quote"><div dir="ltr">On Mon, Nov 2, 2026 at 9:00 AM ringi '
             f'wrote:<br></div><blockquote class="gmail_quote" style="margin:0 0 0 .8ex">'
             f"{inner.group(1)}</blockquote></div>")
    if outlook:
        quote = (f'<div id="divRplyFwdMsg"><hr style="display:inline-block;width:98%">'
                 f"<b>From:</b> ringi &lt;ringi@example.com&gt;<br><b>Sent:</b> Monday, "
                 f"November 2, 2026 9:00 AM<br><b>To:</b> {sender}<br><b>Subject:</b> "
                 f"{mail.subject}</div><div>{inner.group(1)}</div>")
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, str(mail.message["Reply-To"])
    msg["Subject"] = "Re: " + mail.subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.com")
    msg["In-Reply-To"] = str(mail.message["Message-ID"])
    msg.set_content(f'<div dir="ltr"><div>{answer}</div></div><br>{quote}', subtype="html")
    with smtplib.SMTP("127.0.0.1", w.port, timeout=10) as client:
        client.send_message(msg, from_addr=sender, to_addrs=[msg["To"]])


def normalised(text: str) -> str:
    """A request's text without what differs between two cases: number and token."""
    text = re.sub(r"R-\d{4}-\d{6}", "R-N", text)
    return re.sub(r"(#|%23|\+)[A-Za-z0-9_-]{8,}", r"\1TOKEN", text)


def test_request_is_alternative_and_an_html_reply_is_read(world: World) -> None:
    w = world
    w.send(TANAKA, "大阪出張 <script>alert(1)</script>", travel("30,000", "2"))
    number = number_of(w.one(TANAKA))
    req = w.one(SATO)
    assert req.message.get_content_type() == "multipart/alternative"
    html = html_of(req)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # Every decision link of the text is a button with the very same URL, and only those.
    text_links = re.findall(r"mailto:\S+", req.body)
    assert len(text_links) == 4 and hrefs(html) == text_links
    assert html.count("background:#1a5fb4") == 4
    assert "\u25cf 佐藤" in html and "\u2713" not in html  # asked now, nobody approved yet
    assert "\u25cb" in html  # the accounting phase still ahead

    # The text part is what it was: the same request with the HTML alternative turned off.
    w.app.cfg.mail.html = False
    w.send(TANAKA, "大阪出張 <script>alert(1)</script>", travel("30,000", "2"))
    w.new(TANAKA)
    plain = w.one(SATO)
    assert plain.message.get_content_type() == "text/plain"
    assert normalised(plain.body) == normalised(req.body)
    w.app.cfg.mail.html = True

    html_reply(w, req, SATO, "承認します")
    assert "承認しました" in w.one(SATO).subject
    w.new(TANAKA)  # progress
    req2 = w.one(KATO)
    html2 = html_of(req2)
    assert "\u2713 佐藤" in html2 and "\u25cf 加藤" in html2
    assert w.case(number).state == "in_review"
    # The quoted buttons (承認/却下/…) below the answer were not read as decisions.
    html_reply(w, req2, KATO, "却下<br>領収書の枚数が合いません")
    assert "却下しました" in w.one(KATO).subject
    assert w.case(number).state == "rejected"
    assert "領収書の枚数が合いません" in w.one(TANAKA).body


def test_an_outlook_html_reply_is_read(world: World) -> None:
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    number = number_of(w.one(TANAKA))
    html_reply(w, w.one(SATO), SATO, "Approved, thanks.<br><br>APPROVE", outlook=True)
    assert "承認しました" in w.one(SATO).subject
    assert "\u2713 佐藤" in html_of(w.one(KATO))
    assert w.case(number).state == "in_review"


def test_ringi_html_reads_back_as_its_text(world: World) -> None:
    """What an HTML-only client quotes is ringi's text, line for line (as HTML shows it: runs
    of spaces collapse)."""
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    w.new(TANAKA)
    req = w.one(SATO)
    back = html_to_text(html_of(req)).split("\n")
    assert back[0].startswith("\u25cf 佐藤")  # the progress line comes first
    want = [re.sub(r"^(.*?):?\s*mailto:\S+$", r"\1", " ".join(line.split()))
            for line in req.body.strip().split("\n")]
    assert "承認" in want and back[1:] == ["", *want]  # a decision line reads as its button


def test_the_route_is_drawn_only_for_people_in_the_directory(world: World) -> None:
    """Who approves is the company's business: an outsider's mail about a case (a partner's
    delivery notice) gets the HTML of its text and no progress line."""
    w = world
    w.send(TANAKA, "大阪出張", travel("30,000", "2"))
    number = number_of(w.one(TANAKA))
    w.new(SATO)
    outsider = "partner@elsewhere.example"
    with w.app.store.transaction() as s:
        case = s.scalar(select(Case).where(Case.number == number))
        assert case is not None
        w.app.notifier.to_address(s, "notify", outsider, "en", {}, case)
        w.app.notifier.to_address(s, "notify", SATO, "en", {}, case)
    for who, drawn in ((outsider, False), (SATO, True)):
        html = html_of(w.one(who))
        assert ("\u25cf" in html) is drawn, who
        assert number in html


def test_an_attachment_stays_beside_the_alternative(world: World) -> None:
    w = world
    w.send(KATO, "relation history Procurement", "")
    history = w.one(KATO)
    msg = history.message
    assert msg.get_content_type() == "multipart/mixed"
    first = next(msg.iter_parts())
    assert first.get_content_type() == "multipart/alternative"
    files = [p.get_filename() for p in msg.iter_attachments()]
    assert files == ["relation-history.csv"]
    assert history.body.strip() and html_of(history)
