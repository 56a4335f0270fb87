"""A hostile neighbour on the venue LAN, and a second local account, against a real box.

Every attack is bounded in count and time and aimed at loopback addresses only (127.0.0.0/8
gives each emulated LAN host an address of its own). The box runs at a low file limit
(``prlimit`` on its process) so that running out of handles is reachable.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
import resource
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import camera_jpeg, jpeg_bytes

pytestmark = pytest.mark.e2e

BOX_FILE_LIMIT = 768  # the box's own soft and hard limit for these tests
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's lives under /root, which another account cannot read


@pytest.fixture(scope="module", autouse=True)
def _many_client_sockets() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


def _limit_files(box: BoxProcess, limit: int = BOX_FILE_LIMIT) -> None:
    assert box.proc is not None
    if shutil.which("prlimit") is None:
        pytest.fail("prlimit is not installed (util-linux)")
    subprocess.run(["prlimit", f"--pid={box.proc.pid}", f"--nofile={limit}:{limit}"], check=True)


@pytest.fixture(scope="module")
def flood_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    running = make_box(
        tmp_path_factory.mktemp("flood") / "data",
        faces__enabled="false",
        web__header_timeout="3",
    ).start()
    _limit_files(running)
    yield running
    code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


def _lan_socket(address: str, port: int) -> socket.socket | None:
    sock = socket.socket()
    sock.settimeout(5)
    try:
        sock.bind((address, 0))
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def _camera_uploads(box: BoxProcess, user: str, password: str, seed: int) -> str:
    with box.ftp(user, password) as ftp:
        return store(ftp, f"DSC_{seed:05d}.JPG", jpeg_bytes(seed=seed))


def _admin_status(box: BoxProcess) -> int:
    with box.admin_api(timeout=10) as api:
        return api.get("/api/status").status_code


def _web_health(box: BoxProcess) -> int:
    return httpx.get(f"http://127.0.0.1:{box.info['web_port']}/healthz", timeout=10).status_code


def test_idle_web_flood_keeps_cameras_and_admin_working(flood_box: BoxProcess) -> None:
    user, password = flood_box.new_key(camera="flooded")
    port = int(flood_box.info["web_port"])
    held: list[socket.socket] = []
    try:
        for i in range(1100):  # 20 LAN hosts, 55 idle sockets each
            sock = _lan_socket(f"127.0.9.{10 + i % 20}", port)
            if sock is not None:
                held.append(sock)
        assert len(held) >= 1000, "premise: the flood's sockets connected"
        # during the flood: frames land, the operator's API answers
        assert _camera_uploads(flood_box, user, password, 1).startswith("226")
        assert _admin_status(flood_box) == 200
        # the box keeps its handles: it holds no more web connections than its cap
        box_fds = psutil.Process(flood_box.proc.pid).num_fds() if flood_box.proc else 0
        assert box_fds < BOX_FILE_LIMIT - 100, box_fds
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert _camera_uploads(flood_box, user, password, 2).startswith("226")
    assert _admin_status(flood_box) == 200
    assert _web_health(flood_box) == 200
    assert [p["original_name"] for p in flood_box.photos() if p["username"] == user] == [
        "DSC_00001.JPG",
        "DSC_00002.JPG",
    ]
    assert flood_box.proc is not None and flood_box.proc.poll() is None


def test_half_sent_requests_are_closed_at_the_header_deadline(flood_box: BoxProcess) -> None:
    port = int(flood_box.info["web_port"])
    slow: list[socket.socket] = []
    try:
        for i in range(300):
            sock = _lan_socket(f"127.0.8.{10 + i % 20}", port)
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: box\r\nX-Slow: ")  # never finished
            slow.append(sock)
        assert len(slow) >= 250
        time.sleep(3 + 2)  # web.header_timeout is 3 s here
        still_open = 0
        for sock in slow:
            sock.settimeout(0.2)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                still_open += 1  # nothing came and the connection is still up
                continue
            except OSError:
                continue
            if data and not data.startswith(b"HTTP/1.1 503"):
                still_open += 1
        assert still_open == 0, f"{still_open} half-sent requests still held after the deadline"
    finally:
        for sock in slow:
            sock.close()
    assert _web_health(flood_box) == 200


def test_the_box_raises_its_soft_file_limit_to_the_hard_one(search_box: BoxProcess) -> None:
    # the box inherits this process's soft limit (the fixture above set it to 8192 at most)
    inherited_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert search_box.proc is not None
    soft, box_hard = psutil.Process(search_box.proc.pid).rlimit(psutil.RLIMIT_NOFILE)
    assert box_hard == hard
    assert soft == box_hard, f"soft {soft} < hard {box_hard} (inherited soft {inherited_soft})"
    assert f"file-handle limit {soft}" in search_box.log


# --- a second local account


@pytest.fixture(scope="module")
def shared_box() -> Iterator[BoxProcess]:
    """A box whose data folder other accounts could traverse (as a careless setup might leave
    it), so that only the socket's mode and the uid check stand between them and the socket."""
    base = Path(f"/tmp/shutterbox-peer-{os.getpid()}")
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(mode=0o755)
    running = make_box(base / "data", faces__enabled="false").start()
    yield running
    running.stop()
    shutil.rmtree(base, ignore_errors=True)


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEM_PYTHON, "-c", code],
        user=NOBODY,
        group=NOBODY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
    )


