"""A fault-injecting TCP proxy that plays the venue WiFi between the box and the (fake) cloud.

The kernel here has no ``tc netem``, so every fault is done in userspace by a proxy on loopback
that runs its own asyncio loop on a background thread::

    with FaultProxy(("127.0.0.1", s3_port)) as link:
        link.latency(0.15)
        link.bandwidth(10_000_000)
        sync_to(link.url())
        link.blackout(5, reset=True)

What each fault emulates:

* ``latency(s)`` -- a long or congested path: a delay line per direction. Every chunk is
  timestamped on arrival and released at arrival + ``s``, so the delay does not serialise
  throughput (150 ms on a 10 Mbit/s link still moves ~10 Mbit/s, as on a real path).
* ``bandwidth(bps)`` -- a thin uplink: a token bucket per direction shared by every connection
  through the proxy (one WiFi link), paced in slices of at most 16 KiB (~20 ms of traffic).
* ``stall(s)`` -- the AP stops passing traffic (channel change, roaming, a microwave): nothing is
  forwarded either way, nothing is closed; bytes queue up and flow once the stall ends.
* ``blackout(s)`` -- the link is gone. Existing connections stall. New connections are accepted
  by the kernel (a userspace proxy cannot lose a SYN), so the client's connect() succeeds, but then
  nothing is forwarded and the upstream is not contacted until the blackout ends: the client hits
  its read timeout, never its connect timeout. ``refuse_new=True`` instead resets new connections
  at once (the RST may even reach the client inside connect()); ``reset=True`` resets every live
  connection at the start (the NAT table was flushed, the AP rebooted).
* ``reset_after(n)`` -- a mid-body cut: the next connection(s) get an RST once ``n`` bytes have
  passed in the given direction. ``reset_all()`` resets every live connection now.
* ``heal()`` removes every fault (chunks already in the delay line keep their release time).

Setters may be called from any thread while connections are live; each returns once the change
is in effect on the proxy's loop. A ``latency`` change applies to chunks arriving after it.

Resets are real RSTs (``SO_LINGER`` 0), sent to both ends. A reset or error on one side of a
connection is passed on to the other side as an RST too.

What it cannot emulate: packet loss, reordering, duplication or corruption (TCP hides them from
the application anyway; their visible effect is latency and throughput, which are emulated), MTU
or window behaviour, lost SYNs for real (see ``blackout``), a half-open connection whose peer
never learns of the reset, or DNS and TLS faults (TLS just passes through as bytes). Each
connection buffers up to ~8 MiB per direction in its delay line, so a sender may finish its
``sendall`` long before a stalled or paced link has moved the bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal, Self

Direction = Literal["up", "down"]
CHUNK = 16 * 1024  # largest read / write unit; keeps pacing smooth
QUEUE_CHUNKS = 512  # delay line depth per direction and connection (<= 8 MiB in flight)
_Item = tuple[float, bytes | None]  # (release time, data); b"" is EOF, None is a reset


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Pacer:
    """A token bucket kept as virtual time, so waiters on one link are served first come first."""

    def __init__(self) -> None:
        self.rate: float | None = None  # bytes per second; None = unlimited
        self._next = 0.0

    def set(self, bits_per_second: float | None, now: float) -> None:
        self.rate = None if bits_per_second is None else bits_per_second / 8
        self._next = now

    def piece(self) -> int:
        """How many bytes to send at a time (~20 ms of traffic when capped)."""
        return CHUNK if self.rate is None else max(1024, min(CHUNK, int(self.rate / 50)))

    def reserve(self, n: int, now: float) -> float:
        """Book ``n`` bytes on the link; returns how long to wait before they may go."""
        if self.rate is None:
            return 0.0
        start = max(self._next, now - CHUNK / self.rate)  # at most one chunk of burst
        self._next = start + n / self.rate
        return max(0.0, self._next - now)


class _Conn:
    """One proxied connection: the client side, then the upstream side once connected."""

    def __init__(self, client: asyncio.StreamWriter, cut: tuple[Direction, int] | None) -> None:
        self.writers = [client]
        self.cut = cut
        self.sent: dict[Direction, int] = {"up": 0, "down": 0}
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False

    def close(self, how: Literal["rst", "abort", "fin"]) -> None:
        """Tear both sides down (RST, silently, or FIN after flushing) and stop the pumps."""
        if self.closed:
            return
        self.closed = True
        for writer in self.writers:
            if how == "rst":
                _rst(writer)
            elif how == "abort":
                writer.transport.abort()
            else:
                writer.close()
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 (port 0) to ``target`` whose faults can be changed at any time.

    Every setter may be called from any thread; it returns once the change is in effect.
    Counters (read them from any thread): ``bytes_up`` (forwarded to the target), ``bytes_down``
    (forwarded to clients), ``connections_total``, ``connections_active`` and ``resets``
    (connections the proxy reset, refused or passed a reset on for).
    """

    def __init__(self, target: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.bytes_up = self.bytes_down = 0
        self.connections_total = self.connections_active = self.resets = 0
        self._latency = 0.0
        self._pacers: dict[Direction, Pacer] = {"up": Pacer(), "down": Pacer()}
        self._stall_until = self._blackout_until = 0.0
        self._refuse_new = False
        self._cuts: list[tuple[Direction, int, int | None]] = []  # (direction, n, times left)
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._loop is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()  # a restart gets a fresh loop
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None
        self._address = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("FaultProxy is not started")
        return self._address

    def url(self, scheme: str = "http") -> str:
        host, port = self.address
        return f"{scheme}://{host}:{port}"

    # -- faults (any thread) -----------------------------------------------------------------

    def latency(self, seconds: float) -> None:
        """Add ``seconds`` of one-way delay to each direction (chunks arriving from now on)."""
        self._apply(lambda now: setattr(self, "_latency", max(0.0, seconds)))

    def bandwidth(self, bits_per_second: float | None) -> None:
        """Cap each direction of the whole link at ``bits_per_second`` (None: no cap)."""
        if bits_per_second is not None and bits_per_second <= 0:
            raise ValueError("bandwidth must be positive (use stall/blackout for zero)")

        def apply(now: float) -> None:
            for pacer in self._pacers.values():
                pacer.set(bits_per_second, now)

        self._apply(apply)

    def stall(self, seconds: float) -> None:
        """Forward nothing, either way, for ``seconds``; connections stay open."""
        self._apply(lambda now: setattr(self, "_stall_until", now + seconds))

    def blackout(self, seconds: float, *, reset: bool = False, refuse_new: bool = False) -> None:
        """Drop the link for ``seconds`` (see the module docstring for what clients see)."""

        def apply(now: float) -> None:
            self._blackout_until = now + seconds
            self._refuse_new = refuse_new
            if reset:
                self._reset_live()

        self._apply(apply)

    def reset_after(self, n_bytes: int, direction: Direction = "up", *, times: int | None = 1) -> None:
        """RST each of the next ``times`` new connections (None: all of them, until ``heal()``)
        once ``n_bytes`` have passed in ``direction`` on that connection."""
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        self._apply(lambda now: self._cuts.append((direction, n_bytes, times)))

    def reset_all(self) -> None:
        """RST every live connection now."""
        self._apply(lambda now: self._reset_live())

    def heal(self) -> None:
        """Remove every fault."""

        def apply(now: float) -> None:
            self._latency = self._stall_until = self._blackout_until = 0.0
            self._refuse_new = False
            self._cuts.clear()
            for pacer in self._pacers.values():
                pacer.set(None, now)

        self._apply(apply)

    # -- loop side ---------------------------------------------------------------------------

    def _apply(self, change: Callable[[float], object]) -> None:
        """Run ``change(now)`` on the proxy loop, wake every waiter, and wait until done."""
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            change(time.monotonic() if loop is None else loop.time())
            self._changed()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                change(loop.time())
                self._changed()
                done.set_result(None)
            except Exception as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        done.result(10)

    def _changed(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _reset_live(self) -> None:
        for conn in list(self._conns):
            if not conn.closed:
                conn.close("rst")
                self.resets += 1

    async def _gate(self, *, connecting: bool = False) -> None:
        """Wait while the link is stalled or blacked out (only blackouts delay connecting)."""
        assert self._loop is not None
        while True:
            until = self._blackout_until if connecting else max(self._stall_until, self._blackout_until)
            wait = until - self._loop.time()
            if wait <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self._address = self._server.sockets[0].getsockname()[:2]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.close("abort")
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for _ in range(3):  # let aborted transports finish closing their sockets
            await asyncio.sleep(0)

    def _take_cut(self) -> tuple[Direction, int] | None:
        if not self._cuts:
            return None
        direction, n_bytes, times = self._cuts[0]
        if times is not None:
            if times <= 1:
                self._cuts.pop(0)
            else:
                self._cuts[0] = (direction, n_bytes, times - 1)
        return direction, n_bytes

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._loop is not None
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(writer, self._take_cut())
        self._handlers.add(task)
        self._conns.add(conn)
        self.connections_total += 1
        self.connections_active += 1
        try:
            if self._refuse_new and self._blackout_until > self._loop.time():
                self.resets += 1
                conn.close("rst")
                return
            await self._gate(connecting=True)
            if reader.at_eof():  # the client gave up during a blackout
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:  # target down: the client gets what a refused connection looks like
                self.resets += 1
                conn.close("rst")
                return
            conn.writers.append(up_writer)
            if conn.closed:  # reset while connecting
                up_writer.transport.abort()
                return
            conn.tasks = [
                asyncio.create_task(self._pump(conn, "up", reader, up_writer)),
                asyncio.create_task(self._pump(conn, "down", up_reader, writer)),
            ]
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # stop(); ending cancelled makes 3.11's start_server log a spurious error
        finally:
            conn.close("fin")
            self._conns.discard(conn)
            self._handlers.discard(task)
            self.connections_active -= 1

    async def _feed(self, src: asyncio.StreamReader, line: asyncio.Queue[_Item]) -> None:
        """Read ``src`` into the delay line, stamping each chunk with its release time."""
        assert self._loop is not None
        try:
            while data := await src.read(CHUNK):
                await line.put((self._loop.time() + self._latency, data))
        except OSError:
            await line.put((self._loop.time() + self._latency, None))
            return
        await line.put((self._loop.time() + self._latency, b""))

    async def _pump(
        self, conn: _Conn, direction: Direction, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        """Move one direction: delay line -> stall/blackout gate -> shared pacer -> ``dst``."""
        assert self._loop is not None
        line: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
        feeder = asyncio.create_task(self._feed(src, line))
        try:
            while True:
                due, data = await line.get()
                if (wait := due - self._loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self._gate()
                if data is None or dst.transport.is_closing():  # reset on the other side
                    break
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                if not await self._forward(conn, direction, data, dst):
                    break  # the cut point was reached
        except OSError:
            pass  # dst went away: reset the other side too
        finally:
            feeder.cancel()
        if not conn.closed:
            self.resets += 1
            conn.close("rst")

    async def _forward(
        self, conn: _Conn, direction: Direction, data: bytes, dst: asyncio.StreamWriter
    ) -> bool:
        """Pace ``data`` out to ``dst``; returns False once the connection's cut point is reached."""
        assert self._loop is not None
        pacer = self._pacers[direction]
        limit = conn.cut[1] if conn.cut is not None and conn.cut[0] == direction else None
        while data:
            await self._gate()
            size = pacer.piece()
            piece, data = data[:size], data[size:]
            if limit is not None:
                piece = piece[: limit - conn.sent[direction]]
            await asyncio.sleep(pacer.reserve(len(piece), self._loop.time()))
            dst.write(piece)
            conn.sent[direction] += len(piece)
            if direction == "up":
                self.bytes_up += len(piece)
            else:
                self.bytes_down += len(piece)
            await dst.drain()
            if limit is not None and conn.sent[direction] >= limit:
                return False
        return True
