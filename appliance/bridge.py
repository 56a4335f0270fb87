"""The one hop between threads: FTP session threads and the hot-folder thread call coroutines
on the asyncio loop (which owns the Store) and wait for the answer.

Built on the asyncio thread; ``call`` is used from any other thread (never from the loop's own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


class Bridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call(
        self,
        fn: Callable[..., Coroutine[Any, Any, T]],
        *args: Any,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the loop and block this thread for its result."""
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop).result(timeout)


async def cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Stop a service's background tasks and wait until each has finished unwinding."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
