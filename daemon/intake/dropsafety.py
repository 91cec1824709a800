"""What may be taken from a shared folder: refuse anything that could lead outside it.

Everything is reached through directory descriptors: the drop folder is opened once per
scan with O_NOFOLLOW, and every name in it (inputs, bundle files, processed/, rejected/)
is examined, opened, written or renamed relative to a descriptor, never through a path
that a person could redirect with a symbolic link between the look and the use. A file is
read only if the descriptor still refers to the inode that was examined.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from daemon.parsing.charsets import decode_bytes

# Names a writer uses while a file is not finished (renamed when done), editor backups,
# Office and LibreOffice lock files (`~$x.docx`, `.~lock.x#`) and other hidden files.
IN_PROGRESS_SUFFIXES = (".tmp", ".part", "~")
IN_PROGRESS_PREFIXES = (".", "~$")
BOOKKEEPING = ("processed", "rejected")
MAX_BUNDLE_FILES = 100
NAME_MAX = 255
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """The input must go to rejected/; the message says why in plain words."""


class Unsettled(Exception):
    """The input changed between the look and the take: wait for it to be stable again."""


class Unusable(Exception):
    """The drop folder, processed/ or rejected/ cannot be used; says why and what to do."""


@dataclass(frozen=True)
class Entry:
    name: str
    path: Path  # for messages and the suffix only: reads go through `dir_fd`
    dir_fd: int  # the drop folder, open for the duration of one scan
    is_bundle: bool
    size: int
    owner: int
    signature: tuple[object, ...]  # changes whenever anything in the input changes
    incomplete: str = ""  # why a bundle looks unfinished (a file being written, empty)


def display_name(name: str) -> str:
    """A file name as a person would read it, even if it was written in Shift_JIS."""
    if any("\udc80" <= ch <= "\udcff" for ch in name):
        return decode_bytes(os.fsencode(name))
    return name


def in_progress(name: str) -> bool:
    return name.startswith(IN_PROGRESS_PREFIXES) or name.endswith(IN_PROGRESS_SUFFIXES)


def ignored(name: str) -> bool:
    return in_progress(name) or name in BOOKKEEPING or name.endswith(".error.txt")


def _control(ch: str) -> bool:
    return ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F


def unsafe_name(name: str) -> bool:
    """Separators or control characters: refused even when the name looks hidden.

    Judged on the decoded name: in a Shift_JIS name the byte 0x5C can be the second half
    of a character (申 is 0x90 0x5C), not a backslash.
    """
    shown = display_name(name)
    return "\\" in shown or "/" in shown or any(_control(c) for c in shown)


def check_name(name: str) -> None:
    if unsafe_name(name) or name in ("..", "."):
        raise Refused(f"the name {display_name(name)!r} contains a path separator or "
                      "control character; rename it to a plain file name")
    shown = display_name(name)
    # U+FFFD, or U+F8F0-F8F3 (what cp932 makes of bytes 0xA0, 0xFD-0xFF): undecodable.
    if ("\ufffd" in shown and "\ufffd" not in name) or \
            any("\uf8f0" <= c <= "\uf8f3" for c in shown if c not in name):
        raise Refused(f"the name {shown!r} is not valid UTF-8, Shift_JIS or ISO-2022-JP; "
                      "rename it")


def open_dir(name: str, dir_fd: int | None = None) -> int:
    """A directory descriptor for `name`, never through a symbolic link."""
    return os.open(name, _DIR, dir_fd=dir_fd)


def examine(dir_fd: int, name: str, max_bytes: int, base: Path) -> Entry:
    """Classify one top-level input of the folder open as `dir_fd`, or raise Refused."""
    check_name(name)
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise Refused("symbolic links are not accepted; copy the file itself into the folder")
    if stat.S_ISDIR(st.st_mode):
        return _examine_bundle(dir_fd, name, st, max_bytes, base)
    if not stat.S_ISREG(st.st_mode):
        raise Refused("only regular files and folders are accepted (this is a device, FIFO "
                      "or socket)")
    _check_file(st, name, max_bytes)
    return Entry(name, base / name, dir_fd, False, st.st_size, st.st_uid,
                 (st.st_ino, st.st_size, st.st_mtime_ns))


def _check_file(st: os.stat_result, name: str, max_bytes: int) -> None:
    if st.st_nlink > 1:
        raise Refused(f"{display_name(name)} is a hard link ({st.st_nlink} names point to the "
                      "same file, possibly outside this folder); copy the file instead")
    if st.st_size > max_bytes:
        raise Refused(f"{display_name(name)} is {st.st_size:,} bytes; the limit is "
                      f"{max_bytes:,} bytes")


def _examine_bundle(dir_fd: int, name: str, st: os.stat_result, max_bytes: int,
                    base: Path) -> Entry:
    """A bundle is refused whole if any name in it would be refused on its own."""
    fd = _open_same_dir(dir_fd, name, st)
    try:
        parts, total, incomplete = bundle_contents(fd, max_bytes)
    finally:
        os.close(fd)
    return Entry(name, base / name, dir_fd, True, total, st.st_uid,
                 ((st.st_ino, st.st_mtime_ns), *parts), incomplete)


def _open_same_dir(dir_fd: int, name: str, st: os.stat_result) -> int:
    try:
        fd = open_dir(name, dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Unsettled(name) from None  # replaced since the look: look again
        raise
    now = os.fstat(fd)
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        os.close(fd)
        raise Unsettled(name)
    return fd


def bundle_contents(fd: int, max_bytes: int) -> tuple[list[tuple[object, ...]], int, str]:
    """Each file of the bundle open as `fd` (name, inode, size, mtime), the total size and
    why it looks unfinished ("" if it does not): a file still being written, or nothing
    in it yet (a folder made first and filled after)."""
    with os.scandir(fd) as it:
        children = sorted(it, key=lambda e: e.name)
    if len(children) > MAX_BUNDLE_FILES:
        raise Refused(f"the folder holds {len(children)} entries; at most {MAX_BUNDLE_FILES}")
    parts: list[tuple[object, ...]] = []
    total, incomplete = 0, ""
    for child in children:
        cst = child.stat(follow_symlinks=False)
        shown = display_name(child.name)
        if stat.S_ISLNK(cst.st_mode):
            raise Refused(f"{shown} in the folder is a symbolic link; copy the file instead")
        if stat.S_ISDIR(cst.st_mode):
            raise Refused(f"{shown} is a sub-folder; a request folder holds files only")
        if not stat.S_ISREG(cst.st_mode):
            raise Refused(f"{shown} is a device, FIFO or socket; only files are accepted")
        if in_progress(child.name):
            incomplete = incomplete or (f"the folder still holds {shown!r}, which looks like "
                                        "a file being written or a lock or hidden file")
        else:
            check_name(child.name)
            _check_file(cst, child.name, max_bytes)
        total += cst.st_size
        parts.append((child.name, cst.st_ino, cst.st_size, cst.st_mtime_ns))
    if total > max_bytes:
        raise Refused(f"the folder's files add up to {total:,} bytes; the limit is "
                      f"{max_bytes:,} bytes")
    return parts, total, incomplete or ("" if parts else "the folder is empty")


def open_bundle(entry: Entry, max_bytes: int) -> tuple[int, list[str]]:
    """The bundle's descriptor and file names, if it is still exactly what was examined;
    the caller closes the descriptor."""
    st = os.stat(entry.name, dir_fd=entry.dir_fd, follow_symlinks=False)
    fd = _open_same_dir(entry.dir_fd, entry.name, st)
    try:
        parts, _total, incomplete = bundle_contents(fd, max_bytes)
        if incomplete or ((st.st_ino, st.st_mtime_ns), *parts) != entry.signature:
            raise Unsettled(entry.name)
    except BaseException:
        os.close(fd)
        raise
    return fd, [str(p[0]) for p in parts]


def read_exact(dir_fd: int, name: str, max_bytes: int,
               signature: tuple[object, ...] | None = None) -> bytes:
    """Read a regular file without following links, refusing it if it changed under us."""
    before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_ino, st.st_dev) != (before.st_ino, before.st_dev) or \
                not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise Refused(f"{display_name(name)} was replaced while being read")
        if signature is not None and (st.st_ino, st.st_size, st.st_mtime_ns) != signature:
            raise Unsettled(name)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise Refused(f"{display_name(name)} is larger than {max_bytes:,} bytes")
    return data


def fit_name(name: str, room: int) -> str:
    """`name` shortened (keeping its extension) to at most `room` bytes on disk."""
    if len(os.fsencode(name)) <= room:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(os.fsencode(ext)) > 16:
        stem, dot, ext = name, "", ""
    while stem and len(os.fsencode(f"{stem}…{dot}{ext}")) > room:
        stem = stem[:-1]
    return f"{stem}…{dot}{ext}"


def unique_target(dir_fd: int, name: str, stamp: str) -> str:
    """processed/ and rejected/ keep every input: prefix a time stamp, never overwrite.

    The result leaves room for `.result.txt` (or `.error.txt`) and the temporary name of
    `write_atomic`.
    """
    room = NAME_MAX - len(".result.txt") - len("..tmp") - len(stamp) - len("-999-")
    base = fit_name(name, room)
    target, n = f"{stamp}-{base}", 1
    while _exists(dir_fd, target):
        n += 1
        target = f"{stamp}-{n}-{base}"
    return target


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def write_atomic(dir_fd: int, name: str, text: str) -> None:
    """Write NAME through a temporary name; text that cannot be UTF-8 (a lone surrogate
    from an undecodable name) is replaced rather than failing the write every rescan."""
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o640, dir_fd=dir_fd)
    with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def open_bookkeeping(dir_fd: int, name: str) -> int:
    """processed/ or rejected/ of the folder open as `dir_fd`, created if missing; raises
    Unusable if it is a link, not a folder, on another file system or not writable."""
    try:
        os.mkdir(name, 0o750, dir_fd=dir_fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unusable(f"{name}/ cannot be created ({exc.strerror})") from None
    try:
        fd = open_dir(name, dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, dir_fd):
            raise Unusable(f"{name}/ is a symbolic link; remove the link so ringi can create "
                           "the folder") from None
        if exc.errno == errno.ENOTDIR:
            raise Unusable(f"{name} is not a folder; move it away so ringi can create "
                           "the folder") from None
        raise Unusable(f"{name}/ cannot be opened ({exc.strerror})") from None
    st, parent = os.fstat(fd), os.fstat(dir_fd)
    why = ""
    if st.st_dev != parent.st_dev:
        why = f"{name}/ is on another file system; inputs are moved there by renaming"
    elif not os.access(name, os.W_OK | os.X_OK, dir_fd=dir_fd, effective_ids=True,
                       follow_symlinks=False):
        why = f"{name}/ is not writable by ringi; fix its owner or mode"
    if why:
        os.close(fd)
        raise Unusable(why)
    return fd


@dataclass
class OpenFolder:
    """One drop folder and its processed/ and rejected/, open for one scan."""

    fd: int
    processed: int
    rejected: int

    def close(self) -> None:
        for fd in (self.processed, self.rejected, self.fd):
            os.close(fd)


def open_folder(path: Path) -> OpenFolder:
    """Open the folder (created if missing) and its bookkeeping folders, or raise Unusable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = open_dir(str(path))
    except OSError as exc:
        what = "is a symbolic link; configure the real path" if path.is_symlink() \
            else f"cannot be used ({exc.strerror or exc})"
        raise Unusable(f"the folder {what}") from None
    try:
        processed = open_bookkeeping(fd, "processed")
    except BaseException:
        os.close(fd)
        raise
    try:
        rejected = open_bookkeeping(fd, "rejected")
    except BaseException:
        os.close(processed)
        os.close(fd)
        raise
    return OpenFolder(fd, processed, rejected)
