"""What the scheduler did, as text a client reads from an offset (DLNest's server output pane).

Offsets count every character ever written, so a reader's offset stays valid across `clear()`
and across the oldest text being dropped to keep the log within `max_chars`.
"""

from __future__ import annotations

import threading
import time


class EventLog:
    def __init__(self, max_chars: int = 256 * 1024) -> None:
        self.max_chars = max_chars
        self._text = ""
        self._start = 0  # absolute offset of self._text[0]
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}\n"
        with self._lock:
            self._text += stamped
            overflow = len(self._text) - self.max_chars
            if overflow > 0:
                self._text = self._text[overflow:]
                self._start += overflow

    def read(self, offset: int = 0) -> tuple[int, str]:
        """(next offset, the text after `offset` that is still kept)."""
        with self._lock:
            end = self._start + len(self._text)
            return end, self._text[max(0, offset - self._start) :] if offset < end else ""

    def clear(self) -> None:
        with self._lock:
            self._start += len(self._text)
            self._text = ""
