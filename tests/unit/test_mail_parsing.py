"""Tests for daemon.parsing.message: decoding real-world (mostly Japanese) raw mail."""

from __future__ import annotations

import base64
import quopri
import random

import pytest

from daemon.parsing.message import ParsedMail, decode_bytes, decode_header_value, parse_mail

SUBJECT = "【稟議】出張申請 No.123 の件"
BODY = "お疲れ様です。\n出張申請を承認します。\n金額：１２万円（税込）"
CP932_SUBJECT = "稟議①　髙橋さん ㈱ﾃｽﾄ"  # NEC/IBM extensions + half-width kana: cp932 only


def encoded_word(text: str, charset: str, codec: str | None = None) -> bytes:
    payload = base64.b64encode(text.encode(codec or charset))
    return b"=?" + charset.encode() + b"?B?" + payload + b"?="


def build(headers: list[tuple[str, bytes | str]], body: bytes = b"Hello\r\n") -> bytes:
    """Assemble a raw message exactly as it would arrive over SMTP (CRLF, raw bytes)."""
    lines = [name.encode() + b": " + (v.encode() if isinstance(v, str) else v)
             for name, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def simple(body: bytes, charset: str, cte: str, subject: bytes = b"Hi",
           ctype: str = "text/plain") -> bytes:
    return build([("From", "Yamada <yamada@example.jp>"), ("To", "ringi@example.jp"),
                  ("Subject", subject), ("Message-ID", "<m1@example.jp>"),
                  ("MIME-Version", "1.0"),
                  ("Content-Type", f"{ctype}; charset={charset}"),
                  ("Content-Transfer-Encoding", cte)], body)


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


@pytest.mark.parametrize(
    ("charset", "codec", "cte"),
    [
        ("ISO-2022-JP", "iso2022_jp", "7bit"),
        ("iso-2022-jp", "iso2022_jp", "base64"),
        ("Shift_JIS", "cp932", "base64"),
        ("Shift_JIS", "cp932", "8bit"),
        ("x-sjis", "cp932", "8bit"),
        ("windows-31j", "cp932", "quoted-printable"),
        ("UTF-8", "utf-8", "base64"),
        ("utf-8", "utf-8", "quoted-printable"),
        ("utf-8", "utf-8", "8bit"),
        ("EUC-JP", "euc_jp", "8bit"),
    ],
)
def test_body_and_subject_charsets(charset: str, codec: str, cte: str) -> None:
    raw_body = crlf(BODY).encode(codec)
    if cte == "base64":
        raw_body = base64.encodebytes(raw_body)
    elif cte == "quoted-printable":
        raw_body = quopri.encodestring(raw_body)
    mail = parse_mail(simple(raw_body, charset, cte, encoded_word(SUBJECT, charset, codec)))
    assert mail.subject == SUBJECT
    assert mail.text == BODY  # CRLF normalised to LF, no mojibake
    assert mail.auto_reason is None


@pytest.mark.parametrize("label", ["Shift_JIS", "sjis", "x-sjis", "shift-jis", "CP932"])
# "～" and "－" also decode under strict shift_jis, but as different code points (〜, −)
# than the Windows user typed; only treating the label as cp932 gets them right.
@pytest.mark.parametrize("text", [CP932_SUBJECT, "10:00～12:00 －5%"])
def test_shift_jis_labels_decode_as_cp932(label: str, text: str) -> None:
    body = base64.encodebytes(text.encode("cp932"))
    mail = parse_mail(simple(body, label, "base64", encoded_word(text, label, "cp932")))
    assert mail.subject == text
    assert mail.text == text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # CP50220-style: NEC row 13 (①, ㈱) inside ESC $ B, half-width kana via ESC ( I
        (b"\x1b$B-!-j\x1b(I6E\x1b(B", "①㈱ｶﾅ"),
        # JIS X 0212 (ESC $ ( D) as sent by iso-2022-jp-1/-2 mailers
        ("森鷗外".encode("iso2022_jp_1"), "森鷗外"),
        ("申請".encode("iso2022_jp"), "申請"),
        ("ｶﾅ森鷗外".encode("iso2022_jp_ext"), "ｶﾅ森鷗外"),  # half-width kana + JIS X 0212
        ("𩸽定食".encode("iso2022_jp_2004"), "𩸽定食"),  # JIS X 0213 plane 2
        ("한국 支社".encode("iso2022_jp_2"), "한국 支社"),  # ISO-2022-JP-2 multilingual
    ],
)
def test_iso_2022_jp_variants(raw: bytes, expected: str) -> None:
    assert decode_bytes(raw, "iso-2022-jp") == expected
    subject = b"=?ISO-2022-JP?B?" + base64.b64encode(raw) + b"?="
    assert parse_mail(simple(raw + b"\r\n", "iso-2022-jp", "7bit", subject)).subject == expected


