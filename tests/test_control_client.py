"""The control-socket client's twins (``ControlClient`` for the CLI, ``AsyncControlClient`` for the
console) give the same answers and raise the same errors: both against one small HTTP server on a
real unix socket in ``DATA/run/control.sock``, in-process (no box)."""

from __future__ import annotations

import asyncio
import gc
import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from appliance.control.client import ApiError, AsyncControlClient, ControlClient, NotRunningError
from appliance.layout import Layout

# path -> (status, content type, body)
ANSWERS: dict[str, tuple[int, str, bytes]] = {
    "/json": (200, "application/json", b'{"ok": true, "n": 3}'),
    "/pem": (200, "application/x-pem-file", b"-----BEGIN CERTIFICATE-----\n"),
    "/refused": (409, "application/json", b'{"detail": "event abc is purged"}'),
    "/invalid": (
        422,
        "application/json",
        json.dumps({"detail": [{"loc": ["body", "pin"], "msg": "too short"}, "junk"]}).encode(),
    ),
    "/crash": (500, "text/plain", b"Internal Server Error"),
    "/empty": (503, "text/plain", b""),
    "/garbled": (200, "application/json", b"{not json"),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, kind, body = ANSWERS[self.path.split("?")[0]]
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = True


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """A data folder whose control socket answers with ``ANSWERS``."""
    sock = Layout(tmp_path.resolve()).control_socket
    sock.parent.mkdir(parents=True)
    server = _Server(str(sock), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="control-socket", daemon=True)
    thread.start()
    yield tmp_path
    server.shutdown()
    server.server_close()
    thread.join(5)


def _sync(data: Path, path: str) -> Any:
    with ControlClient(data, timeout=5) as box:
        return box.request("GET", path)


def _async(data: Path, path: str) -> Any:
    async def call() -> Any:
        async with AsyncControlClient(data) as box:
            return await box.request("GET", path)

    return asyncio.run(call())


TWINS = pytest.mark.parametrize("call", [_sync, _async], ids=["sync", "async"])


@TWINS
def test_answers_are_decoded_alike(data: Path, call: Any) -> None:
    assert call(data, "/json") == {"ok": True, "n": 3}
    assert call(data, "/pem") == "-----BEGIN CERTIFICATE-----\n"


@TWINS
@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/refused", 409, "event abc is purged"),
        ("/invalid", 422, "pin: too short"),
        ("/crash", 500, "Internal Server Error"),
        ("/empty", 503, "Service Unavailable"),
        ("/garbled", 200, "the box sent invalid JSON"),
    ],
)
def test_refusals_are_one_api_error(data: Path, call: Any, path: str, status: int, detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        call(data, path)
    assert (caught.value.status, caught.value.detail, str(caught.value)) == (status, detail, detail)


@TWINS
def test_no_socket_is_not_running(tmp_path: Path, call: Any) -> None:
    with pytest.raises(NotRunningError, match="no shutterbox is running with data folder"):
        call(tmp_path, "/json")


@TWINS
# httpcore's blocking unix-socket connect leaves the refused socket to the garbage collector
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_a_dead_socket_is_not_running(tmp_path: Path, call: Any) -> None:
    sock = Layout(tmp_path.resolve()).control_socket
    sock.parent.mkdir(parents=True)
    server = socketserver.UnixStreamServer(str(sock), _Handler)
    server.server_close()  # the file stays, nobody listens: connection refused
    with pytest.raises(NotRunningError, match=f"start it with: shutterbox up --data {tmp_path}") as caught:
        call(tmp_path, "/json")
    assert caught.value.__cause__ is not None, "the transport's error is kept as the cause"
    del caught
    gc.collect()  # here, under this test's filter, not at the end of the session
