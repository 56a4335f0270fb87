"""The fault proxy itself: transparent when healthy, and each injected fault is really there.

Timing asserts here check that an injected delay is present (a functional property of the
fault), with generous bounds; none of them measures performance.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import random
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Literal, Self

import pytest

from tests.fakes.faultproxy import FaultProxy


class Upstream:
    """A tiny threaded TCP server on loopback: ``echo`` sends back what it gets, ``sink`` keeps it."""

    def __init__(self, mode: Literal["echo", "sink"]) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.accepted = 0
        self.received = 0  # bytes, over all connections
        self.finished: list[tuple[int, str]] = []  # (bytes received, "eof" | "reset") per connection
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Self:
        self._spawn(self._accept)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._threads[0].join(5)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for conn in self._conns:
            conn.close()
        self.listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        count, how = 0, "eof"
        try:
            while data := conn.recv(65536):
                count += len(data)
                with self._lock:
                    self.received += len(data)
                if self.mode == "echo":
                    conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            how = "reset"
        with self._lock:
            self.finished.append((count, how))


@pytest.fixture
def echo() -> Iterator[Upstream]:
    with Upstream("echo") as up:
        yield up


@pytest.fixture
def sink() -> Iterator[Upstream]:
    with Upstream("sink") as up:
        yield up


def connect(proxy: FaultProxy, timeout: float = 5) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> float:
    """Poll until ``condition()``; returns when it became true (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        assert data, f"EOF after {len(out)} of {n} bytes"
        out += data
    return bytes(out)


def rtt(sock: socket.socket, message: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(message)
    assert recv_exactly(sock, len(message)) == message
    return time.monotonic() - start


def read_until_reset(sock: socket.socket) -> bytes:
    """Read until the connection is reset; a clean EOF fails the test."""
    got = bytearray()
    try:
        while data := sock.recv(65536):
            got += data
    except ConnectionResetError:
        return bytes(got)
    raise AssertionError(f"clean EOF after {len(got)} bytes where a reset was expected")


def connect_and_recv(proxy: FaultProxy) -> bytes:
    """Connect and read; a reset sent at once may even reach the client during connect()."""
    with connect(proxy) as sock:
        return sock.recv(10)


def upload(proxy: FaultProxy, payload: bytes) -> None:
    """Send ``payload``, half-close, and wait for the upstream to close its side."""
    with connect(proxy, timeout=30) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""


def test_passes_5mb_through_byte_identical_both_ways(echo: Upstream) -> None:
    payload = random.Random(5).randbytes(5 * 1024 * 1024)
    with FaultProxy(echo.address) as proxy, connect(proxy) as sock:

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        back = bytearray()
        while data := sock.recv(1 << 20):
            back += data
        sender.join(10)
        assert hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
        sock.close()
        wait_for(lambda: proxy.connections_active == 0)
        assert (proxy.bytes_up, proxy.bytes_down) == (len(payload), len(payload))
        assert (proxy.connections_total, proxy.resets) == (1, 0)
    assert echo.finished == [(len(payload), "eof")]


def test_http_through_url() -> None:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        with FaultProxy(server.server_address[:2]) as proxy:  # type: ignore[arg-type]
            assert proxy.url("https").startswith("https://127.0.0.1:")
            with urllib.request.urlopen(proxy.url() + "/photo.jpg", timeout=5) as response:
                assert response.read() == b"hello /photo.jpg"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_latency_delays_each_direction_without_serialising(echo: Upstream) -> None:
    with FaultProxy(echo.address) as proxy, connect(proxy) as sock:
        baseline = min(rtt(sock) for _ in range(3))
        proxy.latency(0.2)
        delayed = rtt(sock)
        assert 2 * 0.2 * 0.9 <= delayed < baseline + 3
        # A delay line, not a per-chunk sleep: 10 sends 20 ms apart all come back after ~0.6 s
        # (serialised per-chunk delays would take over 2 s).
        start = time.monotonic()
        for i in range(10):
            sock.sendall(b"%02d" % i)
            time.sleep(0.02)
        assert recv_exactly(sock, 20) == b"".join(b"%02d" % i for i in range(10))
        assert 0.4 * 0.9 <= time.monotonic() - start < 1.5
        proxy.heal()
        assert rtt(sock) < 0.3


def test_bandwidth_cap_is_one_link_shared_by_all_connections(sink: Upstream) -> None:
    with FaultProxy(sink.address) as proxy:
        proxy.bandwidth(2_000_000)  # 250 kB/s per direction
        start = time.monotonic()
        threads = [threading.Thread(target=upload, args=(proxy, bytes(500_000))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        elapsed = time.monotonic() - start
        assert sink.received == 1_000_000
        assert 3.5 <= elapsed < 10, elapsed
        proxy.bandwidth(None)
        start = time.monotonic()
        upload(proxy, bytes(1_000_000))
        assert time.monotonic() - start < 2
    with pytest.raises(ValueError, match="positive"):
        proxy.bandwidth(0)


def test_stall_holds_bytes_then_delivers_them(sink: Upstream) -> None:
    with FaultProxy(sink.address) as proxy, connect(proxy) as sock:
        sock.sendall(bytes(10_000))
        wait_for(lambda: sink.received == 10_000)
        start = time.monotonic()
        proxy.stall(1.0)
        sock.sendall(bytes(50_000))
        time.sleep(0.6)
        assert sink.received == 10_000
        done = wait_for(lambda: sink.received == 60_000)
        assert done - start >= 0.9
        sock.sendall(bytes(1000))  # the connection survived
        wait_for(lambda: sink.received == 61_000)
        assert proxy.resets == 0
        assert not sink.finished


def test_blackout_hangs_new_and_existing_connections_until_it_ends(echo: Upstream) -> None:
    with FaultProxy(echo.address) as proxy, connect(proxy) as old:
        assert rtt(old, b"hi")
        start = time.monotonic()
        proxy.blackout(1.0)
        with connect(proxy) as new:  # the kernel accepts; nothing else happens
            new.sendall(b"new")
            old.sendall(b"old")
            new.settimeout(0.4)
            with pytest.raises(TimeoutError):
                new.recv(10)
            old.settimeout(0.1)
            with pytest.raises(TimeoutError):
                old.recv(10)
            assert echo.accepted == 1  # the upstream was not contacted
            assert (proxy.connections_total, proxy.connections_active) == (2, 2)
            new.settimeout(5)
            old.settimeout(5)
            assert recv_exactly(new, 3) == b"new"
            assert recv_exactly(old, 3) == b"old"
            assert time.monotonic() - start >= 0.9
            assert echo.accepted == 2
        assert proxy.resets == 0


def test_blackout_with_reset_and_refuse_new(echo: Upstream) -> None:
    with FaultProxy(echo.address) as proxy:
        with connect(proxy) as a, connect(proxy) as b:
            assert rtt(a) and rtt(b)
            proxy.blackout(0.5, reset=True)
            for sock in (a, b):
                with pytest.raises(ConnectionResetError):
                    sock.recv(10)
        assert proxy.resets == 2
        time.sleep(0.5)
        with connect(proxy) as c:
            assert rtt(c)
        proxy.blackout(30, refuse_new=True)
        with pytest.raises(ConnectionResetError):
            connect_and_recv(proxy)
        assert proxy.resets == 3
        proxy.heal()
        with connect(proxy) as e:
            assert rtt(e)


def test_heal_lifts_a_long_stall_and_blackout(echo: Upstream) -> None:
    with FaultProxy(echo.address) as proxy, connect(proxy) as sock:
        proxy.stall(30)
        sock.sendall(b"stuck")
        time.sleep(0.2)
        proxy.heal()
        assert recv_exactly(sock, 5) == b"stuck"
        proxy.blackout(30)
        with connect(proxy) as new:
            new.sendall(b"new")
            time.sleep(0.2)
            proxy.heal()
            assert recv_exactly(new, 3) == b"new"


def test_reset_after_cuts_an_upload_mid_body(sink: Upstream) -> None:
    payload = bytes(1_000_000)
    with FaultProxy(sink.address) as proxy:
        proxy.reset_after(100_000)
        with connect(proxy) as sock:
            try:
                sock.sendall(payload)
            except ConnectionResetError:
                pass  # cut while sending
            else:
                read_until_reset(sock)  # the proxy swallowed the body, then the cut arrived
        wait_for(lambda: len(sink.finished) == 1)
        received, how = sink.finished[0]
        assert received <= 100_000 < len(payload)
        assert how == "reset"
        assert proxy.bytes_up == 100_000
        assert proxy.resets == 1
        upload(proxy, payload)  # only the next connection was cut
        wait_for(lambda: len(sink.finished) == 2)
        assert sink.finished[1] == (len(payload), "eof")


def test_reset_after_downstream_for_several_connections(echo: Upstream) -> None:
    with FaultProxy(echo.address) as proxy:
        proxy.reset_after(1000, "down", times=2)
        for _ in range(2):
            with connect(proxy) as sock:
                sock.sendall(bytes(5000))
                assert len(read_until_reset(sock)) <= 1000
        with connect(proxy) as sock:
            sock.sendall(bytes(5000))
            assert recv_exactly(sock, 5000) == bytes(5000)
        assert proxy.resets == 2


def test_reset_all_and_counters(echo: Upstream) -> None:
    with FaultProxy(echo.address) as proxy:
        with connect(proxy) as a, connect(proxy) as b:
            assert rtt(a, b"x" * 100) and rtt(b, b"y" * 50)
            assert (proxy.connections_total, proxy.connections_active) == (2, 2)
            proxy.reset_all()
            for sock in (a, b):
                with pytest.raises(ConnectionResetError):
                    sock.recv(10)
        wait_for(lambda: proxy.connections_active == 0)
        assert (proxy.bytes_up, proxy.bytes_down, proxy.resets) == (150, 150, 2)
        wait_for(lambda: len(echo.finished) == 2)
        assert sorted(echo.finished) == [(50, "reset"), (100, "reset")]


def test_unreachable_target_resets_the_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        target = placeholder.getsockname()[:2]
    with FaultProxy(target) as proxy, pytest.raises(ConnectionResetError):
        connect_and_recv(proxy)


def test_stop_closes_everything_and_leaves_no_threads(echo: Upstream) -> None:
    proxy = FaultProxy(echo.address)
    proxy.latency(0.05)  # knobs work before start too
    proxy.start()
    with connect(proxy) as sock:
        assert rtt(sock) >= 0.09
        proxy.stall(30)
        sock.sendall(b"in flight")
        proxy.stop()
        assert not [t for t in threading.enumerate() if t.name == "faultproxy"]
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(10) == b""
    proxy.stop()  # idempotent
    with pytest.raises(RuntimeError), connect(proxy):
        pass