def test_iso_2022_jp_mixing_0212_and_nec_degrades_instead_of_raising() -> None:
    text = decode_bytes(b"\x1b$B-!\x1b$(Dl?\x1b(B", "iso-2022-jp")
    assert text.startswith("①") and "\x1b" not in text


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (SUBJECT.encode("utf-8"), SUBJECT),
        (SUBJECT.encode("cp932"), SUBJECT),
        ("経費精算の申請について承認をお願いします".encode("euc_jp"),
         "経費精算の申請について承認をお願いします"),
        (SUBJECT.encode("iso2022_jp"), SUBJECT),  # undeclared 7-bit JIS in a header
        (b"Re: " + encoded_word("稟議", "UTF-8") + b" " + "申請".encode("cp932"), "Re: 稟議 申請"),
    ],
)
def test_raw_undeclared_header_bytes(subject: bytes, expected: str) -> None:
    assert parse_mail(simple(b"x", "us-ascii", "7bit", subject)).subject == expected


def test_rfc2047_edge_cases() -> None:
    utf8 = "稟議書".encode()
    split = (b"=?UTF-8?B?" + base64.b64encode(utf8[:4]) + b"?=\r\n =?UTF-8?B?"
             + base64.b64encode(utf8[4:]) + b"?=")  # a character split across two words
    assert parse_mail(simple(b"x", "utf-8", "7bit", split)).subject == "稟議書"
    assert decode_header_value("=?utf-8?q?a_b?= =?utf-8?q?c?=") == "a bc"
    assert decode_header_value("=?no-such-charset?B?" + base64.b64encode(utf8).decode() + "?=") \
        == "稟議書"
    assert decode_header_value("x =?utf-8?B?!!!?= y") == "x =?utf-8?B?!!!?= y"


def test_subject_whitespace_is_normalised_but_ideographic_space_kept() -> None:
    mail = parse_mail(simple(b"x", "utf-8", "7bit", "  Re:\t稟議\r\n   申請　書  ".encode()))
    assert mail.subject == "Re: 稟議 申請　書"


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        ("x-unknown-charset", BODY.encode("utf-8"), BODY),
        ("zip", BODY.encode("cp932"), BODY),  # a bytes-to-bytes codec is not a charset
        ('"utf-8"', BODY.encode("utf-8"), BODY),
        ("us-ascii", BODY.encode("cp932"), BODY),  # mislabelled 8-bit text
        ("utf-8", BODY.encode("cp932"), BODY),  # declared charset that does not fit
        ("utf-8", b"ok \xff\xfe\xfd end", None),  # truly undecodable: must still return text
    ],
)
def test_bad_or_missing_charsets(charset: str, body: bytes, expected: str | None) -> None:
    mail = parse_mail(simple(body, charset, "8bit"))
    if expected is None:
        assert mail.text.startswith("ok ") and mail.text.endswith(" end")
    else:
        assert mail.text == expected


