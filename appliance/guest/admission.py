"""The line for selfie searches: at most ``web.max_searches`` selfies, and at most
``web.search_memory_mb`` of them by their declared size, are read and searched at once; the others
wait their turn up to ``web.search_wait`` seconds, then get a friendly "busy, try again in a few
seconds". A selfie is held in memory while it is read and searched (never on disk, about three
times its size on the way to the selfie process), so this line is what bounds the box's memory
when many phones search at once with big pictures, while ordinary selfies of a few MB still go
several at a time. When the last search of a burst ends, the allocator's free memory goes back
to the system. Runs on the asyncio thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from appliance import process


class Busy(Exception):
    """No place in the line within the wait."""


class SearchLine:
    def __init__(self, places: int, budget_bytes: int, wait: float, max_waiting: int = 64) -> None:
        self.places = places
        self.budget = budget_bytes
        self.wait = wait
        self.max_waiting = max_waiting
        self._turn = asyncio.Condition()
        self._held = 0  # bytes of the searches in progress, by their declared size
        self.active = 0
        self.waiting = 0
        self.refused = 0

    def _fits(self, size: int) -> bool:
        # a search larger than the whole budget still runs, alone
        return self.active < self.places and (self.active == 0 or self._held + size <= self.budget)

    @contextlib.asynccontextmanager
    async def place(self, size: int) -> AsyncIterator[None]:
        """Hold a place for one search of ``size`` bytes (raises Busy when none frees up in time)."""
        if self.waiting >= self.max_waiting:
            self.refused += 1
            raise Busy
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait), self._turn:
                await self._turn.wait_for(lambda: self._fits(size))
                self.active += 1
                self._held += size
        except TimeoutError:
            self.refused += 1
            raise Busy from None
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            async with self._turn:
                self.active -= 1
                self._held -= size
                self._turn.notify_all()
            if self.active == 0 and self.waiting == 0:
                process.trim()  # the burst's selfies are gone: give their memory back
