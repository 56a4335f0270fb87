"""Uplink state from what the sync sees: online, degraded (recent failures or throttling) or
offline (consecutive network failures); while offline a cheap probe runs every few seconds and
workers wait instead of hammering the link. Runs on the asyncio thread."""

from __future__ import annotations

import asyncio
import enum
import logging
import time

logger = logging.getLogger(__name__)


class State(enum.StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class Uplink:
    def __init__(self, *, offline_after: int = 3, degraded_for: float = 60.0) -> None:
        self.state = State.ONLINE
        self.offline_after = offline_after
        self.degraded_for = degraded_for
        self.failures = 0
        self.last_trouble = 0.0
        self.since = time.time()
        self._online = asyncio.Event()
        self._online.set()

    def ok(self) -> None:
        self.failures = 0
        degraded = time.monotonic() - self.last_trouble < self.degraded_for if self.last_trouble else False
        self._set(State.DEGRADED if degraded else State.ONLINE)

    def trouble(self) -> None:
        """Throttling or a slow call: still up."""
        self.last_trouble = time.monotonic()
        if self.state is State.ONLINE:
            self._set(State.DEGRADED)

    def failed(self) -> None:
        """A network-level failure."""
        self.failures += 1
        self.last_trouble = time.monotonic()
        self._set(State.OFFLINE if self.failures >= self.offline_after else State.DEGRADED)

    async def wait_usable(self) -> None:
        await self._online.wait()

    def _set(self, state: State) -> None:
        if state is not self.state:
            logger.warning("uplink %s -> %s", self.state.value, state.value)
            self.state = state
            self.since = time.time()
        if state is State.OFFLINE:
            self._online.clear()
        else:
            self._online.set()