def test_addresses_ids_and_references() -> None:
    raw = build([
        ("From", b'"' + encoded_word("山田 太郎", "ISO-2022-JP", "iso2022_jp")
         + b'" <Taro.Yamada@Example.CO.JP>'),
        ("Subject", "Re: x"),
        ("Message-ID", " <CAB123@mail.example.com> "),
        ("In-Reply-To", "<req-1@ringi.example.jp>"),
        ("References", "<root@ringi.example.jp>\r\n <req-1@ringi.example.jp> <other@x>"),
    ])
    mail = parse_mail(raw)
    assert mail.from_addr == "taro.yamada@example.co.jp"
    assert mail.from_name == "山田 太郎"
    assert mail.message_id == "<CAB123@mail.example.com>"
    assert mail.references == ("<req-1@ringi.example.jp>", "<root@ringi.example.jp>", "<other@x>")


@pytest.mark.parametrize(
    ("from_header", "addr", "name"),
    [
        ("sato@example.jp", "sato@example.jp", ""),
        ("Sato Hanako <SATO@EXAMPLE.JP>", "sato@example.jp", "Sato Hanako"),
        (b"\x8d\xb2\x93\xa1 <sato@example.jp>", "sato@example.jp", "佐藤"),  # raw cp932 name
        ("undisclosed-recipients:;", "", ""),
        ("<<<>>>", "", ""),
        ("just some words", "", ""),
    ],
)
def test_from_parsing(from_header: str | bytes, addr: str, name: str) -> None:
    mail = parse_mail(build([("From", from_header), ("Subject", "s")]))
    assert (mail.from_addr, mail.from_name) == (addr, name)


def test_message_id_without_brackets_and_missing() -> None:
    assert parse_mail(build([("Message-ID", "abc@host")])).message_id == "<abc@host>"
    assert parse_mail(build([("Subject", "x")])).message_id is None


HTML = ('<html><head><title>T</title><style>p {color: red}</style></head><body>'
        '<div>却下します&nbsp;&amp; 再検討<br>理由：&lt;予算&gt;超過</div>'
        '<script>alert("x")</script>'
        '<blockquote><div>承認 または 却下</div></blockquote><p>以上</p></body></html>')


def test_html_only_body_is_converted_to_text() -> None:
    body = base64.encodebytes(HTML.encode("cp932"))
    mail = parse_mail(simple(body, "shift_jis", "base64", ctype="text/html"))
    assert mail.text == "却下します & 再検討\n理由：<予算>超過\n\n> 承認 または 却下\n\n以上"


