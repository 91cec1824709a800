"""One sender or none: From/Sender forms real clients send are read; every ambiguity refused."""

from __future__ import annotations

import base64

import pytest

from daemon.parsing.message import parse_mail
from daemon.parsing.sender import Sender, read_sender


def ew(text: str, charset: str = "UTF-8", codec: str = "utf-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(codec)).decode()}?="


@pytest.mark.parametrize(
    ("value", "addr", "name"),
    [
        ("taro@corp.example", "taro@corp.example", ""),
        ("<taro@corp.example>", "taro@corp.example", ""),
        ("Taro Yamada <Taro.Yamada@Corp.Example>", "taro.yamada@corp.example", "Taro Yamada"),
        # Outlook: "Last, First", its habit of repeating the address as the name, and quotes.
        ('"Yamada, Taro" <taro@corp.example>', "taro@corp.example", "Yamada, Taro"),
        ('"taro@corp.example" <taro@corp.example>', "taro@corp.example", "taro@corp.example"),
        ("'taro@corp.example' <taro@corp.example>", "taro@corp.example", "'taro@corp.example'"),
        ('"Yamada Taro (山田 太郎)" <taro@corp.example>', "taro@corp.example",
         "Yamada Taro (山田 太郎)"),
        # Gmail / Apple Mail / Thunderbird: encoded words, Q and B, split over two words.
        (f"{ew('山田 太郎')} <taro@corp.example>", "taro@corp.example", "山田 太郎"),
        (f"{ew('山田', 'ISO-2022-JP', 'iso2022_jp')} {ew('太郎', 'ISO-2022-JP', 'iso2022_jp')}"
         " <taro@corp.example>", "taro@corp.example", "山田太郎"),
        (f'"{ew("山田 太郎")}" <taro@corp.example>', "taro@corp.example", "山田 太郎"),
        ("=?utf-8?q?Fran=C3=A7ois_Dupont?= <f@corp.example>", "f@corp.example",
         "François Dupont"),
        ("John Q. Public <john@corp.example>", "john@corp.example", "John Q. Public"),
        ("Taro Yamada [Sales] <taro@corp.example>", "taro@corp.example", "Taro Yamada [Sales]"),
        ("山田\u3000太郎 <taro@corp.example>", "taro@corp.example", "山田\u3000太郎"),
        # Comments (RFC 5322 CFWS) and folding.
        ("taro@corp.example (Taro Yamada)", "taro@corp.example", "Taro Yamada"),
        ("Taro (Sales) <taro@corp.example>", "taro@corp.example", "Taro (Sales)"),
        ("Taro Yamada\r\n\t<taro@corp.example>", "taro@corp.example", "Taro Yamada"),
        ('"taro"@corp.example', "taro@corp.example", ""),
        ("田中 <田中@例え.jp>", "田中@例え.jp", "田中"),
    ],
)
def test_real_client_forms_are_read(value: str, addr: str, name: str) -> None:
    assert read_sender([value], []) == Sender(addr, name, None)
    assert read_sender([value], [value]).addr == addr  # a Sender equal to From is fine


FORGED = [
    # more than one address
    ("a@corp.example, b@corp.example", "2 addresses"),
    ("Boss <boss@corp.example>, Eve <eve@evil.example>", "2 addresses"),
    ("boss@corp.example; eve@evil.example", "';'"),
    # groups
    ("undisclosed:;", "group"),
    ("undisclosed-recipients:;", "group"),
    ("grp: boss@corp.example, eve@evil.example;", "group"),
    ("grp: boss@corp.example;", "group"),
    # an address hidden in the display name or a comment
    ("boss@corp.example <eve@evil.example>", "shows an address"),
    ('"boss@corp.example" <eve@evil.example>', "shows an address"),
    ("'boss@corp.example' <eve@evil.example>", "shows an address"),
    (f"{ew('boss@corp.example')} <eve@evil.example>", "shows an address"),
    ("=?utf-8?q?boss=40corp.example?= <eve@evil.example>", "shows an address"),
    ('"boss\uff20corp.example" <eve@evil.example>', "shows an address"),  # fullwidth @
    ('"boss\ufe6bcorp.example" <eve@evil.example>', "shows an address"),  # small @
    (f"{ew('boss＠corp.example')} <eve@evil.example>", "shows an address"),
    ('"boss@\u200bcorp.example" <eve@evil.example>', "shows an address"),
    ('"boss @ corp.example" <eve@evil.example>', "shows an address"),
    ("eve@evil.example (boss@corp.example)", "shows an address"),
    ("Boss (boss@corp.example) <eve@evil.example>", "shows an address"),
    ("<eve(boss@corp.example)@evil.example>", "shows an address"),
    ('"taro@corp.example, boss@corp.example" <taro@corp.example>', "shows an address"),
    ('"xtaro@corp.example" <taro@corp.example>', "shows an address"),  # not the same address
    ('"taro@corp.example.evil.example" <taro@corp.example>', "shows an address"),
    # unparsable
    ("just some words", "exactly one @"),
    ("", "no address"),
    ("<<eve@evil.example>>", "angle brackets"),
    ("Boss <boss@corp.example", "angle brackets"),
    ("<eve@evil.example> boss@corp.example", "after the address"),
    ("<@corp.example:eve@evil.example>", "source routes"),
    ("boss@corp.example@evil.example", "exactly one @"),
    ("boss＠corp.example", "exactly one @"),
    ('"boss eve"@corp.example', "local part"),
    ("boss@[192.0.2.1]", "domain"),
    ("boss@localhost", "no dot"),
    ("boss.@corp.example", "local part"),
    ("boss@corp.example\x00", "U+0000"),
    ('"unterminated <boss@corp.example>', "unterminated"),
    ("(unterminated boss@corp.example", "unterminated"),
    ("x" * 3000 + "@corp.example", "too long"),
    ("(" * 50 + "x" + ")" * 50 + " boss@corp.example", "nested"),
]


@pytest.mark.parametrize(("value", "reason"), FORGED)
def test_forged_or_ambiguous_from_names_nobody(value: str, reason: str) -> None:
    sender = read_sender([value], [])
    assert (sender.addr, sender.name) == ("", "")
    assert sender.problem is not None and reason in sender.problem


@pytest.mark.parametrize(
    ("froms", "senders", "reason"),
    [
        ([], [], "no From header"),
        (["boss@corp.example", "eve@evil.example"], [], "2 From headers"),
        (["boss@corp.example", "boss@corp.example"], [], "2 From headers"),
        (["boss@corp.example"], ["eve@evil.example"], "Sender eve@evil.example differs"),
        (["Boss <boss@corp.example>"], ["Secretary <sec@corp.example>"], "differs"),
        (["boss@corp.example"], ["a@x.example, b@x.example"], "Sender names nobody"),
        (["boss@corp.example"], ["boss@corp.example", "boss@corp.example"], "2 Sender"),
    ],
)
def test_header_counts_and_sender(froms: list[str], senders: list[str], reason: str) -> None:
    sender = read_sender(froms, senders)
    assert sender.addr == "" and sender.problem is not None and reason in sender.problem


def test_matching_sender_is_fine() -> None:
    assert read_sender(["Boss <boss@corp.example>"], ["BOSS@corp.example (Boss)"]).addr == \
        "boss@corp.example"


def raw_mail(*headers: bytes) -> bytes:
    return b"\r\n".join([*headers, b"Subject: APPROVE", b"", b"APPROVE", b""])


@pytest.mark.parametrize(
    ("raw", "addr", "problem"),
    [
        (raw_mail(b"From: Sato <sato@corp.example>"), "sato@corp.example", None),
        (raw_mail(b"From: \x8d\xb2\x93\xa1 <sato@corp.example>"), "sato@corp.example", None),
        (raw_mail(b"From: \x1b$B:4F#\x1b(B <sato@corp.example>"), "sato@corp.example", None),
        (raw_mail(b"From: sato@corp.example", b"From: eve@evil.example"), "", "2 From"),
        (raw_mail(b"From: sato@corp.example", b"Sender: eve@evil.example"), "", "Sender"),
        (raw_mail(b"From: sato@corp.example <eve@evil.example>"), "", "shows an address"),
        (raw_mail(b"From: \x80@\x81"), "", "From names nobody"),
        (raw_mail(b"To: ringi@corp.example"), "", "no From header"),
        # "From :" is a From header to an MTA or a mail client, but not to Python's parser.
        (raw_mail(b"From : eve@evil.example", b"From: sato@corp.example"), "", "not read the same"),
        (raw_mail(b"From: sato@corp.example", b"SENDER\t: eve@evil.example"), "",
         "not read the same"),
        (b"From sato@corp.example Mon Nov  2 09:00:00 2026\nFrom: Sato <sato@corp.example>\n\nx\n"
         b"From: a body line\n", "sato@corp.example", None),
    ],
)
def test_parse_mail_carries_the_problem(raw: bytes, addr: str, problem: str | None) -> None:
    mail = parse_mail(raw)
    assert mail.from_addr == addr
    if problem is None:
        assert mail.sender_problem is None and mail.from_name
    else:
        assert mail.sender_problem is not None and problem in mail.sender_problem
        assert mail.from_name == ""


def test_a_refused_robot_is_still_recognised_as_a_robot() -> None:
    mail = parse_mail(raw_mail(b"From: MAILER-DAEMON (Mail Delivery System)"))
    assert mail.sender_problem is not None and mail.auto_reason == "bounce (mailer-daemon)"
