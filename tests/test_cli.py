"""The ``shutterbox`` command as an operator and a script use it: every command's --json output,
exit codes when the box is not running, read-only fallbacks, check-config, first-start demo."""

from __future__ import annotations

import ftplib
import hashlib
import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.boxproc import SHUTTERBOX, BoxProcess, make_box, store
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.e2e

ALPHABET = set("abcdefghjkmnpqrstuvwxyz23456789")
PHOTO_FIELDS = {"id", "sha256", "size", "original_name", "camera", "function", "state", "received_at"}
KEY_FIELDS = {"username", "event", "function", "camera", "created_at", "revoked_at"}
EXIT_REFUSED, EXIT_NOT_RUNNING, EXIT_CONFIG = 1, 3, 4


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUTTERBOX_")}
    return {**env, **extra}


def _check_config(data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHUTTERBOX, "check-config", "--data", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(**env),
        check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- every command with --json


def test_event_create_and_list(box: BoxProcess) -> None:
    created = box.cli(
        "event", "create", "Wedding Smith", "--function", "Ceremony", "--function", "Reception 2"
    )
    code = created["code"]
    assert len(code) == 8
    assert set(code) <= ALPHABET
    assert created["name"] == "Wedding Smith"
    assert sorted(created["functions"]) == ["ceremony", "reception-2"]
    assert created["demo"] is False

    listed = {e["code"]: e for e in box.cli("event", "list")}
    assert listed[code]["name"] == "Wedding Smith"
    assert sorted(listed[code]["functions"]) == ["ceremony", "reception-2"]


def test_key_create_shows_the_password_once_and_never_logs_it(box: BoxProcess) -> None:
    event = box.cli("event", "create", "keys", "--function", "portraits")["code"]  # declared first
    key = box.cli("key", "create", "--event", event, "--camera", "Canon R3 #2", "--function", "portraits")
    username, password = key["username"], key["password"]
    assert username.startswith(event)
    assert len(password) == 14
    assert set(password) <= ALPHABET
    assert (key["event"], key["camera"], key["function"]) == (event, "Canon R3 #2", "portraits")
    assert key["revoked_at"] is None
    assert "secret_hash" not in key
    assert key["connect"]["port"] == box.ftp_port

    # The password travels through the box (plain and TLS logins, an upload)...
    for tls in (False, True):
        client = box.ftp(username, password, tls=tls)
        try:
            store(client, f"secret-check-{tls}.jpg", jpeg_bytes(seed=200 + tls))
        finally:
            client.close()
    # ...and still is nowhere in the log nor anywhere in the data folder.
    assert password not in box.log
    for path in box.data.rglob("*"):
        if path.is_file() and not path.is_socket():
            assert password.encode() not in path.read_bytes(), f"password found in {path}"


def test_key_list_has_no_secrets(box: BoxProcess) -> None:
    event = box.new_event("key list")
    first = box.cli("key", "create", "--event", event, "--camera", "a")
    second = box.cli("key", "create", "--event", event, "--camera", "b")
    other = box.new_event("other")
    box.cli("key", "create", "--event", other, "--camera", "c")

    result = box.run_cli("key", "list", "--event", event, "--json")
    keys = _json(result)
    assert sorted(k["username"] for k in keys) == sorted([first["username"], second["username"]])
    for key in keys:
        assert set(key) == KEY_FIELDS, key
    for secret in (first["password"], second["password"]):
        assert secret not in result.stdout
    assert "scrypt" not in result.stdout

    everything = box.cli("key", "list")
    assert {first["username"], second["username"]} <= {k["username"] for k in everything}
    assert all("secret_hash" not in k and "password" not in k for k in everything)


def test_key_revoke_sets_revoked_at_and_cuts_sessions(box: BoxProcess) -> None:
    event = box.new_event("revoke")
    username, password = box.new_key(event)
    live = box.ftp(username, password)
    try:
        revoked = box.cli("key", "revoke", username)
    finally:
        live.close()
    assert revoked["username"] == username
    assert revoked["revoked_at"] is not None
    assert revoked["sessions_cut"] == 1

    listed = {k["username"]: k for k in box.cli("key", "list", "--event", event)}
    assert listed[username]["revoked_at"] == revoked["revoked_at"]
    again = ftplib.FTP(timeout=20)
    again.connect("127.0.0.1", box.ftp_port)
    try:
        with pytest.raises(ftplib.error_perm, match=r"^530"):
            again.login(username, password)
    finally:
        again.close()


def test_key_revoke_unknown_key_is_refused(box: BoxProcess) -> None:
    result = box.run_cli("key", "revoke", "nobody-here", "--json")
    assert result.returncode == EXIT_REFUSED
    assert "nobody-here" in result.stderr
    assert "Traceback" not in result.stderr


def test_photos_json_fields(box: BoxProcess) -> None:
    event = box.cli("event", "create", "photos", "--function", "ceremony")["code"]  # declared first
    username, password = box.new_key(event, camera="nikon z8", function="ceremony")
    data = jpeg_bytes(seed=201, exif=True)
    client = box.ftp(username, password)
    try:
        reply = store(client, "DSC_0201.JPG", data)
    finally:
        client.close()

    photos = box.cli("photos", "--event", event)
    assert len(photos) == 1
    photo = photos[0]
    assert set(photo) >= PHOTO_FIELDS
    assert reply.endswith(f"stored as photo {photo['id']}.")
    assert photo["sha256"] == hashlib.sha256(data).hexdigest()
    assert photo["size"] == len(data)
    assert photo["original_name"] == "DSC_0201.JPG"
    assert photo["camera"] == "nikon z8"
    assert photo["function"] == "ceremony"
    assert photo["state"] == "queued"
    assert photo["received_at"]
    assert (photo["make"], photo["model"]) == ("Canon", "Canon EOS R5")
    assert photo["id"] in {p["id"] for p in box.cli("photos")}


def test_photos_for_an_unknown_event_is_refused(box: BoxProcess) -> None:
    result = box.run_cli("photos", "--event", "zzzzzzzz", "--json")
    assert result.returncode == EXIT_REFUSED
    assert "zzzzzzzz" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_json(box: BoxProcess) -> None:
    status = box.cli("status")
    assert status["running"] is True
    assert status["pid"] == box.info["pid"]
    assert status["ftp"]["ports"]["ftp"] == box.ftp_port
    assert status["web_port"] == box.info["web_port"]
    queue = status["queue"]
    assert queue["photos_total"] == sum(queue["photos_by_state"].values())
    assert queue["events"] >= 1
    assert status["disk"]["accepting_uploads"] is True
    assert Path(status["data"]) == box.data.resolve()


def test_rejections_json(box: BoxProcess) -> None:
    event = box.new_event("rejections")
    username, password = box.new_key(event)
    data = jpeg_bytes(seed=202)
    client = box.ftp(username, password)
    try:
        with pytest.raises(ftplib.error_temp, match=r"^451"):
            store(client, "CUT_0001.JPG", data[: len(data) // 3])
    finally:
        client.close()

    rows = [r for r in box.cli("rejections") if r["original_name"] == "CUT_0001.JPG"]
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {
        "id",
        "at",
        "username",
        "event",
        "original_name",
        "size",
        "reason",
        "quarantine_path",
        "resumed_photo_id",
    }
    assert (row["username"], row["event"], row["size"]) == (username, event, len(data) // 3)
    assert row["resumed_photo_id"] is None, "not resumed (yet): it counts as a rejection"
    assert "truncated" in row["reason"]
    assert row["quarantine_path"]
    assert Path(row["quarantine_path"]).read_bytes() == data[: len(data) // 3]
    assert box.cli("photos", "--event", event) == []


# --- text for a person (the same commands' --json is above)


def _column_starts(header: str, names: list[str]) -> list[int]:
    return [header.index(name) for name in names]


def test_listings_line_up_and_say_when_they_are_empty(box: BoxProcess) -> None:
    event = box.new_event("text")
    assert box.run_cli("photos", "--event", event).stdout == f"no photos in event {event}\n"
    assert box.run_cli("deadletters").stdout == "no dead letters\n"
    assert box.run_cli("ledger").stdout == "no billable cloud calls\n"
    assert box.run_cli("ledger", "--event", event).stdout == f"no billable cloud calls for event {event}\n"
    keys = box.run_cli("key", "list", "--event", event)
    assert keys.stdout.startswith(f"no camera keys for event {event}"), keys.stdout
    for command in (("deadletters",), ("ledger",), ("photos", "--event", event)):
        assert box.cli(*command) == [], command  # --json stays a list

    long_name = "a-transmitter-name-" + "x" * 50 + ".JPG"
    for camera, name, seed in (("a", "A.JPG", 210), ("Nikon Z9 body number two", long_name, 211)):
        username, password = box.new_key(event, camera=camera)
        client = box.ftp(username, password)
        try:
            store(client, name, jpeg_bytes(seed=seed))
        finally:
            client.close()
    header, *rows = box.run_cli("photos", "--event", event).stdout.splitlines()
    assert header.split() == ["id", "state", "camera", "name", "size", "sha256"]
    assert len(rows) == 2
    for start in _column_starts(header, ["state", "camera", "name", "sha256"]):
        for row in rows:
            assert row[start - 1] == " " and row[start] != " ", f"misaligned at {start}:\n{header}\n{row}"
    names = [row[header.index("name") :].split()[0] for row in rows]
    assert names[0] == "A.JPG" and names[1].endswith("…") and len(names[1]) == 40, names
    assert long_name not in "\n".join(rows)

    cameras = box.run_cli("cameras").stdout.splitlines()
    assert cameras[0].split()[:3] == ["user", "camera", "state"]
    events = box.run_cli("event", "list").stdout.splitlines()
    assert events[0].split() == ["code", "name", "functions"]
    assert any(line.startswith(f"{event}  text ") for line in events), events


def test_status_text_is_plain_words(box: BoxProcess) -> None:
    result = box.run_cli("status")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["running", "yes"]
    assert not re.search(r"[{}\[\]']|True|False|None", result.stdout), result.stdout
    assert "queue" in lines and "disk" in lines
    assert any(line.split()[:2] == ["accepting", "uploads"] and line.endswith("yes") for line in lines)


def test_key_create_text_keeps_its_line_breaks(box: BoxProcess) -> None:
    event = box.new_event("lines")
    result = box.run_cli("key", "create", "--event", event, "--camera", "Canon\x1b[2J R5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"key for Canon\\x1b[2J R5 ({event}/main)", "control characters escaped"
    assert lines[2].split()[0] == "user" and lines[3].split()[0] == "password", lines


def test_ca_cert_prints_pem(box: BoxProcess) -> None:
    result = box.run_cli("ca-cert")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (box.data / "tls" / "ca.crt").read_text()
    assert result.stdout.startswith("-----BEGIN CERTIFICATE-----")


# --- refusals that must be clear


def test_key_create_for_unknown_event(box: BoxProcess) -> None:
    result = box.run_cli("key", "create", "--event", "zzzzzzzz", "--camera", "x", "--json")
    assert result.returncode == EXIT_REFUSED
    assert "zzzzzzzz" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""

    malformed = box.run_cli("key", "create", "--event", "NOT-A-CODE", "--camera", "x", "--json")
    assert malformed.returncode == EXIT_REFUSED
    assert "event" in malformed.stderr
    assert "Traceback" not in malformed.stderr
    # in words, not pydantic's: no regex, no "String should match pattern"
    assert malformed.stderr == (
        "shutterbox: event: 'NOT-A-CODE' is not an event code: an event code is 8 characters"
        " from abcdefghjkmnpqrstuvwxyz23456789 (HTTP 422)\n"
    )


@pytest.mark.parametrize(
    "command",
    [
        ("event", "create", "x"),
        ("event", "list"),
        ("key", "create", "--event", "abcdefgh", "--camera", "x"),
        ("key", "list"),
        ("key", "revoke", "someone"),
        ("rejections",),
        ("ca-cert",),
        ("photos",),
        ("status",),
    ],
)
def test_commands_fail_clearly_without_a_box(tmp_path: Path, command: tuple[str, ...]) -> None:
    nobox = make_box(tmp_path / "nobox")
    result = nobox.run_cli(*command, "--json")
    assert result.returncode == EXIT_NOT_RUNNING, (result.stdout, result.stderr)
    assert str(nobox.data) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_photos_and_status_work_read_only_when_stopped(fresh_box: BoxProcess) -> None:
    fresh_box.start()
    event = fresh_box.new_event("offline")
    username, password = fresh_box.new_key(event)
    frames = [jpeg_bytes(seed=203), jpeg_bytes(seed=204)]
    client = fresh_box.ftp(username, password)
    try:
        for index, data in enumerate(frames):
            store(client, f"OFF_{index}.JPG", data)
    finally:
        client.close()
    online = fresh_box.cli("photos", "--event", event)
    assert fresh_box.stop() == 0

    offline = fresh_box.cli("photos", "--event", event)
    # the face index may have finished a photo between the two reads
    moving = ("faces_state", "searchable_local_at", "proxy_path")

    def settled(photos: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in p.items() if k not in moving} for p in photos]

    assert settled(offline) == settled(online)
    assert [p["sha256"] for p in offline] == [hashlib.sha256(d).hexdigest() for d in frames]
    assert {p["id"] for p in fresh_box.cli("photos")} >= {p["id"] for p in online}

    unknown = fresh_box.run_cli("photos", "--event", "zzzzzzzz", "--json")
    assert unknown.returncode == EXIT_REFUSED and "zzzzzzzz" in unknown.stderr, "same answer as online"

    status = fresh_box.cli("status")
    assert status["running"] is False
    assert status["queue"]["photos_total"] == 2
    assert status["queue"]["photos_by_state"] == {"queued": 2}

    # the CA certificate is on the disk: cameras can be set up with the box stopped
    ca = fresh_box.run_cli("ca-cert")
    assert (ca.returncode, ca.stdout) == (0, (fresh_box.data / "tls" / "ca.crt").read_text()), ca.stderr

    # ...while commands that change state say the box is not running.
    result = fresh_box.run_cli("event", "create", "late")
    assert result.returncode == EXIT_NOT_RUNNING
    assert str(fresh_box.data) in result.stderr


def test_photos_readable_after_a_crash(fresh_box: BoxProcess) -> None:
    fresh_box.start()
    event = fresh_box.new_event("crashed")
    username, password = fresh_box.new_key(event)
    data = jpeg_bytes(seed=205)
    client = fresh_box.ftp(username, password)
    try:
        store(client, "CRASH.JPG", data)
    finally:
        client.close()
    fresh_box.kill9()

    photos = fresh_box.cli("photos", "--event", event)
    assert [p["sha256"] for p in photos] == [hashlib.sha256(data).hexdigest()]
    assert fresh_box.cli("status")["running"] is False
    result = fresh_box.run_cli("key", "list")
    assert result.returncode == EXIT_NOT_RUNNING
    assert str(fresh_box.data) in result.stderr


# --- check-config


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[ftp]\nport = 2121\ncolour = "red"\n', "ftp.colour"),
        ("[nope]\nx = 1\n", "nope"),
        ("loglevel = 'DEBUG'\n", "loglevel"),
    ],
)
def test_check_config_unknown_toml_key(tmp_path: Path, toml: str, named: str) -> None:
    (tmp_path / "shutterbox.toml").write_text(toml)
    result = _check_config(tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_check_config_bad_value_is_named(tmp_path: Path) -> None:
    (tmp_path / "shutterbox.toml").write_text("[ftp]\nport = 70000\n")
    result = _check_config(tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "ftp.port" in result.stderr


def test_check_config_broken_toml(tmp_path: Path) -> None:
    (tmp_path / "shutterbox.toml").write_text("[ftp\nport = \n")
    result = _check_config(tmp_path)
    assert result.returncode == EXIT_CONFIG
    assert "shutterbox.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_unknown_section_env_var(tmp_path: Path) -> None:
    result = _check_config(tmp_path, SHUTTERBOX_FTP__NOPE="1")
    assert result.returncode == EXIT_CONFIG
    assert "ftp.nope" in result.stderr.lower()


def test_check_config_unknown_top_level_env_var(tmp_path: Path) -> None:
    # config.py: "Unknown keys anywhere are an error that names the key" - a typo in a
    # variable name must not be silently ignored.
    result = _check_config(tmp_path, SHUTTERBOX_LOG_LEVL="DEBUG")
    assert result.returncode == EXIT_CONFIG, result.stdout[:200]
    assert "log_levl" in result.stderr.lower()


def test_check_config_valid_toml(tmp_path: Path) -> None:
    (tmp_path / "shutterbox.toml").write_text("[ftp]\nport = 2200\n")
    settings = _json(_check_config(tmp_path))
    assert settings["ftp"]["port"] == 2200

    text = subprocess.run(
        [SHUTTERBOX, "check-config", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        check=False,
    )
    assert text.returncode == 0
    assert "configuration OK" in text.stdout


def test_check_config_env_overrides_toml(tmp_path: Path) -> None:
    (tmp_path / "shutterbox.toml").write_text("[ftp]\nport = 2200\nmax_connections = 77\n")
    settings = _json(_check_config(tmp_path, SHUTTERBOX_FTP__PORT="2300"))
    assert settings["ftp"]["port"] == 2300
    assert settings["ftp"]["max_connections"] == 77  # the rest of the section still comes from the file


def test_up_refuses_to_start_with_bad_config(tmp_path: Path) -> None:
    bad = make_box(tmp_path / "data")
    bad.data.mkdir()
    (bad.data / "shutterbox.toml").write_text('[ftp]\ncolour = "red"\n')
    result = subprocess.run(
        [SHUTTERBOX, "up", "--data", str(bad.data)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **bad.env},
        check=False,
    )
    assert result.returncode == EXIT_CONFIG
    assert "ftp.colour" in result.stderr
    assert not (bad.data / "run" / "box.json").exists()


# --- first start


def _read_until(fd: int, pattern: re.Pattern[bytes], timeout: float = 30.0) -> re.Match[bytes]:
    """Read a terminal's output until ``pattern`` matches it."""
    output = b""
    deadline = time.monotonic() + timeout
    while (found := pattern.search(output)) is None:
        assert time.monotonic() < deadline, f"not printed on the terminal: {output.decode(errors='replace')}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                output += os.read(fd, 4096)
            except OSError:  # EIO: the box closed the terminal (it exited)
                raise AssertionError(f"box exited: {output.decode(errors='replace')}") from None
    return found


def start_on_terminal(box: BoxProcess) -> int:
    """Start ``box`` (a fresh data folder) with its stdout on a new terminal, as an operator who
    runs ``shutterbox up`` in one; the terminal's side to read (close it when done)."""
    box.data.mkdir(parents=True)
    master, terminal = pty.openpty()
    try:
        with (box.data / "box.log").open("ab") as log:
            box.proc = subprocess.Popen(
                [SHUTTERBOX, "up", "--data", str(box.data)],
                env={**os.environ, **box.env},
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=log,
            )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(terminal)
    return master


def test_a_terminal_closed_during_start_up_does_not_stop_the_box(fresh_box: BoxProcess) -> None:
    """An operator's SSH session that drops while ``shutterbox up`` starts: the banner has
    nowhere to go (EIO), and the box must serve anyway (CI14 caught it as "cannot start:
    [Errno 5] Input/output error" when a test closed its terminal a moment early)."""
    os.close(start_on_terminal(fresh_box))  # gone before the banner is written
    box_json = fresh_box.data / "run" / "box.json"
    deadline = time.monotonic() + 60
    while not box_json.exists():
        assert fresh_box.proc is not None and fresh_box.proc.poll() is None, fresh_box.log[-2000:]
        assert time.monotonic() < deadline, "box.json never appeared"
        time.sleep(0.05)
    fresh_box.info = json.loads(box_json.read_text())
    assert any(e["demo"] for e in fresh_box.cli("event", "list"))
    assert "the terminal is gone" in fresh_box.log
    assert fresh_box.stop() == 0


def test_first_start_prints_working_demo_credentials_on_a_terminal(fresh_box: BoxProcess) -> None:
    master = start_on_terminal(fresh_box)
    try:
        banner = _read_until(
            master, re.compile(rb"created demo event (\w+).*?user (\S+)\s+password (\w+)", re.S)
        )
        box_json = fresh_box.data / "run" / "box.json"  # written once start-up is complete
        deadline = time.monotonic() + 20
        while not box_json.exists():
            assert time.monotonic() < deadline, "box.json never appeared"
            time.sleep(0.05)
        fresh_box.info = json.loads(box_json.read_text())
        code, username, password = (part.decode() for part in banner.groups())
        assert username.startswith(code)

        events = {e["code"]: e for e in fresh_box.cli("event", "list")}
        assert events[code]["demo"] is True
        client = fresh_box.ftp(username, password)
        try:
            reply = store(client, "DEMO.JPG", jpeg_bytes(seed=206))
        finally:
            client.close()
        assert reply.startswith("226"), reply
        assert [p["camera"] for p in fresh_box.cli("photos", "--event", code)] == ["demo camera"]
        assert password not in fresh_box.log  # stderr (the log) never had it
        assert fresh_box.stop() == 0
    finally:
        os.close(master)


def test_first_start_without_a_terminal_keeps_the_password_out(box: BoxProcess) -> None:
    # box.log is the box's stdout and stderr, as under systemd (journal): no terminal.
    deadline = time.monotonic() + 20
    while (announced := re.search(r"created demo event (\w+)(.*?)={64}", box.log, re.S)) is None:
        assert time.monotonic() < deadline, box.log[-2000:]
        time.sleep(0.1)
    log = box.log
    code = announced.group(1)
    events = {e["code"]: e for e in box.cli("event", "list")}
    assert events[code]["demo"] is True
    [demo_key] = box.cli("key", "list", "--event", code)
    assert demo_key["username"] in log
    assert re.search(r"password\s+[a-z2-9]{14}\b", log) is None, "a demo password was printed to the log"
    assert f"key create --event {code}" in log  # ...and the operator is told how to make a key


def test_first_start_banner_only_once(fresh_box: BoxProcess) -> None:
    fresh_box.start()
    assert fresh_box.stop() == 0
    fresh_box.start()
    assert fresh_box.log.count("First start:") == 1
    assert len([e for e in fresh_box.cli("event", "list") if e["demo"]]) == 1