def multipart(parts: list[bytes], subtype: str = "mixed", boundary: str = "BOUNDARY") -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return build([("From", "a@example.jp"), ("Subject", "s"), ("MIME-Version", "1.0"),
                  ("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')],
                 body + b"--" + boundary.encode() + b"--\r\n")


def part(headers: list[tuple[str, str | bytes]], body: bytes) -> bytes:
    return build(headers, body)


PLAIN = part([("Content-Type", "text/plain; charset=utf-8")], "承認します".encode())
HTML_PART = part([("Content-Type", "text/html; charset=utf-8")], b"<p>HTML version</p>")


def test_plain_text_preferred_over_html() -> None:
    alternative = build([("Content-Type", 'multipart/alternative; boundary="alt"')],
                        b"--alt\r\n" + HTML_PART + b"\r\n--alt\r\n" + PLAIN + b"\r\n--alt--\r\n")
    mail = parse_mail(multipart([alternative]))
    assert mail.text == "承認します"
    assert mail.attachments == ()


def test_attachments() -> None:
    pdf = b"%PDF-1.4 fake"
    raw = multipart([
        PLAIN,
        # RFC 2231 with ISO-2022-JP (Thunderbird)
        part([("Content-Type", "application/vnd.ms-excel"),
              ("Content-Disposition",
               "attachment; filename*=iso-2022-jp''%1B%24B%3F%3D%40A%3Dq%1B%28B.xls"),
              ("Content-Transfer-Encoding", "base64")], base64.encodebytes(b"xls")),
        # RFC 2231 continuations in UTF-8
        part([("Content-Type", "application/octet-stream"),
              ("Content-Disposition",
               "attachment;\r\n filename*0*=UTF-8''%E8%A6%8B%E7%A9%8D;\r\n filename*1=.zip")],
             b"zip"),
        # RFC 2047 inside a quoted name (Outlook / old Thunderbird), inline PDF (Apple Mail)
        part([("Content-Type", b'application/pdf; name="'
               + encoded_word("請求書", "ISO-2022-JP", "iso2022_jp") + b'.pdf"'),
              ("Content-Disposition", "inline"),
              ("Content-Transfer-Encoding", "base64")], base64.encodebytes(pdf)),
        # raw Shift_JIS bytes in the filename (old Japanese mailers)
        part([("Content-Type", "text/csv"),
              ("Content-Disposition", b'attachment; filename="' + "明細.csv".encode("cp932")
               + b'"')], b"a,b\r\n"),
        # no filename at all
        part([("Content-Type", "application/octet-stream"),
              ("Content-Disposition", "attachment")], b"blob"),
        # a path as filename must not leak directories
        part([("Content-Type", "text/plain"),
              ("Content-Disposition", 'attachment; filename="../../etc/passwd"')], b"p"),
        # a pasted image: inline, but named (Apple Mail, Outlook), so a file like any other
        part([("Content-Type", "image/png"), ("Content-ID", "<pasted>"),
              ("Content-Disposition", 'inline; filename="receipt.png"')], b"png"),
        # an HTML body's cid: image without a name: decoration, not kept
        part([("Content-Type", "image/gif"), ("Content-ID", "<logo>"),
              ("Content-Disposition", "inline")], b"gif"),
        part([("Content-Type", "image/gif"), ("Content-ID", "<logo2>")], b"gif"),
    ])
    mail = parse_mail(raw)
    assert mail.text == "承認します"
    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("申請書.xls", "application/vnd.ms-excel", b"xls"),
        ("見積.zip", "application/octet-stream", b"zip"),
        ("請求書.pdf", "application/pdf", pdf),
        ("明細.csv", "text/csv", b"a,b\r\n"),
        ("attachment-5", "application/octet-stream", b"blob"),
        ("passwd", "text/plain", b"p"),
        ("receipt.png", "image/png", b"png"),
    ]


def test_form_like_part_without_filename_is_kept() -> None:
    raw = multipart([PLAIN, part([("Content-Type", "application/pdf")], b"%PDF")])
    attachments = parse_mail(raw).attachments
    assert [(a.filename, a.data) for a in attachments] == [("attachment-1", b"%PDF")]


def test_format_flowed_is_unwrapped() -> None:
    body = b"Reject because the \r\nbudget is over.\r\n\r\n> quoted \r\n> line\r\n"
    raw = build([("Content-Type", "text/plain; charset=utf-8; format=flowed")], body)
    assert parse_mail(raw).text == "Reject because the budget is over.\n\n> quoted line\n"


NORMAL = [("From", "Sato <sato@example.jp>"), ("To", "ringi@example.jp"), ("Subject", "Re: 稟議")]


@pytest.mark.parametrize(
    ("extra", "envelope", "subject", "reason"),
    [
        ([], "sato@example.jp", None, None),
        ([], None, None, None),
        ([("X-Auto-Response-Suppress", "All")], None, None, None),  # a request, not a reply
        ([("X-Auto-Response-Suppress", "OOF")], None, None, None),
        ([("Auto-Submitted", "no")], None, None, None),
        ([("X-Autoreply", "no")], None, None, None),
        ([("Precedence", "first-class")], None, None, None),
        ([("Auto-Submitted", "auto-replied")], None, None, "out of office"),
        ([("Auto-Submitted", "Auto-Generated; owner-email=x@y")], None, None, "auto-submitted"),
        ([], "", None, "bounce (null sender)"),
        ([], "<>", None, "bounce (null sender)"),
        ([("From", "MAILER-DAEMON@mx.example.jp")], None, None, "bounce (mailer-daemon)"),
        ([("From", "Mail Delivery System <Postmaster@example.jp>")], None, None,
         "bounce (mailer-daemon)"),
        ([("Content-Type", 'multipart/report; report-type=delivery-status; boundary="b"')],
         None, None, "delivery/read report"),
        ([("Content-Type", "multipart/report; report-type=disposition-notification")],
         None, None, "delivery/read report"),
        ([("Precedence", "bulk")], None, None, "bulk mail"),
        ([("Precedence", "Junk")], None, None, "bulk mail"),
        ([("Precedence", "list")], None, None, "bulk mail"),
        ([("List-Id", "<staff.example.jp>")], None, None, "mailing list"),
        ([("List-Unsubscribe", "<mailto:leave@example.jp>")], None, None, "mailing list"),
        ([("X-Autoreply", "yes")], None, None, "out of office"),
        ([("X-Autorespond", "whatever")], None, None, "out of office"),
        ([], None, "Out of Office: Sato", "out of office"),
        ([], None, "Automatic reply: 稟議", "out of office"),
        ([], None, "AUTO: away", "out of office"),
        ([], None, "自動応答: 不在です", "out of office"),
        ([], None, "不在のお知らせ", "out of office"),
        ([], None, "Réponse automatique : absent", "out of office"),
        # A vacation responder that marks only `Precedence: bulk` answers a mail; bulk mail
        # that answers nothing is a newsletter.
        ([("Precedence", "bulk"), ("In-Reply-To", "<a@b>")], None, None, "out of office"),
        ([("Precedence", "bulk"), ("References", "<x@y> <a@b>")], None, None, "out of office"),
        ([("X-Auto-Response-Suppress", "All"), ("In-Reply-To", "<a@b>")], None, None, None),
        ([("Auto-Submitted", "auto-generated"), ("In-Reply-To", "<a@b>")], None, None,
         "auto-submitted"),
        # first reason wins when several apply: a DSN marked auto-replied stays a bounce; a
        # vacation responder writes from the null sender as RFC 3834 asks
        ([("Auto-Submitted", "auto-replied"), ("Precedence", "bulk")], "", None,
         "out of office"),
        ([("Precedence", "bulk")], "<>", None, "bounce (null sender)"),
        ([("Auto-Submitted", "auto-replied"), ("Content-Type", "multipart/report")], "", None,
         "delivery/read report"),
        ([("Auto-Submitted", "auto-replied")], None, "Undelivered Mail", "out of office"),
        ([("Auto-Submitted", "auto-replied"), ("From", "MAILER-DAEMON@mx.example.jp")],
         None, None, "bounce (mailer-daemon)"),
        ([("Auto-Submitted", "auto-replied"), ("List-Id", "<l>")], None, None,
         "mailing list"),
        ([("Precedence", "bulk"), ("List-Id", "<l>")], "", None, "bounce (null sender)"),
    ],
)
def test_auto_reason(extra: list[tuple[str, str]], envelope: str | None, subject: str | None,
                     reason: str | None) -> None:
    names = {name.lower() for name, _ in extra}
    headers: list[tuple[str, str | bytes]] = [h for h in NORMAL if h[0].lower() not in names]
    headers += extra
    if subject is not None:
        headers = [h for h in headers if h[0] != "Subject"] + [("Subject", subject)]
    assert parse_mail(build(headers), envelope_from=envelope).auto_reason == reason


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81 without any headers",
        b"\r\n\r\n\r\n",
        b"From: \xff\xfe\r\nSubject: =?utf-8?B?####?= =?iso-2022-jp?B?GyRC?=\r\n\r\n\xff\x00",
        b"Subject: unterminated =?utf-8?Q?abc\r\nMessage-ID: <<>>\r\nReferences: <<a>\r\n\r\nx",
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\nno boundary declared\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; "
        b'charset="\xff"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n',
        b'Content-Type: text/plain; charset=utf-8; filename="unterminated\r\n\r\nbody',
        b"Content-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B\x7f\x7f\x1b(B\xa4\xa2",
        b"Content-Disposition: attachment; filename*0*=bogus'';"
        b" filename*5=%ZZ\r\n\r\nx",
        b"Content-Type: message/rfc822\r\n\r\nnot really a message",
        b"From:\r\nTo:\r\nSubject:\r\nIn-Reply-To:\r\n\r\n",
        b"Subject: \xed\xa0\x80 \x80\r\nFrom: \x80@\x81\r\n\r\n",
        b"X" * 5000 + b": y\r\n\r\n" + b"\x1b$B" * 500,
    ],
)
def test_malformed_mail_never_raises(raw: bytes) -> None:
    mail = parse_mail(raw)
    assert isinstance(mail, ParsedMail)
    assert isinstance(mail.text, str) and isinstance(mail.subject, str)
    assert "\n" not in mail.subject and "\r" not in mail.text
    assert mail.from_addr == ""
    assert all(not 0xDC80 <= ord(c) <= 0xDCFF for c in mail.subject + mail.text + mail.from_name)


