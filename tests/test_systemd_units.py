"""The unit files in systemd/ as systemd itself reads them: ``systemd-analyze verify`` inside a
scratch root laid out as on the appliance (the distribution's units, the service installed in
/etc/systemd/system, shutterbox at /opt/shutterbox/venv/bin), and systemd-sysusers creating the
service account. Plus the promises the box's code relies on (notify, watchdog margin, commands
that exist)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.cli import _parser
from appliance.config import Settings

UNITS = Path(__file__).resolve().parents[1] / "systemd"
SYSTEM_UNITS = Path("/lib/systemd/system")
pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze not installed",
)


def directives(unit: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def appliance_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / "lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS.glob("*.service"):
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    tool = root / "opt/shutterbox/venv/bin/shutterbox"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy("/bin/kill", root / "bin/kill")
    return root


def verify(root: Path, unit: str) -> subprocess.CompletedProcess[str]:
    command = ["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}", unit]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("unit", sorted(p.name for p in UNITS.glob("*.service")))
def test_unit_verifies_cleanly(tmp_path: Path, unit: str) -> None:
    result = verify(appliance_root(tmp_path), f"/etc/systemd/system/{unit}")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", "no warning either"


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    root = appliance_root(tmp_path)
    broken = root / "etc/systemd/system/shutterbox.service"
    broken.write_text(broken.read_text().replace("Type=notify", "Type=notfy"))
    assert "notfy" in verify(root, "/etc/systemd/system/shutterbox.service").stderr


def test_service_matches_what_the_box_does() -> None:
    unit = dict(directives(UNITS / "shutterbox.service"))
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    watchdog = int(unit["WatchdogSec"])
    assert Settings().heartbeat_max_age < watchdog, (
        "a stalled part must stop the pings before systemd gives up"
    )
    commands = set(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for key in ("ExecStartPre", "ExecStart"):
        assert unit[key].split()[1] in commands, unit[key]
    assert unit["User"] == "shutterbox" and unit["StateDirectory"] == "shutterbox"
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert unit["ProtectSystem"] == "strict" and unit["NoNewPrivileges"] == "yes"


def test_sysusers_creates_the_service_account(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers not installed")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(UNITS / "sysusers.d/shutterbox.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    account = next(
        line for line in (root / "etc/passwd").read_text().splitlines() if line.startswith("shutterbox:")
    )
    assert account.split(":")[5:] == ["/var/lib/shutterbox", "/usr/sbin/nologin"]


def test_console_unit_takes_the_screen_as_the_box_account() -> None:
    unit = dict(directives(UNITS / "shutterbox-console.service"))
    assert unit["ExecStart"].split()[1:3] == ["console", "--data"]
    assert unit["User"] == "shutterbox"  # the control socket is 0600, owned by the box's account
    assert unit["TTYPath"] == "/dev/tty1" and unit["StandardInput"] == "tty"
    assert "getty@tty1.service" in unit["Conflicts"]
    assert unit["Restart"] == "always"  # quitting the console never leaves a login prompt
    assert unit["RestrictAddressFamilies"] == "AF_UNIX"  # it reaches nothing but the box