def test_a_second_local_account_gets_nothing_from_the_admin_api(shared_box: BoxProcess) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as another account")
    with shared_box.admin_api() as api:
        schema = api.get("/openapi.json").json()
    routes = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, item in schema["paths"].items()
        for method in item
    ]
    assert len(routes) > 20
    port = shared_box.info["admin_port"]
    probe = f"""
import http.client, json
def ask(method, path, headers={{}}):
    c = http.client.HTTPConnection("127.0.0.1", {port}, timeout=30)
    c.request(method, path, headers=headers)
    status = c.getresponse().status
    c.close()
    return status
out = {{m + " " + p: ask(m, p) for m, p in {routes!r}}}
out["forged"] = ask("GET", "/api/status", {{"Authorization": "Bearer sbx_" + "A" * 43}})
print(json.dumps(out))
"""
    result = _as_nobody(probe)
    assert result.returncode == 0, result.stderr
    import json

    answers = json.loads(result.stdout)
    assert answers, "premise: the probe ran"
    allowed = {k: v for k, v in answers.items() if v not in (401, 403)}
    assert allowed == {}, f"routes that answered another account: {allowed}"

    # the control socket: its mode refuses the connect; with the mode loosened the uid check does
    sock_path = shared_box.data / "run" / "control.sock"
    run_dir = sock_path.parent
    socket_probe = f"""
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect("{sock_path}")
except OSError as exc:
    print("refused", exc.errno)
else:
    try:
        s.sendall(b"GET /api/status HTTP/1.1\\r\\nHost: shutterbox\\r\\n\\r\\n")
        print("answer", repr(s.recv(200)))
    except OSError:
        print("answer b''")  # closed by the box before it read a byte
"""
    os.chmod(shared_box.data, 0o755)
    os.chmod(run_dir, 0o755)
    try:
        first = _as_nobody(socket_probe)
        assert first.stdout.startswith("refused"), first.stdout + first.stderr
        os.chmod(sock_path, 0o666)
        second = _as_nobody(socket_probe)
        assert second.stdout.strip() == "answer b''", second.stdout + second.stderr
        assert "control socket: refused a client of uid 65534" in shared_box.log
    finally:
        os.chmod(sock_path, 0o600)
        os.chmod(run_dir, 0o700)
        os.chmod(shared_box.data, 0o700)
    # the box's own account still drives it
    assert shared_box.status()["running"] is True


def test_admin_api_refuses_a_foreign_host_and_sends_no_cors(shared_box: BoxProcess) -> None:
    with shared_box.admin_api() as api:
        rebound = api.get("/api/status", headers={"Host": "evil.example"})
        assert rebound.status_code == 421, rebound.text
        ok = api.get("/api/status", headers={"Origin": "http://evil.example"})
        assert ok.status_code == 200
        assert not any(h.lower().startswith("access-control-") for h in ok.headers)
        preflight = api.options("/api/status", headers={"Origin": "http://evil.example"})
        assert not any(h.lower().startswith("access-control-") for h in preflight.headers)


# --- memory under a burst of big selfies


@pytest.fixture(scope="module")
def search_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    running = make_box(
        tmp_path_factory.mktemp("burst") / "data",
        guest__searches_per_minute="100",
    ).start()
    yield running
    code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


def _tree_rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 1e6


