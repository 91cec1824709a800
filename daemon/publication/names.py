"""Names of the documents inside a delivery's archive: what the partner's disk will hold.

A partner extracts the archive with 7-Zip on Linux, macOS or Windows, maybe with a file
manager's "extract here" into the delivery's own folder. So two names must never end up as
one file there, and no name may replace one of the delivery's own files: names are plain
(no folders, no leading dots), in NFC, without the characters Windows cannot store
(7-Zip would turn them into "_"), trailing dots or spaces, or Windows device names, at
most NAME_BYTES of UTF-8, and unique when compared without case.
"""

from __future__ import annotations

import re
import unicodedata

NAME_BYTES = 200  # leaves room for ".sig" and a "-NN" under the usual 255-byte limit
STAMPS = "stamps"  # the folder of the signatures inside the archive
# The delivery's own files, and what the partner's steps create next to them.
DELIVERY_FILES = frozenset({
    STAMPS, "manifest.json", "manifest.json.sig", "password.bin", "password.txt",
    "readme.txt", "company-stamp.pub.pem",
})
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                      *(f"lpt{i}" for i in range(10))})


def _cut(name: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, keeping the extension."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext, dot = name, "", ""
    room = limit - len((dot + ext).encode())
    return stem.encode()[:room].decode(errors="ignore") + dot + ext


def plain_name(raw: str) -> str:
    """One file name as the partner's disk will keep it."""
    base = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    base = _FORBIDDEN.sub("_", base).strip().rstrip(". ").lstrip(".").strip()
    if not base:
        base = "document"
    if base.split(".", 1)[0].strip().casefold() in _DEVICES:
        base = "_" + base
    return _cut(base, NAME_BYTES)


def archive_names(filenames: list[str], volume_prefix: str = "") -> list[str]:
    """Unique plain names for the documents, in order; a clash gets "-2", "-3"...

    `volume_prefix` (the delivery's name) keeps a document from looking like a volume.
    """
    seen: set[str] = set(DELIVERY_FILES)
    prefix = f"{volume_prefix}.7z.".casefold() if volume_prefix else None
    out = []
    for raw in filenames:
        base = plain_name(raw)
        name, n = base, 1
        while name.casefold() in seen or (prefix and name.casefold().startswith(prefix)):
            n += 1
            stem, dot, ext = base.rpartition(".")
            suffix = f"-{n}.{ext}" if dot and stem else f"-{n}"
            name = _cut(stem if dot and stem else base, NAME_BYTES - len(suffix.encode()))
            name += suffix
        seen.add(name.casefold())
        out.append(name)
    return out
