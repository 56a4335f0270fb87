"""Live FTP sessions per upload key: for the per-key cap, for cutting a revoked key's sessions,
and for the operator's view. Thread-safe (session threads add/remove; asyncio reads/cuts)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class KeyErrors:
    """Session-level trouble of one key since the box started (failed logins, disk refusals);
    rejected uploads are in the database."""

    count: int = 0
    last: str | None = None
    last_at: float | None = None


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, set[Any]] = {}
        self._errors: dict[str, KeyErrors] = {}

    def add(self, username: str, handler: Any) -> None:
        with self._lock:
            self._by_key.setdefault(username, set()).add(handler)

    def remove(self, username: str, handler: Any) -> None:
        with self._lock:
            handlers = self._by_key.get(username)
            if handlers is not None:
                handlers.discard(handler)
                if not handlers:
                    del self._by_key[username]

    def count(self, username: str) -> int:
        with self._lock:
            return len(self._by_key.get(username, ()))

    def transferring(self) -> int:
        """Sessions with a data channel open right now (an upload in flight)."""
        with self._lock:
            handlers = [h for hs in self._by_key.values() for h in hs]
        return sum(1 for h in handlers if getattr(h, "data_channel", None) is not None)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {name: len(handlers) for name, handlers in self._by_key.items()}

    def note_error(self, username: str, text: str) -> None:
        """Only for existing keys (the caller checks), so unknown names cannot grow this."""
        with self._lock:
            errors = self._errors.setdefault(username, KeyErrors())
            errors.count += 1
            errors.last, errors.last_at = text, time.time()

    def errors(self) -> dict[str, KeyErrors]:
        with self._lock:
            return {name: KeyErrors(e.count, e.last, e.last_at) for name, e in self._errors.items()}

    def cut(self, username: str) -> int:
        """End every live session of ``username``; returns how many were cut."""
        with self._lock:
            handlers = list(self._by_key.get(username, ()))
        for handler in handlers:
            handler.cut()
        return len(handlers)