def test_thirty_big_searches_at_once_keep_the_box_under_budget(search_box: BoxProcess) -> None:
    assert search_box.proc is not None
    event = search_box.new_event("burst")
    port = int(search_box.info["web_port"])
    selfie = camera_jpeg(19_900_000, seed=77)
    time.sleep(3)
    idle = _tree_rss_mb(search_box.proc.pid)
    peak = idle
    answers: list[int] = []
    lock = threading.Lock()

    def phone(i: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.7.{10 + i}")
        with httpx.Client(transport=transport, timeout=120) as client:
            reply = client.post(
                f"http://127.0.0.1:{port}/api/events/{event}/search",
                files={"selfie": ("me.jpg", io.BytesIO(selfie), "image/jpeg")},
            )
        with lock:
            answers.append(reply.status_code)

    phones = [threading.Thread(target=phone, args=(i,)) for i in range(30)]
    for thread in phones:
        thread.start()
    while any(t.is_alive() for t in phones):
        peak = max(peak, _tree_rss_mb(search_box.proc.pid))
        time.sleep(0.1)
    for thread in phones:
        thread.join()
    assert len(answers) == 30
    assert all(code in (200, 400, 422, 503) for code in answers), answers  # never a 5xx crash
    assert peak < 600, f"box tree peaked at {peak:.0f} MB (idle {idle:.0f} MB)"
    deadline = time.monotonic() + 60
    after = _tree_rss_mb(search_box.proc.pid)
    while after > idle + 50 and time.monotonic() < deadline:
        time.sleep(1)
        after = _tree_rss_mb(search_box.proc.pid)
    assert after <= idle + 50, f"{after:.0f} MB a minute after the burst (idle {idle:.0f} MB)"
    assert _web_health(search_box) == 200


def test_ftp_camera_logs_in_past_the_pre_login_sockets(flood_box: BoxProcess) -> None:
    user, password = flood_box.new_key(camera="past-prelogin")
    held: list[socket.socket] = []
    try:
        for i in range(300):
            sock = _lan_socket(f"127.0.6.{10 + i % 20}", flood_box.ftp_port)
            if sock is not None:
                held.append(sock)
        client = ftplib.FTP(timeout=20)
        client.connect("127.0.0.1", flood_box.ftp_port)
        try:
            client.login(user, password)
            assert store(client, "PRE_0001.JPG", jpeg_bytes(seed=9)).startswith("226")
        finally:
            client.close()
    finally:
        for sock in held:
            sock.close()


def test_escape_sequences_in_a_camera_file_name_never_reach_a_terminal(flood_box: BoxProcess) -> None:
    user, password = flood_box.new_key(camera="escaper")
    name = "\x1b[31mRED\x1b]0;owned\x07\x9b2J.jpg"
    with flood_box.ftp(user, password) as ftp:
        ftp.encoding = "utf-8"
        assert store(ftp, name, jpeg_bytes(seed=31)).startswith("226")
    text = flood_box.run_cli("photos").stdout
    assert "RED" in text
    assert not any(ch in text for ch in "\x1b\x07\x9b"), repr(text)
    assert "\\x1b[31mRED" in text
    with flood_box.admin_api() as api:
        logs = api.get("/api/logs").text  # JSON: control characters escaped by the encoder
    assert "\x1b" not in logs and "\x9b" not in logs
    assert "\x1b" not in flood_box.log and "\x9b" not in flood_box.log


def test_banning_loopback_does_not_stall_the_box(tmp_path: Path) -> None:
    # The watchdog's FTP probe connects from loopback; a local account that gets loopback banned
    # (wrong passwords) must not make the box look dead, or systemd would restart it for them.
    box = make_box(tmp_path / "data", faces__enabled="false", ftp__ban_threshold="2", heartbeat_max_age="4")
    box.start()
    try:
        user, _ = box.new_key(camera="victim")
        for _ in range(3):
            client = ftplib.FTP(timeout=10)
            try:
                client.connect("127.0.0.1", box.ftp_port)
                with contextlib.suppress(ftplib.Error, EOFError, OSError):
                    client.login(user, "wrong-password")
            except (ftplib.Error, EOFError, OSError):
                pass
            finally:
                client.close()
        assert "127.0.0.1" in box.status()["ftp"]["banned_ips"], "premise: loopback is banned"
        time.sleep(4 + 3)  # past heartbeat_max_age, probes every 2 s
        assert box.status()["stalled"] == []
    finally:
        box.stop()
