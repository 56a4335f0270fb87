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

    def claim(self, username: str, handler: Any, cap: int) -> bool:
        """Count ``handler`` under ``username`` unless ``cap`` sessions are there already: checked
        and counted in one step, before the password is checked and the 230 is sent, so logins
        arriving together cannot all pass a check made while the others were still hashing."""
        with self._lock:
            handlers = self._by_key.setdefault(username, set())
            if handler not in handlers and len(handlers) >= cap:
                return False
            handlers.add(handler)
            return True

    def remove(self, username: str, handler: Any) -> None:
        with self._lock:
            handlers = self._by_key.get(username)
            if handlers is not None:
                handlers.discard(handler)
                if not handlers:
                    del self._by_key[username]

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


class PreLogin:
    """Control connections that have not logged in yet (shared by every listener). They get a
    small pool of their own, so sockets that never log in cannot take the slots cameras need:
    at most ``per_ip`` per address (one more is refused), at most ``total`` in all, and when the
    pool is full a newcomer takes the place of the oldest connection of the address holding the
    most. A camera connects and logs in at once, so it is never the one that makes way while
    anyone holds two. Thread-safe (acceptor threads admit; session threads leave)."""

    def __init__(self, *, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self._lock = threading.Lock()
        self._by_ip: dict[str, dict[Any, None]] = {}  # insertion order: oldest first
        self._count = 0

    def admit(self, handler: Any, ip: str) -> tuple[bool, Any | None]:
        """(admitted, the connection to close to make room, if any)."""
        with self._lock:
            mine = self._by_ip.get(ip, {})
            if len(mine) >= self.per_ip:
                return False, None
            victim = None
            if self._count >= self.total:
                crowded = max(self._by_ip.values(), key=len)
                victim = next(iter(crowded))
                self._drop(victim, next(i for i, hs in self._by_ip.items() if hs is crowded))
            self._by_ip.setdefault(ip, {})[handler] = None
            self._count += 1
            return True, victim

    def leave(self, handler: Any, ip: str) -> None:
        """Logged in or closed (idempotent)."""
        with self._lock:
            self._drop(handler, ip)

    def count(self) -> int:
        with self._lock:
            return self._count

    def _drop(self, handler: Any, ip: str) -> None:
        handlers = self._by_ip.get(ip)
        if handlers is not None and handler in handlers:
            del handlers[handler]
            self._count -= 1
            if not handlers:
                del self._by_ip[ip]
