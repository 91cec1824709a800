"""Volume files for a split 7z archive, and a thread that writes them behind the encoder.

A split 7z archive is one byte stream cut into `<base>.7z.001`, `.002`, ... of exactly the
volume size (the last one shorter); 7-Zip joins them back before reading. So the writer only
has to roll over to the next file at each boundary, plus rewrite the 32-byte start header in
the first volume at the end, when the header's position is known.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

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


class WriteBehind:
    """Writes encrypted chunks on a second thread while the caller reads and encodes.

    Chunks live in a fixed pool of buffers: the caller takes one, fills it and submits
    it; the writer returns it after writing. The pool is what bounds memory, whatever the
    size of the documents; file writes and OpenSSL/zlib release the GIL, so reading,
    encoding and writing overlap on two cores.
    """

    def __init__(self, sink: VolumeWriter, buffer_bytes: int, buffers: int = 8) -> None:
        self._sink = sink
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(bytearray(buffer_bytes))
        self._full: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="archive-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._full.get()
            if item is None:
                return
            buf, length = item
            if self.error is None:
                try:
                    self._sink.write(memoryview(buf)[:length])
                except BaseException as exc:  # handed to the caller by check()
                    self.error = exc
            self._free.put(buf)

    def buffer(self) -> bytearray:
        self.check()
        return self._free.get()

    def submit(self, buf: bytearray, length: int) -> None:
        if length:
            self._full.put((buf, length))
        else:
            self._free.put(buf)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Wait until every submitted chunk is written; re-raise the writer's error."""
        if self._thread.is_alive():
            self._full.put(None)
            self._thread.join()
        self.check()
