"""One spawned process that runs several calls at once, each on a thread of its own.

The face indexer's pool. A ``ProcessPoolExecutor`` runs one call at a time per process, so N
concurrent photos cost N processes, each holding its own copy of the models (~150 MB). dlib's
detector, Pillow's codecs and onnxruntime all release the GIL, so threads in one process index
as fast (measured: two HOG passes on two threads take 0.54 of the time on one) in one copy of
the models. The box keeps ``threads`` calls in flight, so a thread is never idle while photos
wait, and each call is answered as soon as it ends (no batch waits for its slowest photo).

Protocol over one ``Pipe``: the box sends ``(call id, function, args)`` (a module-level function,
pickled by name) or ``None`` to stop; the process answers ``(call id, ok, value or exception)``.
If the process dies, every call in flight fails with ``BrokenProcessPool``, as with the stdlib's
pool: the caller decides which of its photos to blame.

Threads on the box's side: ``submit`` only queues the call (it is called from the asyncio
thread, and a selfie of several MB does not fit a pipe's buffer: sending it there would stall
every guest page while the process is slow to read, or forever if it is stopped); a sender
thread writes the queue to the pipe, as the stdlib pool's feeder thread does; a reader thread
resolves the futures.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger(__name__)


def _serve(
    conn: Connection,
    threads: int,
    initializer: Callable[..., None],
    initargs: Sequence[Any],
    background: tuple[int, int] | None = None,
) -> None:
    """The process's main: initialise once, then run each call on the thread pool (threads
    inherit the initializer's CPU priority, since Linux keeps a nice value per thread), or on
    the ``background`` pool, ``(threads, nice)``, whose threads lower their own priority."""
    initializer(*initargs)
    send = threading.Lock()

    def run(call: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[int, bool, Any] = (call, True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = (call, False, exc)
        with send:
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # unpicklable: say so
                conn.send((call, False, RuntimeError(f"{fn.__name__} returned what cannot be sent: {exc}")))

    pools = {False: ThreadPoolExecutor(threads, thread_name_prefix="faces")}
    if background is not None:
        pools[True] = ThreadPoolExecutor(
            background[0],
            thread_name_prefix="faces-bg",
            initializer=_lower_priority,
            initargs=(background[1],),
        )
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the box is gone
            if message is None:
                break
            call, fn, args, behind = message
            pools[behind and background is not None].submit(run, call, fn, args)
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True)


def _lower_priority(nice: int) -> None:
    """This thread's CPU priority only (Linux keeps a nice value per thread)."""
    if nice:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class ThreadedProcess:
    """A process running up to ``threads`` calls at once; ``submit`` returns a Future."""

    def __init__(
        self,
        threads: int,
        initializer: Callable[..., None],
        initargs: Sequence[Any] = (),
        *,
        background: tuple[int, int] | None = None,
    ) -> None:
        """``background``: ``(threads, nice)`` of a second pool for calls submitted with
        ``background=True`` (the selfie process indexes photos there at low priority)."""
        context = multiprocessing.get_context("spawn")  # the box has threads: never fork
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, threads, initializer, tuple(initargs), background),
            name="shutterbox-faces",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._ids = itertools.count()
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._outbox: queue.SimpleQueue[tuple[int, Callable[..., Any], tuple[Any, ...], bool] | None] = (
            queue.SimpleQueue()
        )
        self._sender = threading.Thread(target=self._send, name="faces-calls", daemon=True)
        self._sender.start()
        self._reader = threading.Thread(target=self._read, name="faces-replies", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, fn: Callable[..., Any], *args: Any, background: bool = False) -> Future[Any]:
        """Queue one call (never waits for the process); its Future. ``background``: on the
        background pool (the main one when the process has none)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._broken is not None:
                raise BrokenProcessPool(self._broken)
            call = next(self._ids)
            self._pending[call] = future
            self._outbox.put((call, fn, args, background))
        return future

    def _send(self) -> None:
        """The sender thread: each queued call to the pipe, in order; ``None`` ends it (after
        passing the stop on to the process, unless the process is already gone)."""
        while True:
            message = self._outbox.get()
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                if message is not None:
                    with self._lock:
                        future = self._pending.pop(message[0], None)
                    if future is not None and future.set_running_or_notify_cancel():
                        future.set_exception(BrokenProcessPool(f"the face process cannot be reached: {exc}"))
            if message is None:
                return

    def _read(self) -> None:
        while True:
            try:
                call, ok, value = self._conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # a reply that cannot be unpickled: fail that call only if we can
                logger.exception("a reply from the face process could not be read")
                continue
            with self._lock:
                future = self._pending.pop(call, None)
            if future is not None and future.set_running_or_notify_cancel():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        self._process.join(timeout=5.0)
        code = self._process.exitcode
        with self._lock:
            self._broken = f"the face process ended (exit code {code})"
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(BrokenProcessPool(self._broken))
        self._conn.close()

    def kill(self) -> None:
        """End a hung process at once: the calls in flight fail with BrokenProcessPool."""
        self._process.kill()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking calls, let the process finish what it runs, and end it."""
        with self._lock:
            if self._broken is None:
                self._broken = "the face process was shut down"
            self._outbox.put(None)  # after the calls already queued
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout)
        self._reader.join(timeout)
        self._conn.close()
        self._sender.join(timeout)
