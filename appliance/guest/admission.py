"""The line for selfie searches: at most ``web.max_searches`` selfies are read and searched at
once; the others wait their turn up to ``web.search_wait`` seconds, then get a friendly "busy,
try again in a few seconds". A selfie is held in memory while it is read and searched (never on
disk), so this line is what bounds the box's memory when many phones search at once with big
pictures. When the last search of a burst ends, the allocator's free memory goes back to the
system. Runs on the asyncio thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from appliance import process


class Busy(Exception):
    """No place in the line within the wait."""


class SearchLine:
    def __init__(self, places: int, wait: float, max_waiting: int = 64) -> None:
        self.places = places
        self.wait = wait
        self.max_waiting = max_waiting
        self._free = asyncio.Semaphore(places)
        self.active = 0
        self.waiting = 0
        self.refused = 0

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold a place for one search (raises Busy when none frees up in time)."""
        if self.waiting >= self.max_waiting:
            self.refused += 1
            raise Busy
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait):
                await self._free.acquire()
        except TimeoutError:
            self.refused += 1
            raise Busy from None
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._free.release()
            if self.active == 0 and self.waiting == 0:
                process.trim()  # the burst's selfies are gone: give their memory back
