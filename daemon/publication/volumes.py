"""Volume files for a split 7z archive, and a thread that writes them behind the encoder.

A split 7z archive is one byte stream cut into `<base>.7z.001`, `.002`, ... of exactly the
volume size (the last one shorter); 7-Zip joins them back before reading. So the writer only
has to roll over to the next file at each boundary, plus rewrite the 32-byte start header in
the first volume at the end, when the header's position is known.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.publication.behind import Behind

VOLUME_MODE = 0o640
MIN_VOLUME_BYTES = 64 * 1024
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def volume_name(base: str, number: int) -> str:
    """`<base>.7z.001` onwards, the names 7-Zip looks for (`7zz x <base>.7z.001`)."""
    return f"{base}.7z.{number:03d}"


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


class VolumeWriter:
    """Sequential writer that rolls over to a new volume every `volume_bytes` bytes.

    Volumes are created with O_EXCL and O_NOFOLLOW and mode 0640, so an existing file or a
    planted symlink is never overwritten or followed, and other users cannot read them.
    """

    def __init__(self, out_dir: Path, base: str, volume_bytes: int) -> None:
        if volume_bytes < MIN_VOLUME_BYTES:
            raise ValueError(f"volume size {volume_bytes} is below {MIN_VOLUME_BYTES} bytes")
        if not base or "/" in base or base.startswith(".") or "\x00" in base:
            raise ValueError(f"archive base name {base!r} must be a plain file name")
        stale = sorted(out_dir.glob(f"{base}.7z.*"))
        if stale:
            raise FileExistsError(f"{stale[0]} already exists; refusing to mix archives")
        self.out_dir = out_dir
        self.base = base
        self.volume_bytes = volume_bytes
        self.volumes: list[Path] = []
        self._fd = -1
        self._position = 0
        self._room = 0  # bytes left in the open volume

    def _next_volume(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        path = self.out_dir / volume_name(self.base, len(self.volumes) + 1)
        self._fd = os.open(path, _CREATE, VOLUME_MODE)
        self.volumes.append(path)
        self._room = self.volume_bytes

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            if self._room == 0:
                self._next_volume()
            part = view[: self._room]
            _write_all(self._fd, part)
            self._room -= len(part)
            self._position += len(part)
            view = view[len(part):]
        return total

    def tell(self) -> int:
        return self._position

    def patch_start(self, data: bytes) -> None:
        """Rewrite the first bytes of volume 1 (the 7z start header)."""
        if not self.volumes or len(data) > self.volume_bytes:
            raise ValueError("nothing to patch")
        if len(self.volumes) == 1:
            os.pwrite(self._fd, data, 0)
            return
        fd = os.open(self.volumes[0], os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """Close and remove every volume written so far (after a failure)."""
        self.close()
        for path in self.volumes:
            path.unlink(missing_ok=True)
        self.volumes = []


class WriteBehind(Behind):
    """Writes encrypted chunks to the volumes on a second thread while the caller reads
    and encodes (see daemon.publication.behind)."""

    def __init__(self, sink: VolumeWriter, buffer_bytes: int, buffers: int = 8) -> None:
        self._sink = sink
        super().__init__(buffer_bytes, buffers, "archive-writer")

    def submit(self, buf: bytearray, length: int) -> None:
        if length:
            super().submit(buf, length)
        else:
            self.release(buf)

    def _chunk(self, view: memoryview) -> None:
        self._sink.write(view)
