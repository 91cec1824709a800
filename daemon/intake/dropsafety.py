"""What may be taken from a shared folder: refuse anything that could lead outside it.

Everything is examined with lstat and opened with O_NOFOLLOW, and a file is read only if
the descriptor still refers to the inode that was examined, so a file swapped for a
symbolic link between the look and the read is refused too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from daemon.parsing.charsets import decode_bytes

IGNORED_SUFFIXES = (".tmp", ".part")
BOOKKEEPING = ("processed", "rejected")
MAX_BUNDLE_FILES = 100


class Refused(Exception):
    """The input must go to rejected/; the message says why in plain words."""


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path
    is_bundle: bool
    size: int
    signature: tuple[object, ...]  # changes whenever anything in the input changes


def display_name(name: str) -> str:
    """A file name as a person would read it, even if it was written in Shift_JIS."""
    if any("\udc80" <= ch <= "\udcff" for ch in name):
        return decode_bytes(os.fsencode(name))
    return name


def ignored(name: str) -> bool:
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES) or name in BOOKKEEPING \
        or name.endswith(".error.txt")


def unsafe_name(name: str) -> bool:
    """Separators or control characters: refused even when the name looks hidden.

    Judged on the decoded name: in a Shift_JIS name the byte 0x5C can be the second half
    of a character (申 is 0x90 0x5C), not a backslash.
    """
    shown = display_name(name)
    return "\\" in shown or "/" in shown or any(ord(c) < 32 for c in shown)


def check_name(name: str) -> None:
    if unsafe_name(name) or name in ("..", "."):
        raise Refused(f"the name {display_name(name)!r} contains a path separator or "
                      "control character; rename it to a plain file name")


def examine(path: Path, max_bytes: int) -> Entry:
    """Classify one top-level input or raise Refused."""
    name = path.name
    check_name(name)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Refused("symbolic links are not accepted; copy the file itself into the folder")
    if stat.S_ISDIR(st.st_mode):
        return _examine_bundle(path, st, max_bytes)
    if not stat.S_ISREG(st.st_mode):
        raise Refused("only regular files and folders are accepted (this is a device, FIFO "
                      "or socket)")
    _check_file(st, name, max_bytes)
    return Entry(name, path, False, st.st_size, (st.st_ino, st.st_size, st.st_mtime_ns))


def _check_file(st: os.stat_result, name: str, max_bytes: int) -> None:
    if st.st_nlink > 1:
        raise Refused(f"{display_name(name)} is a hard link ({st.st_nlink} names point to the "
                      "same file, possibly outside this folder); copy the file instead")
    if st.st_size > max_bytes:
        raise Refused(f"{display_name(name)} is {st.st_size:,} bytes; the limit is "
                      f"{max_bytes:,} bytes")


def _examine_bundle(path: Path, st: os.stat_result, max_bytes: int) -> Entry:
    parts: list[tuple[object, ...]] = [(st.st_ino, st.st_mtime_ns)]
    total = 0
    with os.scandir(path) as it:
        children = sorted(it, key=lambda e: e.name)
    if len(children) > MAX_BUNDLE_FILES:
        raise Refused(f"the folder holds {len(children)} entries; at most {MAX_BUNDLE_FILES}")
    for child in children:
        if ignored(child.name):
            parts.append((child.name, "ignored"))  # still being written: not stable yet
            continue
        check_name(child.name)
        cst = child.stat(follow_symlinks=False)
        shown = display_name(child.name)
        if stat.S_ISLNK(cst.st_mode):
            raise Refused(f"{shown} in the folder is a symbolic link; copy the file instead")
        if stat.S_ISDIR(cst.st_mode):
            raise Refused(f"{shown} is a sub-folder; a request folder holds files only")
        if not stat.S_ISREG(cst.st_mode):
            raise Refused(f"{shown} is a device, FIFO or socket; only files are accepted")
        _check_file(cst, child.name, max_bytes)
        total += cst.st_size
        parts.append((child.name, cst.st_ino, cst.st_size, cst.st_mtime_ns))
    if total > max_bytes:
        raise Refused(f"the folder's files add up to {total:,} bytes; the limit is "
                      f"{max_bytes:,} bytes")
    return Entry(path.name, path, True, total, tuple(parts))


def read_exact(path: Path, max_bytes: int) -> bytes:
    """Read a regular file without following links, refusing it if it changed under us."""
    before = os.lstat(path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if (st.st_ino, st.st_dev) != (before.st_ino, before.st_dev) or \
                not stat.S_ISREG(st.st_mode):
            raise Refused(f"{display_name(path.name)} was replaced while being read")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise Refused(f"{display_name(path.name)} is larger than {max_bytes:,} bytes")
    return data


def unique_target(folder: Path, name: str, stamp: str) -> Path:
    """processed/ and rejected/ keep every input: prefix a time stamp, never overwrite."""
    target = folder / f"{stamp}-{name}"
    n = 1
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{stamp}-{n}-{name}"
    return target


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def ensure_dir(path: Path) -> None:
    """Create processed/ or rejected/; refuse to use one that is a symbolic link."""
    if path.is_symlink():
        raise OSError(f"{path} is a symbolic link; remove it so ringi can create the folder")
    path.mkdir(mode=0o750, exist_ok=True)
