"""``shutterbox doctor`` against real boxes (issue #18): a healthy box is all OK or SKIP; each thing
that commonly breaks at a venue, broken in turn, is named on its own line with what to do: a busy
passive port, a clock NTP never set (a fake ``timedatectl`` first on the box's PATH answers), a
camera that logged in and never uploaded, a masquerade address not the box's, the disk at its
reserve, an uplink that reaches no S3; with the box stopped, the checks that need it say so."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.boxproc import BoxProcess, free_port, make_box, passive_range, store
from tests.conftest import jpeg_bytes
from tests.test_sync import cloud_box

pytestmark = pytest.mark.e2e

CHECKS = [
    "FTP on the LAN",
    "passive ports",
    "masquerade address",
    "clock",
    "disk reserve",
    "CA certificate",
    "mDNS name",
    "uplink to S3",
    "cameras",
]
FAKE_TIMEDATECTL = (
    '#!/bin/sh\n# answers `timedatectl show -p NTPSynchronized --value`\ncat "$(dirname "$0")/ntp"\n'
)


def fake_clock(folder: Path, synced: str) -> Path:
    """A folder holding a ``timedatectl`` that answers what its ``ntp`` file says."""
    folder.mkdir(parents=True)
    script = folder / "timedatectl"
    script.write_text(FAKE_TIMEDATECTL)
    script.chmod(0o755)
    (folder / "ntp").write_text(synced + "\n")
    return folder


def with_clock(box: BoxProcess, folder: Path) -> BoxProcess:
    box.env["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"
    return box


def doctor(box: BoxProcess) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    """``doctor --json``: its exit status, the answer, and each check by name."""
    result = box.run_cli("doctor", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    answer = json.loads(result.stdout)
    by_name = {c["check"]: c for c in answer["checks"]}
    assert [c["check"] for c in answer["checks"]] == CHECKS
    return result.returncode, answer, by_name


@pytest.fixture(scope="module")
def clock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_clock(tmp_path_factory.mktemp("clock") / "bin", "yes")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory, clock_dir: Path) -> Iterator[BoxProcess]:
    """Listening on every address, as on the venue LAN; cloud sync and mDNS off."""
    data = tmp_path_factory.mktemp("healthy") / "data"
    running = with_clock(make_box(data, ftp__host="0.0.0.0", faces__enabled="false"), clock_dir).start()
    yield running
    assert running.stop() == 0, running.log[-4000:]


def test_a_healthy_box_is_all_ok_or_skip(healthy: BoxProcess) -> None:
    status, answer, checks = doctor(healthy)
    assert status == 0
    assert answer["ok"] is True and answer["box_running"] is True
    assert {name: c["level"] for name, c in checks.items()} == {
        **dict.fromkeys(CHECKS, "OK"),
        "mDNS name": "SKIP",
        "uplink to S3": "SKIP",
    }, answer
    assert checks["uplink to S3"]["text"] == "cloud sync off: skipped"
    assert f":{healthy.ftp_port}" in checks["FTP on the LAN"]["text"]
    assert checks["clock"]["text"].startswith("synchronised by NTP")


def test_the_text_is_one_aligned_line_per_check(healthy: BoxProcess) -> None:
    result = healthy.run_cli("doctor")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header, rows = lines[0], lines[1 : 1 + len(CHECKS)]
    assert header.split() == ["result", "check", "found,", "and", "what", "to", "do"]
    column = header.index("check")
    text = header.index("found")
    for row, name in zip(rows, CHECKS, strict=True):
        assert re.match(r"^(OK|SKIP) +", row), row
        assert row[column:].startswith(name), row
        assert row[text - 2 : text] == "  " and row[text] != " ", row
    assert "nothing found that would stop the cameras" in result.stdout


def test_a_busy_passive_port_is_named(healthy: BoxProcess) -> None:
    low = int(healthy.env["SHUTTERBOX_FTP__PASSIVE_PORTS"].split("-")[0])
    port = low + 3
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        status, _, checks = doctor(healthy)
        passive = checks["passive ports"]
        assert passive["level"] == "WARN", passive
        assert str(port) in passive["text"]
        assert "taken by another program" in passive["text"]
        assert f"pid {os.getpid()}" in passive["text"]
        assert status == 0  # a WARN, not a FAIL: the other ports still carry transfers
    _, _, checks = doctor(healthy)
    assert checks["passive ports"]["level"] == "OK"


def test_a_clock_ntp_never_set_is_named(healthy: BoxProcess, clock_dir: Path) -> None:
    (clock_dir / "ntp").write_text("no\n")
    try:
        _, _, checks = doctor(healthy)
    finally:
        (clock_dir / "ntp").write_text("yes\n")
    assert checks["clock"]["level"] == "WARN"  # cloud sync is off: only the photos' times suffer
    assert "NTP has not synchronised the clock" in checks["clock"]["text"]
    assert doctor(healthy)[2]["clock"]["level"] == "OK"


def test_a_clock_no_one_can_read_is_a_warning(healthy: BoxProcess, clock_dir: Path) -> None:
    (clock_dir / "ntp").write_text("")
    try:
        _, _, checks = doctor(healthy)
    finally:
        (clock_dir / "ntp").write_text("yes\n")
    assert checks["clock"]["level"] == "WARN"
    assert "cannot tell whether NTP set the clock" in checks["clock"]["text"]


def test_a_camera_that_logged_in_and_never_uploaded_is_named(healthy: BoxProcess) -> None:
    event = healthy.new_event("Doctor cameras")
    user, password = healthy.new_key(event, camera="Sony A1 doctor")
    with healthy.ftp(user, password) as client:
        _, _, checks = doctor(healthy)
        cameras = checks["cameras"]
        assert cameras["level"] == "WARN", cameras
        assert f"Sony A1 doctor ({user})" in cameras["text"]
        assert "upload folder" in cameras["text"]
        client.quit()
    assert doctor(healthy)[2]["cameras"]["level"] == "WARN", "the login is remembered after the session"
    with healthy.ftp(user, password) as client:
        assert store(client, "DSC_0001.JPG", jpeg_bytes(seed=77)).startswith("226")
        client.quit()
    assert doctor(healthy)[2]["cameras"]["level"] == "OK"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    """A masquerade address no interface has, a reserve larger than the disk, cloud sync on with an
    endpoint nothing answers on, and NTP that never synchronised."""
    root = tmp_path_factory.mktemp("broken")
    nowhere = f"http://127.0.0.1:{free_port()}"
    box = cloud_box(
        root,
        nowhere,
        nowhere,
        ftp__masquerade_address="10.255.255.1",
        storage__reserve_mb=str(100_000_000),  # 100 TB
        faces__enabled="false",
        cloud__index_faces="false",
    )
    running = with_clock(box, fake_clock(root / "bin", "no")).start()
    yield running
    assert running.stop() == 0, running.log[-4000:]


def test_a_broken_box_names_each_thing_and_fails(broken: BoxProcess) -> None:
    status, answer, checks = doctor(broken)
    assert status == 1 and answer["ok"] is False
    masquerade = checks["masquerade address"]
    assert masquerade["level"] == "FAIL"
    assert "10.255.255.1 is not an address of this box" in masquerade["text"]
    disk = checks["disk reserve"]
    assert disk["level"] == "FAIL"
    assert "cameras are refused (452)" in disk["text"] and "storage.reserve_mb" in disk["text"]
    clock = checks["clock"]
    assert clock["level"] == "FAIL"  # cloud sync is on: S3 refuses a clock off by 15 minutes
    assert "S3 refuses requests signed more than 15 minutes off" in clock["text"]
    uplink = checks["uplink to S3"]
    assert uplink["level"] == "FAIL"
    assert "does not answer on port" in uplink["text"]
    # the loopback-only listener of a test box: cameras on the LAN could not reach it
    lan = checks["FTP on the LAN"]
    assert lan["level"] == "FAIL" and "set ftp.host = 0.0.0.0" in lan["text"]
    text = broken.run_cli("doctor")
    assert text.returncode == 1
    assert re.search(r"^FAIL +masquerade address +ftp\.masquerade_address 10\.255\.255\.1", text.stdout, re.M)
    assert "5 FAIL, 0 WARN" in text.stdout


def test_a_stopped_box_runs_what_it_can_and_says_what_needs_it(tmp_path: Path, clock_dir: Path) -> None:
    box = with_clock(make_box(tmp_path / "data", faces__enabled="false"), clock_dir).start()
    assert box.stop() == 0
    status, answer, checks = doctor(box)
    assert answer["box_running"] is False
    for name in ("FTP on the LAN", "cameras"):
        assert checks[name]["level"] == "SKIP"
        assert checks[name]["text"] == "needs the running box (start it: shutterbox up)"
        assert checks[name]["needs_box"] is True
    for name in ("passive ports", "masquerade address", "clock", "disk reserve", "CA certificate"):
        assert checks[name]["level"] == "OK", checks[name]
    assert status == 0
    text = box.run_cli("doctor")
    assert "(the box is not running: the checks marked SKIP need it)" in text.stdout


def test_another_device_answering_for_the_mdns_name_is_named(tmp_path: Path) -> None:
    """Checked with the box stopped: the name is the one it would advertise."""
    from zeroconf import ServiceInfo, Zeroconf

    name = f"doctor-clash-{os.getpid()}"
    box = make_box(tmp_path / "data", mdns__enabled="true", mdns__name=name, mdns__interfaces='["127.0.0.1"]')
    zc = Zeroconf(interfaces=["127.0.0.1"])
    info = ServiceInfo(
        "_http._tcp.local.",
        f"impostor-{os.getpid()}._http._tcp.local.",
        addresses=[socket.inet_aton("10.1.2.3")],
        port=80,
        server=f"{name}.local.",
    )
    try:
        zc.register_service(info, allow_name_change=True)
        status, _, checks = doctor(box)
    finally:
        zc.unregister_service(info)
        zc.close()
    mdns = checks["mDNS name"]
    assert mdns["level"] == "FAIL", mdns
    assert f"another device answers for {name}.local at 10.1.2.3" in mdns["text"]
    assert "mdns.name" in mdns["text"]
    assert status == 1


# --- the checks themselves, on given facts (what a real box cannot be made to show)


def _settings(**env: Any) -> Any:
    from appliance.config import Settings

    return Settings(**env)


def test_an_expiring_and_an_expired_ca_are_named(tmp_path: Path) -> None:
    import datetime as dt

    from appliance import doctor, pki

    paths = pki.ensure_certificates(tmp_path / "tls", ["shutterbox.local"])
    settings = _settings()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.CA_DAYS - 10)
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.CA_DAYS + 10)
    warned = doctor.ca_certificate(settings, paths.ca_cert.parent, now=soon)
    assert warned.level == "WARN" and "days" in warned.text and "import the new ca.crt" in warned.text
    failed = doctor.ca_certificate(settings, paths.ca_cert.parent, now=late)
    assert failed.level == "FAIL" and "expired on" in failed.text
    assert doctor.ca_certificate(settings, tmp_path / "nowhere").level == "WARN"


def test_a_clock_in_the_past_fails_whatever_ntp_says() -> None:
    import datetime as dt

    from appliance import doctor

    finding = doctor.clock(_settings(), True, now=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    assert finding.level == "FAIL" and "1970-01-01" in finding.text
    assert doctor.ntp_synchronized(lambda args: "yes\n") is True
    assert doctor.ntp_synchronized(lambda args: None) is None


def test_a_public_masquerade_address_may_be_nat() -> None:
    from appliance import doctor
    from appliance.config import FtpSettings

    public = _settings(ftp=FtpSettings(masquerade_address="203.0.113.9"))
    assert doctor.masquerade(public, {"192.168.1.20": "eth0"}).level == "FAIL"  # TEST-NET: not global
    nat = _settings(ftp=FtpSettings(masquerade_address="8.8.4.4"))
    assert doctor.masquerade(nat, {"192.168.1.20": "eth0"}).level == "WARN"
    own = _settings(ftp=FtpSettings(masquerade_address="192.168.1.20"))
    assert (
        doctor.masquerade(own, {"192.168.1.20": "eth0"}).text == "192.168.1.20 is this box's address on eth0"
    )


def test_every_passive_port_taken_fails() -> None:
    from appliance import doctor
    from appliance.config import FtpSettings

    span = passive_range(2)
    low, high = (int(p) for p in span.split("-"))
    with socket.socket() as one, socket.socket() as two:
        for sock, port in ((one, low), (two, high)):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        settings = _settings(ftp=FtpSettings(host="127.0.0.1", passive_ports=span))
        finding = doctor.passive_ports(settings, set())
    assert finding.level == "FAIL" and "every port of" in finding.text
