"""Numbers and TOML read from what people type, with a bound on their size.

Python refuses to turn more than 4,300 digits into an int (a ValueError nobody catches)
and builds anything shorter however big, which then overflows a BIGINT column, a CEL int
or a NUMERIC(20, 2) somewhere far from the mail that brought it. So every converter of
user text checks the length first and refuses a longer number as a bad value, with a
message, like any other.
"""

from __future__ import annotations

import tomllib
from typing import Any

# Both a BIGINT (up to 9.2e18) and the NUMERIC(20, 2) money columns hold 18 digits; no
# amount or count anybody requests comes near that.
MAX_DIGITS = 18


def bounded_int(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of `text` if it is plain ASCII digits, at most `max_digits` of them
    (ignoring leading zeros is not worth the surprise: "0001" is 4 digits)."""
    text = text.strip()
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def loads_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads`, but every refusal is a `TOMLDecodeError`: tomllib itself raises a
    plain ValueError for an integer of more than 4,300 digits and RecursionError for
    deeply nested arrays, which callers that catch TOMLDecodeError would let through."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except RecursionError:
        raise tomllib.TOMLDecodeError("arrays or tables nested too deeply") from None
    except ValueError as exc:
        why = str(exc)
        if "integer string conversion" in why:
            why = "a number has more than 4,300 digits"
        raise tomllib.TOMLDecodeError(why) from None
