"""Lenient charset and RFC 2047 decoding, so mislabelled Japanese mail never crashes or garbles."""

from __future__ import annotations

import base64
import binascii
import re

# --------------------------------------------------------------------------- charsets

_CP932 = {"shift_jis", "shift-jis", "shiftjis", "sjis", "x-sjis", "s-jis", "ms_kanji", "ms-kanji",
          "csshiftjis", "windows-31j", "cswindows31j", "cp932", "ms932", "x-ms-cp932"}
_EUC = {"euc-jp", "euc_jp", "eucjp", "x-euc-jp", "x-euc", "ujis", "cseucpkdfmtjapanese",
        "eucjp-ms", "euc-jp-ms", "cp51932"}
_JIS = "jis"  # pseudo codec: the whole ISO-2022-JP family, tried via _JIS_CODECS


def _canonical_charset(name: str | None) -> str | None:
    """Map a declared charset to a codec we trust; None means "unknown, sniff it"."""
    if not name:
        return None
    cs = name.strip().strip("\"'").lower()
    if cs in _CP932:
        return "cp932"
    if cs in _EUC:
        return "euc_jp"
    if cs.replace("_", "-").startswith(("iso-2022-jp", "csiso2022jp", "cp5022")) or cs == "jis":
        return _JIS
    if cs in {"us-ascii", "ascii", "ansi_x3.4-1968", "unknown-8bit", "x-unknown", "8bit"}:
        return None  # "ascii" labels routinely hide 8-bit or JIS text
    try:
        "a".encode(cs)  # rejects unknown names and bytes-to-bytes codecs such as "zip"
    except (LookupError, UnicodeError, ValueError):
        return None
    return cs


_JIS_ESCAPES = {b"\x1b$B": "kanji", b"\x1b$@": "kanji", b"\x1b$(B": "kanji", b"\x1b$(Q": "kanji",
                b"\x1b$(O": "kanji", b"\x1b(B": "ascii", b"\x1b(J": "ascii", b"\x1b(H": "ascii",
                b"\x1b(I": "kana", b"\x1b$(D": "other", b"\x1b$A": "other"}


def _jis_to_cp932(data: bytes) -> bytes:
    """Re-encode ISO-2022-JP as Shift_JIS so cp932 can decode NEC/IBM (CP50220) extensions.

    Last resort only: JIS X 0212 and other sets with no cp932 equivalent become 〓.
    """
    out = bytearray()
    mode, shifted, i = "ascii", False, 0
    while i < len(data):
        b = data[i]
        esc = next((e for e in _JIS_ESCAPES if data.startswith(e, i)), b"") if b == 0x1B else b""
        pair = data[i:i + 2]
        if esc:
            mode = _JIS_ESCAPES[esc]
        elif b in (0x0E, 0x0F):  # SO/SI half-width kana (CP50221/CP50222)
            shifted = b == 0x0E
        elif mode in ("kanji", "other") and len(pair) == 2 and all(0x21 <= c <= 0x7E for c in pair):
            j1, j2 = pair
            s1 = ((j1 + 1) >> 1) + 0x70
            s1 += 0x40 if s1 >= 0xA0 else 0
            s2 = j2 + 0x1F + (1 if j2 + 0x1F >= 0x7F else 0) if j1 % 2 else j2 + 0x7E
            out += bytes((s1, s2)) if mode == "kanji" else b"\x81\xac"  # GETA MARK stand-in
            i += 1
        else:
            out.append(b + 0x80 if (mode == "kana" or shifted) and 0x21 <= b <= 0x5F else b)
        i += len(esc) or 1
    return bytes(out)


# Each covers designations the others reject: JIS X 0212 with half-width kana (ext),
# KS C 5601 and friends (-2), JIS X 0213 (-2004). CP50220's NEC rows are handled by _sniff.
_JIS_CODECS = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004")


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError):
        return None


def _first(data: bytes, codecs: tuple[str, ...]) -> str | None:
    return next((text for c in codecs if (text := _try(data, c)) is not None), None)


def _oddity(text: str) -> int:
    """Count characters typical of a wrong Japanese guess (half-width kana, PUA, C1 controls)."""
    return sum(1 for c in text if "\uff61" <= c <= "\uff9f" or "\ue000" <= c <= "\uf8ff"
               or "\x80" <= c <= "\x9f")


def _sniff(data: bytes) -> str | None:
    """Guess undeclared text: JIS escapes, UTF-8, then the likelier of cp932 and EUC-JP.

    Nearly any EUC-JP byte string is also valid cp932, so "first that decodes" would never
    pick EUC-JP; the oddity score (ties go to cp932) makes the choice meaningful.
    """
    if data.isascii() and (b"\x1b$" in data or b"\x1b(I" in data):
        text = _first(data, _JIS_CODECS)
        return text or _jis_to_cp932(data).decode("cp932", errors="replace")
    text = _try(data, "utf-8")
    guesses = [t for c in ("cp932", "euc_jp") if (t := _try(data, c)) is not None]
    return text if text is not None else min(guesses, key=_oddity, default=None)


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode text bytes: trust the declared charset if it works, else sniff, never raise."""
    codec = _canonical_charset(charset)
    text = _first(data, _JIS_CODECS if codec == _JIS else (codec,) if codec else ())
    text = text if text is not None else _sniff(data)
    if text is not None:
        return text
    return data.decode("utf-8" if codec in (None, _JIS) else codec, errors="replace")


# --------------------------------------------------------------------------- headers

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _to_bytes(value: str) -> bytes:
    """Undo the parser's surrogateescape; stray lone surrogates become '?'."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _raw_text(value: str) -> str:
    """Recover undeclared 8-bit / JIS bytes the parser smuggled in as surrogates."""
    if "\x1b" not in value and not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    return decode_bytes(_to_bytes(value))


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    data = _to_bytes(payload)
    try:
        if encoding in "bB":
            return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return None


def decode_header_value(raw: str) -> str:
    """Decode RFC 2047 words (joining adjacent ones so split multibyte chars survive)."""
    value = re.sub(r"\r?\n(?=[ \t])", "", raw).replace("\r", "").replace("\n", "")
    parts: list[str] = []
    run: bytearray | None = None
    run_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal run
        if run is not None:
            parts.append(decode_bytes(bytes(run), run_charset))
            run = None

    for match in _ENCODED_WORD.finditer(value):
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            continue  # a malformed word stays behind as literal text
        gap = value[pos:match.start()]
        charset = match.group(1).split("*", 1)[0].lower()
        if run is None or gap.strip(" \t"):  # whitespace between two words is dropped
            flush()
            parts.append(_raw_text(gap))
            run, run_charset = bytearray(), charset
        elif charset != run_charset:
            flush()
            run, run_charset = bytearray(), charset
        run += data
        pos = match.end()
    flush()
    parts.append(_raw_text(value[pos:]))
    return "".join(parts)
