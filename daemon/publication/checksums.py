"""CRC32 and SHA-256 of each archived document, computed on a thread of their own.

The archive needs each file's CRC32 (7-Zip checks it on extraction) and the delivery must
prove that the bytes packed are the bytes stamped: the SHA-256 recorded at intake, which
the signed manifest states. Hashing in the reading thread would put SHA-256 (about
1.3 GB/s here) in series with AES-CBC (about 0.7 GB/s), and the reading thread is what
limits a stored archive. So the reader hands each chunk to this thread, which hashes it
while the reader encrypts the same bytes (both only read them); hashlib and zlib release
the GIL. The reader takes its buffers from a small pool that this thread refills, so a
buffer is never refilled while it is still being hashed, and memory stays bounded.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

from daemon.publication.behind import Behind


class ChecksumError(Exception):
    """A document's bytes are not the ones recorded (its SHA-256 differs)."""


@dataclass(frozen=True)
class _Begin:
    name: str
    expected: str | None  # SHA-256 hex the file must have; None: only its CRC32


_END = object()


class ChecksumBehind(Behind):
    """Checksums files chunk by chunk, behind the reader, in the order they are read.

    Per file: `begin`, then for each chunk `buffer` (a free buffer to read into) and
    `submit`, then `end`. `finish` waits for the last file; `crcs` then holds every file's
    CRC32 in order. A SHA-256 mismatch is raised by the next `buffer` or by `finish`.
    """

    def __init__(self, buffer_bytes: int, buffers: int = 4) -> None:
        self.crcs: list[int] = []
        self._name, self._crc = "", 0
        self._expected: str | None = None
        self._sha: hashlib._Hash | None = None
        super().__init__(buffer_bytes, buffers, "archive-checksums")

    def begin(self, name: str, expected: str | None) -> None:
        self._todo.put(_Begin(name, expected.lower() if expected else None))

    def end(self) -> None:
        self._todo.put(_END)

    def _chunk(self, view: memoryview) -> None:
        self._crc = zlib.crc32(view, self._crc)
        if self._sha is not None:
            self._sha.update(view)

    def _event(self, item: object) -> None:
        if isinstance(item, _Begin):
            self._name, self._expected, self._crc = item.name, item.expected, 0
            self._sha = hashlib.sha256() if item.expected else None
            return
        self.crcs.append(self._crc)  # _END
        sha = self._sha
        if sha is not None and self.error is None and sha.hexdigest() != self._expected:
            self.error = ChecksumError(
                f"{self._name}: the bytes read have sha256 {sha.hexdigest()}, not the "
                f"{self._expected} recorded; the stored document was altered")
