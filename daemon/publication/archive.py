"""Build a partner delivery: a split, AES-256 7z archive with encrypted headers.

Each document gets a method of its own: data that is already compressed (by its name, or
because samples of it do not shrink) is stored, everything else is deflated ("auto") or
compressed with LZMA2 ("max"). Documents of one method share one 7z folder, so an archive
holds two folders at most (stored, compressed). Documents are opened without following
symlinks and read in fixed chunks: memory does not grow with their size.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import string
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from daemon.publication.checksums import ChecksumError
from daemon.publication.sevenzip import METHODS, SevenZipStream
from daemon.publication.volumes import VolumeWriter

MODES = ("auto", "store", "max")
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 44  # 44 * log2(62) = 262 bits
PROGRESS_EVERY = 4 * 1024 * 1024
SAMPLE_WINDOWS = 4
SAMPLE_BYTES = 256 * 1024
STORE_RATIO = 0.9  # a sample that fast deflate cannot shrink by 10 % is stored

# Formats that are compressed inside already (archives, office files, media).
COMPRESSED_SUFFIXES = frozenset({
    "7z", "zip", "gz", "tgz", "bz2", "tbz2", "xz", "txz", "zst", "lz4", "lzma", "rar", "cab",
    "jar", "war", "apk", "docx", "xlsx", "pptx", "docm", "xlsm", "pptm", "odt", "ods", "odp",
    "odg", "epub", "jpg", "jpeg", "png", "gif", "webp", "heic", "heif", "avif", "jp2", "mp3",
    "aac", "m4a", "ogg", "opus", "flac", "mp4", "m4v", "mov", "avi", "mkv", "webm", "wmv",
})


class ArchiveError(Exception):
    """A delivery cannot be built; the message says why."""


class DocumentRefused(ArchiveError):
    """A document is not a regular file reachable without following a symlink."""


@dataclass(frozen=True)
class Document:
    name: str  # path inside the archive, e.g. "D-100-A.pdf" or "stamps/D-100-A.pdf.sig"
    path: Path  # the file on disk (read in chunks, never whole)
    sha256: str | None = None  # hex; when given, the bytes archived must have this hash
    size: int | None = None  # when given, the file must have this size


@dataclass(frozen=True)
class ArchiveResult:
    volumes: list[Path]  # in order: <base>.7z.001, .002, ...
    bytes_in: int
    bytes_out: int
    methods: dict[str, str]  # document name -> "copy", "deflate" or "lzma2"


@dataclass(frozen=True)
class _Planned:
    document: Document
    method: str
    size: int
    identity: tuple[int, int]  # (st_dev, st_ino) when inspected
    mtime: float


def new_password() -> str:
    """A random password: 44 letters and digits (262 bits), safe to pass as `-p<password>`."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def check_name(name: str) -> None:
    """Refuse names that could escape the extraction folder or confuse 7-Zip."""
    parts = PurePosixPath(name).parts
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or any(p in (".", "..") for p in parts) or name != "/".join(parts)):
        raise ArchiveError(f"{name!r}: not a relative path inside the archive")


