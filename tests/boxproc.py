"""A real shutterbox process for tests: ``shutterbox up`` in a subprocess on loopback ports,
plus helpers that drive it the way an operator and a camera would (CLI, ftplib)."""

from __future__ import annotations

import ftplib
import functools
import io
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHUTTERBOX = str(BIN / "shutterbox")
_ranges = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def passive_range(size: int = 40) -> str:
    """A fresh, currently free passive range per box, so boxes (and parallel test runs) never
    share ports: a data connection must reach the box that announced it."""
    rng = random.Random(os.getpid() * 1000 + next(_ranges))
    for _ in range(200):
        low = rng.randrange(20000, 32000 - size)
        if all(_bindable(port) for port in range(low, low + size)):
            return f"{low}-{low + size - 1}"
    raise RuntimeError("no free passive port range found")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class BoxProcess:
    data: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    env_cache: dict[str, str] = field(default_factory=dict)
    # The face model already converted in the data folder, as the SD-card image's build leaves it:
    # converting it at first start costs ~1.2 s of each fresh box. False: the box converts it
    # itself (test_faces_process checks that first start).
    converted_model: bool = True

    @property
    def ftp_port(self) -> int:
        return int(self.info["ftp_port"])

    @property
    def log(self) -> str:
        path = self.data / "box.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 60.0) -> BoxProcess:  # face worker processes start before "ready"
        box_json = self.data / "run" / "box.json"
        box_json.unlink(missing_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        if self.converted_model:
            _give_converted_model(self.data / "models")
        env = {**os.environ, **self.env}
        with (self.data / "box.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [SHUTTERBOX, "up", "--data", str(self.data)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not box_json.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"box exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"box did not start:\n{self.log}")
            time.sleep(0.05)
        self.info = json.loads(box_json.read_text())
        return self

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cli(self, *args: str, check: bool = True) -> Any:
        """Run a CLI command with --json against this box; returns parsed JSON."""
        result = self.run_cli(*args, "--json")
        if check and result.returncode != 0:
            raise AssertionError(f"shutterbox {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return json.loads(result.stdout) if result.stdout.strip() else None

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SHUTTERBOX, *args, "--data", str(self.data)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **self.env},
            check=False,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def control(self, timeout: float = 60) -> httpx.Client:
        """An httpx client of the box's control socket: the API the CLI and the console use,
        without starting a CLI process (~0.4 s each) for a test's setup."""
        transport = httpx.HTTPTransport(uds=str(self.data / "run" / "control.sock"))
        return httpx.Client(transport=transport, base_url="http://shutterbox", timeout=timeout)

    def _api(self, method: str, path: str, expected: int, **request: Any) -> Any:
        """One control-socket request; anything but ``expected`` fails the test, in its words."""
        with self.control() as client:
            response = client.request(method, path, **request)
        if response.status_code != expected:
            raise AssertionError(f"{method} {path} {request}: {response.status_code} {response.text}")
        return response.json()

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._api("POST", path, 201, json=body))

    def new_event(self, name: str = "Test event") -> str:
        """A new event (through the control socket while the box runs; the CLI when it does not)."""
        if not self.running:
            return str(self.cli("event", "create", name)["code"])
        return str(self._create("/api/events", {"name": name})["code"])

    def new_key(
        self, event: str | None = None, camera: str = "cam", function: str = "main"
    ) -> tuple[str, str]:
        event = event or self.new_event()
        if not self.running:
            key = self.cli("key", "create", "--event", event, "--camera", camera, "--function", function)
        else:
            key = self._create("/api/keys", {"event": event, "camera": camera, "function": function})
        return key["username"], key["password"]

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self._api("GET", path, 200, params=params)

    def photos(self, event: str | None = None) -> list[dict[str, Any]]:
        """What ``shutterbox photos --json`` prints (read through the control socket while the box
        runs: tests poll it; the CLI, which reads the database, when it does not)."""
        if not self.running:
            return list(self.cli(*(["photos"] + (["--event", event] if event else []))))
        return list(self._get("/api/photos", {"event": event} if event else None))

    def status(self) -> dict[str, Any]:
        """What ``shutterbox status --json`` prints (through the control socket while the box
        runs: tests poll it)."""
        if not self.running:
            return dict(self.cli("status"))
        return {"running": True, **self._get("/api/status")}

    def rejections(self) -> list[dict[str, Any]]:
        return list(self._get("/api/rejections") if self.running else self.cli("rejections"))

    def ftp(self, user: str, password: str, *, tls: bool = False, timeout: float = 20) -> ftplib.FTP:
        client: ftplib.FTP = ftplib.FTP_TLS(timeout=timeout) if tls else ftplib.FTP(timeout=timeout)
        try:
            client.connect("127.0.0.1", self.ftp_port)
            if isinstance(client, ftplib.FTP_TLS):
                client.auth()
                client.login(user, password)
                client.prot_p()
            else:
                client.login(user, password)
        except BaseException:
            client.close()  # a box killed mid-login must not leave the socket to the collector
            raise
        return client

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.info['admin_port']}"

    def admin_token(self, *, fresh: bool = False) -> str:
        """The admin API's bearer token (every TCP client needs it, loopback included): made
        once per box, or again with ``fresh`` (after a test rotated or revoked it itself)."""
        if fresh or "admin_token" not in self.env_cache:
            self.env_cache["admin_token"] = str(self.cli("admin-token", "rotate")["token"])
        return self.env_cache["admin_token"]

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token()}"}

    def admin_api(self, timeout: float = 60) -> httpx.Client:
        """An httpx client of the admin API over loopback TCP, with the box's current token."""
        box = self

        class _Bearer(httpx.Auth):
            def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
                request.headers["Authorization"] = f"Bearer {box.admin_token()}"
                yield request

        return httpx.Client(base_url=self.admin_url, auth=_Bearer(), timeout=timeout)

    def jail(self, user: str) -> Path:
        return self.data / "ftp" / user


