"""A worker thread behind the archive's reading thread, fed from a fixed buffer pool.

The archive writes volumes and checksums documents on threads of their own, so reading,
encrypting, hashing and writing overlap on two cores (file writes, OpenSSL, zlib and
hashlib release the GIL). Both follow one pattern: the caller takes a free buffer, fills
it and submits it; the worker handles chunks in order and returns each buffer to the
pool. The pool is what bounds memory, whatever the size of the documents. A worker's
error is kept and raised in the caller by the next `buffer` or by `finish`.
"""

from __future__ import annotations

import queue
import threading

_STOP = object()


class Behind:
    def __init__(self, buffer_bytes: int, buffers: int, name: str) -> None:
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(buffers):
            self._free.put(bytearray(buffer_bytes))
        self._todo: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def buffer(self) -> bytearray:
        self.check()
        return self._free.get()

    def submit(self, buf: bytearray, length: int) -> None:
        """Handle `buf[:length]` behind the caller; the buffer then returns to the pool."""
        self._todo.put((buf, length))

    def release(self, buf: bytearray) -> None:
        """Give back a buffer taken but not submitted."""
        self._free.put(buf)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Wait until everything submitted is handled; re-raise the worker's error."""
        if self._thread.is_alive():
            self._todo.put(_STOP)
            self._thread.join()
        self.check()

    def _run(self) -> None:
        while (item := self._todo.get()) is not _STOP:
            if not isinstance(item, tuple):
                self._event(item)
                continue
            buf, length = item
            if self.error is None:
                view = memoryview(buf)[:length]
                try:
                    self._chunk(view)
                except BaseException as exc:  # handed to the caller by check()
                    self.error = exc
                finally:
                    view.release()  # the buffer may be refilled once back in the pool
            self._free.put(buf)  # always: the caller must never wait for nothing

    def _chunk(self, view: memoryview) -> None:
        raise NotImplementedError

    def _event(self, item: object) -> None:
        """Anything submitted that is not a chunk (e.g. the start of a file)."""
