"""What reaches the log, however hostile its source: control characters escaped, and a line
repeated in a loop written a few times a minute with a count, not thousands of times.

A camera's file name, an FTP command or a guest's request can carry terminal escape sequences;
written raw they would reach an operator's terminal through ``journalctl``, ``/api/logs`` and the
console. An error that repeats in a tight loop (``accept()`` out of file handles under a flood)
would grow the log by megabytes a minute and wear the SD card.

``LogHygiene`` is a ``logging.Filter`` put on each handler (any thread: it holds a lock).
"""

from __future__ import annotations

import logging
import re
import threading
import time

# C0 controls except tab, DEL, and C1 controls (ESC [ ... is how a terminal is taken over)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` (tab kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class LogHygiene(logging.Filter):
    """Escapes control characters in every message, and lets one logger's identical warning or
    error through ``burst`` times per ``window`` seconds; the next one let through says how many
    were dropped."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # (logger, line) -> (since, passed)
        self._dropped: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = escape_controls(message)
        dropped = 0
        if record.levelno >= logging.WARNING:  # per-frame INFO lines are all different anyway
            if not self._admit((record.name, message)):
                return False
            dropped = self._dropped.pop((record.name, message), 0)
        if dropped:
            clean += f" ({dropped} more like this in the last {self.window:.0f} s not logged)"
        if clean != message:
            record.msg, record.args = clean, None
        return True

    def _admit(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            start, passed = self._seen.get(key, (now, 0))
            if now - start > self.window:
                start, passed = now, 0
            if passed >= self.burst:
                self._dropped[key] = self._dropped.get(key, 0) + 1
                self._seen[key] = (start, passed)
                return False
            self._seen[key] = (start, passed + 1)
            if len(self._seen) > 4096:  # bounded, whatever the sources
                self._seen.clear()
                self._dropped.clear()
            return True