_MODELS = Path(tempfile.gettempdir()) / f"shutterbox-test-models-{os.getuid()}"


@functools.cache
def _converted_model() -> Path:
    """One conversion shared by every test (written atomically, so parallel test workers
    converting at once are safe); found once per test process (it hashes the 22 MB .dat)."""
    from appliance.faces.dlibnet import ensure_model
    from appliance.faces.engine import RESNET_DAT, models_dir

    return ensure_model(models_dir() / RESNET_DAT, _MODELS)


@functools.cache
def _derived_proposer() -> Path:
    """The face proposal model, derived once for every test, as ``_converted_model``."""
    from appliance.faces.regions import ensure_proposer

    return ensure_proposer(_MODELS)


def _give_converted_model(folder: Path) -> None:
    """The converted face models (the ResNet and the proposal model) in ``folder``, hard-linked
    from ``_converted_model`` and ``_derived_proposer``."""
    folder.mkdir(parents=True, exist_ok=True)
    for model in (_converted_model(), _derived_proposer()):
        target = folder / model.name
        if not target.exists():
            try:
                os.link(model, target)
            except OSError:  # another file system
                shutil.copyfile(model, target)


def make_box(tmp: Path, **settings: str) -> BoxProcess:
    env = {
        "SHUTTERBOX_FTP__HOST": "127.0.0.1",
        "SHUTTERBOX_FTP__PORT": "0",
        "SHUTTERBOX_FTP__PASSIVE_PORTS": passive_range(),
        "SHUTTERBOX_WEB__HOST": "127.0.0.1",
        "SHUTTERBOX_WEB__PORT": "0",
        "SHUTTERBOX_ADMIN__PORT": "0",
        "SHUTTERBOX_STORAGE__RESERVE_MB": "64",
        # the storage policy deletes synced originals when the disk runs low: off unless a test asks
        "SHUTTERBOX_STORAGE__EVICT_BELOW_MB": "0",
        "SHUTTERBOX_MDNS__ENABLED": "false",  # test boxes stay off the LAN (test_mdns turns it on)
    }
    env.update({f"SHUTTERBOX_{k.upper()}": v for k, v in settings.items()})
    return BoxProcess(tmp, env)


def store(client: ftplib.FTP, name: str, data: bytes) -> str:
    """STOR and return the final reply (raises ftplib.error_* on a 4xx/5xx)."""
    return client.storbinary(f"STOR {name}", io.BytesIO(data))