def open_document(document: Document) -> tuple[int, os.stat_result]:
    """Open read-only without following a final symlink; refuse anything but a regular file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(document.path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DocumentRefused(f"{document.name}: {document.path} is a symbolic link") from exc
        raise DocumentRefused(f"{document.name}: cannot open {document.path}: "
                              f"{exc.strerror}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DocumentRefused(f"{document.name}: {document.path} is not a regular file")
    return fd, st


def sample_is_compressible(fd: int, size: int) -> bool:
    """Deflate (level 1) up to four windows spread over the file; compressible when at least
    half of them shrink by 10 %, so a text header on a compressed body does not count."""
    windows = min(SAMPLE_WINDOWS, max(1, size // SAMPLE_BYTES))
    step = (size - SAMPLE_BYTES) // (windows - 1) if windows > 1 else 0
    shrinking = 0
    for i in range(windows):
        data = os.pread(fd, SAMPLE_BYTES, i * step)
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        packed = len(compressor.compress(data)) + len(compressor.flush())
        shrinking += packed < len(data) * STORE_RATIO
    return shrinking * 2 >= windows


def choose_method(name: str, fd: int, size: int, mode: str) -> str:
    if mode == "store" or size == 0:
        return "copy"
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    if suffix in COMPRESSED_SUFFIXES or not sample_is_compressible(fd, size):
        return "copy"
    return "lzma2" if mode == "max" else "deflate"


def _plan(documents: list[Document], mode: str) -> list[_Planned]:
    seen: set[str] = set()
    planned = []
    for document in documents:
        check_name(document.name)
        if document.name in seen:
            raise ArchiveError(f"{document.name}: named twice")
        seen.add(document.name)
        fd, st = open_document(document)
        if document.size is not None and st.st_size != document.size:
            os.close(fd)
            raise ArchiveError(f"{document.name}: {document.path} has {st.st_size} bytes, "
                               f"not the {document.size} recorded; it was altered")
        try:
            method = choose_method(document.name, fd, st.st_size, mode)
        finally:
            os.close(fd)
        planned.append(_Planned(document, method, st.st_size, (st.st_dev, st.st_ino),
                                st.st_mtime))
    return planned


class _Progress:
    def __init__(self, total: int, report: Callable[[int, int], None] | None,
                 every: int) -> None:
        self.total, self.done, self._reported, self._report = total, 0, 0, report
        self._every = every

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        if self._report and self.done - self._reported >= self._every:
            self._reported = self.done
            self._report(self.done, self.total)

    def finish(self) -> None:
        if self._report and self._reported != self.done:
            self._report(self.done, self.total)


def _stream(archive: SevenZipStream, planned: list[_Planned], progress: _Progress) -> None:
    for method in METHODS:
        group = [p for p in planned if p.method == method]
        if not group:
            continue
        archive.begin_folder(method)
        for item in group:
            fd, st = open_document(item.document)
            try:
                if (st.st_dev, st.st_ino) != item.identity:
                    raise ArchiveError(f"{item.document.name}: replaced while archiving")
                size = archive.add_file(item.document.name, fd, item.mtime, progress,
                                        item.document.sha256)
            finally:
                os.close(fd)
            if size != item.size:
                raise ArchiveError(f"{item.document.name}: changed size while archiving "
                                   f"({item.size} -> {size} bytes)")
        archive.end_folder()


def build_archive(documents: list[Document], out_dir: Path, base: str, volume_bytes: int,
                  password: str, *, mode: str = "auto",
                  progress: Callable[[int, int], None] | None = None,
                  progress_every: int = PROGRESS_EVERY) -> ArchiveResult:
    """Write `<base>.7z.001`... into `out_dir`; on any failure no volume is left behind.

    `progress(done, total)` is called every `progress_every` bytes read and at the end.
    A document given a sha256 or size that its bytes do not have fails the build.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if not documents:
        raise ArchiveError("nothing to archive")
    if not password:
        raise ArchiveError("an archive needs a password")
    planned = _plan(documents, mode)
    sink = VolumeWriter(out_dir, base, volume_bytes)
    meter = _Progress(sum(p.size for p in planned), progress, max(1, progress_every))
    archive: SevenZipStream | None = None
    try:
        archive = SevenZipStream(sink, password)
        _stream(archive, planned, meter)
        archive.close()
        sink.close()
    except BaseException as exc:
        if archive is not None:
            archive.abort()
        sink.discard()
        if isinstance(exc, ChecksumError):
            raise ArchiveError(str(exc)) from None
        raise
    meter.finish()
    return ArchiveResult(volumes=list(sink.volumes), bytes_in=meter.total,
                         bytes_out=sum(v.stat().st_size for v in sink.volumes),
                         methods={p.document.name: p.method for p in planned})