@pytest.mark.timeout(10)
def test_hostile_html_nesting_does_not_explode() -> None:
    html = b"<div>x</div><blockquote>" * 20_000
    mail = parse_mail(simple(html, "utf-8", "8bit", ctype="text/html"))
    assert len(mail.text) < 30 * 20_000  # uncapped quoting would be ~400 million chars
    assert mail.text.splitlines()[-1] == "> " * 10 + "x"


def test_garbage_without_headers_keeps_text_and_is_not_auto() -> None:
    mail = parse_mail(b"\x00\xff garbage\r\n")
    assert mail.from_addr == "" and mail.subject == "" and mail.message_id is None
    assert mail.auto_reason is None
    assert "garbage" in mail.text


FUZZ_SEED_MAIL = (
    b'From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <a@b.jp>\r\nSubject: =?Shift_JIS?B?kLyTYw==?=\r\n'
    b'Message-ID: <x@y>\r\nReferences: <a@b> <c@d>\r\n'
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain; charset=iso-2022-jp; format=flowed; delsp=yes\r\n\r\n"
    b"\x1b$B>5G'\x1b(B \r\n> x\r\n"
    b"--b\r\nContent-Type: application/pdf; name*0*=utf-8''%E7%94; name*1*=%B3.pdf\r\n"
    b'Content-Disposition: attachment; filename="a\\"b"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<blockquote><pre>a\nb</pre></blockquote>\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--b--\r\n"
)


def test_mutated_mail_never_raises_or_leaks_surrogates() -> None:
    rng = random.Random(20261121)
    alphabet = list(b"\r\n:;=?\"<>@-_\x1b$B(J*'%\\ \t") + list(range(256))
    for _ in range(400):
        raw = bytearray(FUZZ_SEED_MAIL)
        for _ in range(rng.randint(1, 12)):
            pos = rng.randint(0, len(raw))
            if rng.random() < 0.5:
                raw[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                del raw[pos:pos + rng.randint(1, 8)]
        mail = parse_mail(bytes(raw), envelope_from=rng.choice([None, "", "x@y"]))
        fields = [mail.subject, mail.text, mail.from_name, mail.from_addr]
        fields += [a.filename for a in mail.attachments]
        for field in fields:
            field.encode("utf-8")  # raises on lone surrogates from undecoded 8-bit bytes
