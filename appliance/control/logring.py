"""The last log lines, kept in memory for the console's log view (``GET /api/logs``).

A logging handler, so it sees exactly what goes to journald; bounded, thread-safe (any thread
may log). Lines carry a sequence number so a reader asks only for what is new.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from typing import Any


class LogRing(logging.Handler):
    def __init__(self, size: int = 2000) -> None:
        super().__init__()
        self._lines: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0
        self._ring_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        except (TypeError, ValueError):  # a bad format string must not break logging
            message = str(record.msg)
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        with self._ring_lock:
            self._seq += 1
            self._lines.append({"seq": self._seq, **line})

    def since(self, after: int, limit: int) -> dict[str, Any]:
        """Lines with seq > ``after`` (the newest ``limit`` of them) and the seq to ask from next."""
        with self._ring_lock:
            lines = [line for line in self._lines if line["seq"] > after]
            last = self._seq
        return {"lines": lines[-limit:], "next": last}
