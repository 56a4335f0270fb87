"""The operator console (``tui``) driven with Textual's Pilot at 80x24 against a real running box:
frames sent over FTP show on the dashboard and in the cameras table; events, camera keys and
revocations made through the UI are real on the box; dead letters are retried and discarded;
the console survives the box restarting under it. Snapshots pin the layout of screens whose
content is fixed (or masked) before the picture is taken."""

from __future__ import annotations

import copy
import datetime as dt
import ftplib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, RadioButton, RadioSet, RichLog, Select

from tests.boxproc import BoxProcess, store
from tests.conftest import jpeg_bytes
from tui.app import ConsoleApp
from tui.camera_setup import BRANDS, fingerprint, guess_brand, setup
from tui.qr import qr_text
from tui.screens.base import BoxScreen
from tui.screens.dashboard import DashboardScreen, footer_line
from tui.screens.deadletters import DeadLettersScreen
from tui.screens.forms import AddCameraForm, EventLookForm, NewEventForm
from tui.screens.help import HelpScreen
from tui.screens.logs import LogsScreen
from tui.screens.setup import CameraSetupScreen
from tui.status import fmt_when
from tui.widgets import BoxTable, spark_text

pytestmark = pytest.mark.e2e

SIZE = (80, 24)
FAST = 0.3  # poll interval for Pilot tests (the console polls every 2 s)


def screen_text(app: ConsoleApp) -> str:
    """What the terminal shows right now, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def until(pilot: Pilot[Any], what: str, check: Callable[[], Any], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{screen_text(pilot.app)}"
        await pilot.pause(0.1)


async def shows(pilot: Pilot[Any], *texts: str, seconds: float = 30) -> None:
    await until(
        pilot, f"{texts!r} on screen", lambda: all(t in screen_text(pilot.app) for t in texts), seconds
    )


async def matches(pilot: Pilot[Any], pattern: str, seconds: float = 30) -> None:
    await until(pilot, f"/{pattern}/ on screen", lambda: re.search(pattern, screen_text(pilot.app)), seconds)


async def select_row(pilot: Pilot[Any], key: str) -> None:
    """Move the visible table's cursor onto the row ``key`` with the arrow keys."""
    table = pilot.app.screen.query_one(BoxTable)
    await until(pilot, f"row {key}", lambda: key in {str(k.value) for k in table.rows})
    await pilot.press("home")
    for _ in range(table.get_row_index(key)):
        await pilot.press("down")
    assert table.selected == key


def ftp_login_fails(box: BoxProcess, user: str, password: str) -> bool:
    with ftplib.FTP(timeout=20) as client:
        client.connect("127.0.0.1", box.ftp_port)
        try:
            client.login(user, password)
        except ftplib.error_perm as exc:
            return str(exc).startswith("530")
    return False


# --- the dashboard and the cameras table follow real uploads


@pytest.mark.asyncio
async def test_dashboard_and_cameras_follow_an_ftp_upload(box: BoxProcess) -> None:
    event = box.new_event("Console upload")
    user, password = box.new_key(event, camera="Nikon [Z9] console")
    before = box.status()["queue"]["photos_total"]
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await shows(pilot, "1 Dashboard", "Ingest", "Queue", "Uplink", "Disk free")
        await matches(pilot, rf"Photos\s+{before}\b")
        with box.ftp(user, password) as ftp:
            assert store(ftp, "DSC_0001.JPG", jpeg_bytes(seed=501)).startswith("226")
            # the live session is on the dashboard while the camera is connected
            await shows(pilot, f"Online {user} (1)")
        await matches(pilot, rf"Photos\s+{before + 1}\b")
        assert "box not reachable" not in screen_text(app)

        await pilot.press("2")
        await shows(pilot, "Camera", "Last frame", "Nikon [Z9] console")  # not markup
        table = app.screen.query_one(BoxTable)
        await until(pilot, "the frame counted", lambda: str(table.get_row(user)[5]) == "1")
        cells = [str(c) for c in table.get_row(user)]
        assert cells[1] == f"{event}/main"
        assert cells[2] == "○ 0", "the camera disconnected"
        assert cells[3].endswith("s ago"), cells
        assert cells[4] == "1", "frames today"


# --- events and keys: made through the UI, real on the box


@pytest.mark.asyncio
async def test_create_an_event_through_the_ui(box: BoxProcess) -> None:
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await shows(pilot, "Code", "Name", "Functions")
        await pilot.press("n")
        await shows(pilot, "New event")
        await pilot.press(*"Pilot wedding")
        await pilot.press("tab", *"Ceremony, Reception 2", "enter")
        await shows(pilot, "Pilot wedding", "ceremony, reception-2")
    created = [e for e in box.cli("event", "list") if e["name"] == "Pilot wedding"]
    assert len(created) == 1
    assert sorted(created[0]["functions"]) == ["ceremony", "reception-2"]


@pytest.mark.asyncio
async def test_new_event_form_says_what_is_wrong_and_escape_cancels(box: BoxProcess) -> None:
    count = len(box.cli("event", "list"))
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "n")
        await shows(pilot, "New event")
        await pilot.press("enter")
        await shows(pilot, "an event needs a name")
        await pilot.press("1")  # typed into the field: no navigation while a form is open
        assert app.current_mode == "events"
        assert app.screen.query_one("#name", Input).value == "1"
        await pilot.press("escape")
        await until(pilot, "the form closed", lambda: isinstance(app.screen, BoxScreen))
    assert len(box.cli("event", "list")) == count


@pytest.mark.asyncio
async def test_add_a_camera_shows_working_credentials_and_the_steps_per_brand(box: BoxProcess) -> None:
    event = box.new_event("Console cameras")
    ca_pem = box.run_cli("ca-cert").stdout
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await select_row(pilot, event)
        await pilot.press("a")
        await shows(pilot, "Add a camera", "Brand")
        assert app.screen.query_one("#event", Select).value == event
        await pilot.press(*"Sony A7 IV")
        form = app.screen
        assert isinstance(form, AddCameraForm)
        await until(pilot, "the brand guessed from the label", lambda: form.brand == "sony")
        app.screen.query_one("#camera", Input).focus()
        await pilot.press("enter")

        await until(pilot, "the setup screen", lambda: isinstance(app.screen, CameraSetupScreen))
        screen = app.screen
        assert isinstance(screen, CameraSetupScreen)
        user, password = screen.key["username"], screen.key["password"]
        assert user.startswith(f"{event}-sony-a7")
        await shows(pilot, "Sony body, step by step", user, password, "shown only now")
        await until(pilot, "the CA fingerprint", lambda: screen.ca_fingerprint is not None)
        assert screen.ca_fingerprint == fingerprint(ca_pem)
        text = screen_text(app)
        assert f"Port           {box.ftp_port}" in text
        assert "Passive mode   ON" in text

        # the steps scroll: Sony needs the CA imported
        await pilot.press("end")
        await shows(pilot, "CA certificate: import it (required)", screen.ca_fingerprint[:47])
        await pilot.press("v")
        await shows(pilot, "-----BEGIN CERTIFICATE-----", ca_pem.splitlines()[1])
        await pilot.press("escape")
        await pilot.press("b")  # Canon
        await pilot.press("home")
        await shows(pilot, "Canon body, step by step", "Err 46")
        await pilot.press("b")  # Nikon
        await shows(pilot, "Nikon body, step by step")
        await pilot.press("escape")
        await until(pilot, "back on the events", lambda: app.screen.query(DataTable))

    keys = {k["username"]: k for k in box.cli("key", "list", "--event", event)}
    assert keys[user]["camera"] == "Sony A7 IV" and keys[user]["revoked_at"] is None
    with box.ftp(user, password, tls=True) as ftp:  # the password shown works, over FTPS too
        assert store(ftp, "DSC00001.JPG", jpeg_bytes(seed=502)).startswith("226")


@pytest.mark.asyncio
async def test_revoke_a_key_through_the_ui(box: BoxProcess) -> None:
    event = box.new_event("Console revoke")
    user, password = box.new_key(event, camera="Canon R6")
    keep, keep_password = box.new_key(event, camera="Canon R3")
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await shows(pilot, "Keys of all events")
        while app.screen.event != event:  # f cycles the event filter
            await pilot.press("f")
        await shows(pilot, f"Keys of event {event}: 2 active, 0 revoked")
        await select_row(pilot, user)
        await pilot.press("r")
        await shows(pilot, f"Revoke key {user}?")
        await pilot.press("n")  # no: nothing happens
        await shows(pilot, f"Keys of event {event}: 2 active, 0 revoked")
        await pilot.press("r")
        await shows(pilot, f"Revoke key {user}?")
        await pilot.press("y")
        await shows(pilot, f"Keys of event {event}: 1 active, 1 revoked", "revoked ")
    keys = {k["username"]: k for k in box.cli("key", "list", "--event", event)}
    assert keys[user]["revoked_at"] is not None
    assert keys[keep]["revoked_at"] is None
    assert ftp_login_fails(box, user, password)
    assert not ftp_login_fails(box, keep, keep_password)


# --- dead letters


@pytest.mark.asyncio
async def test_dead_letters_empty_state(box: BoxProcess) -> None:
    assert box.cli("deadletters") == []
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("5")
        await shows(pilot, "No dead letters: no sync job has failed for good.", "r Retry", "d Discard")
        await pilot.press("r")
        await shows(pilot, "no dead letter selected")
        await pilot.press("d")
        assert isinstance(app.screen, DeadLettersScreen), "nothing to confirm"


@pytest.mark.asyncio
async def test_checklist_screen_shows_each_line_as_the_box_sees_it(box: BoxProcess) -> None:
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await shows(pilot, "Event and functions created", "Table cards printed", "Purge the event")
        assert "[x]" in screen_text(app) and "hand" in screen_text(app)
        await shows(pilot, "shutterbox doctor:", "checks fine")  # the doctor's findings too
        await pilot.press("question_mark")
        await shows(pilot, "Event-day checklist")


# --- guest QR and log


@pytest.mark.asyncio
async def test_guest_qr_code_is_drawn_in_the_terminal(box: BoxProcess) -> None:
    event = box.new_event("Console guests")
    guest = box.cli("event", "guest", event)
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await select_row(pilot, event)
        await pilot.press("g")
        await shows(pilot, guest["url"], f"event {event} · no PIN")
        rows = screen_text(app).splitlines()
        code = qr_text(guest["url"]).plain.splitlines()
        top = next(i for i, row in enumerate(rows) if code[0] in row)
        column = rows[top].index(code[0])
        assert [row[column : column + len(code[0])] for row in rows[top : top + len(code)]] == code
        assert top + len(code) < SIZE[1], "the code fits the screen"


def test_qr_text_is_the_qr_matrix() -> None:
    import segno

    url = "http://shutterbox.local/e/abcd2345"
    matrix = [list(map(bool, row)) for row in segno.make(url, micro=False).matrix_iter(border=2)]
    text = qr_text(url)
    lines = text.plain.splitlines()
    assert len(lines) == (len(matrix) + 1) // 2
    assert all(len(line) == len(matrix[0]) for line in lines)
    # every cell's foreground is the upper module, its background the lower one
    seen = []
    for span in text.spans:
        for offset in range(span.start, span.end):
            seen.append((offset, span.style))
    width = len(matrix[0]) + 1  # + the newline
    for offset, style in seen:
        row, col = divmod(offset, width)
        top = matrix[2 * row][col]
        bottom = matrix[2 * row + 1][col] if 2 * row + 1 < len(matrix) else False
        assert str(style.color.name) == ("#000000" if top else "#ffffff")  # type: ignore[union-attr]
        assert str(style.bgcolor.name) == ("#000000" if bottom else "#ffffff")  # type: ignore[union-attr]
    assert len(seen) == sum(len(line) for line in lines)


def test_sparkline_is_scaled_from_zero() -> None:
    assert spark_text([0.0, 0.0], 4).plain == "  ▁▁"
    assert spark_text([5.0, 5.0, 5.0], 3).plain == "███", "a steady rate is a full bar, not a flat one"
    assert spark_text([0.0, 4.0, 8.0], 3).plain == "▁▅█"
    assert spark_text([float(i) for i in range(90)], 36).plain.endswith("█")
    assert len(spark_text([float(i) for i in range(90)], 36).plain) == 36


@pytest.mark.asyncio
async def test_log_view_follows_the_box_log(box: BoxProcess) -> None:
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await shows(pilot, "w Warnings only")
        box.new_key(box.new_event("Console log"), camera="log cam")
        await shows(pilot, "INFO")
        assert "does not serve its log" not in screen_text(app)


# --- no box, and a box that restarts


@pytest.mark.asyncio
async def test_no_box_is_a_state_not_a_crash(tmp_path: Path) -> None:
    app = ConsoleApp(tmp_path / "nothing-here", poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await shows(pilot, "box not reachable, retrying…")
        for key in "234567":
            await pilot.press(key)
            await shows(pilot, "box not reachable, retrying…")
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.asyncio
async def test_first_boot_token_is_shown_once_then_deleted(box: BoxProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "first-boot-token"
    token_file.write_text("sbx_first-boot-example-token\n")
    app = ConsoleApp(box.data, poll_interval=FAST, first_boot_token=token_file)
    async with app.run_test(size=SIZE) as pilot:
        await shows(pilot, "sbx_first-boot-example-token", "admin API token")
        await pilot.press("2")  # the token stays in front until the operator confirms
        await shows(pilot, "sbx_first-boot-example-token")
        await pilot.press("enter")
        await until(pilot, "the token hidden", lambda: "sbx_first" not in screen_text(pilot.app))
        assert not token_file.exists()
    again = ConsoleApp(box.data, poll_interval=FAST, first_boot_token=token_file)
    async with again.run_test(size=SIZE) as pilot:
        await shows(pilot, "Frames/min")
        assert "admin API token" not in screen_text(again)


@pytest.mark.asyncio
async def test_reconnects_by_itself_when_the_box_restarts(fresh_box: BoxProcess) -> None:
    fresh_box.start()
    app = ConsoleApp(fresh_box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("7")
        await shows(pilot, "appliance.box: shutterbox 0.1.0 ready")
        assert fresh_box.stop() == 0
        await shows(pilot, "box not reachable, retrying…")
        assert "0.1.0 ready" in screen_text(app), "the last lines stay on screen"
        polls = app.polls
        await until(pilot, "still polling", lambda: app.polls >= polls + 3)
        fresh_box.start()
        await until(pilot, "the box back", lambda: "box not reachable" not in screen_text(app))
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        restarted = f"the box restarted (pid {fresh_box.proc.pid})"  # type: ignore[union-attr]
        view = logs.query_one(RichLog)
        await until(pilot, "a restart marker", lambda: any(restarted in line.text for line in view.lines))

        def boots() -> int:
            return sum("0.1.0 ready" in line["message"] for line in logs.lines)

        await until(pilot, "the new box's log", lambda: boots() == 2)
        await pilot.press("2")
        await shows(pilot, "demo camera")
        user, password = fresh_box.new_key(fresh_box.new_event("after restart"), camera="Sony A9 after")
        with fresh_box.ftp(user, password) as ftp:
            store(ftp, "A.JPG", jpeg_bytes(seed=503))
        await shows(pilot, "Sony A9 after")


# --- cloud: dead letters retried and discarded, sync paused and resumed


@pytest.fixture
def cloud_box(tmp_path: Path, s3_endpoint: str, rekognition: Any) -> Iterator[BoxProcess]:
    from tests.test_sync import cloud_box as make_cloud_box

    running = make_cloud_box(tmp_path, s3_endpoint, rekognition.url, cloud__workers="1").start()
    yield running
    running.stop()


@pytest.mark.asyncio
async def test_dead_letters_retry_and_discard(cloud_box: BoxProcess, rekognition: Any) -> None:
    from tests.test_sync import frames, jobs, upload_all

    box = cloud_box
    event = box.new_event("Console cloud")
    rekognition.fail_next("IndexFaces", "AccessDeniedException", times=2, status=400)
    upload_all(box, event, frames([["ann"], ["ben"]]))
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("5")
        await until(pilot, "two dead letters", lambda: len(box.cli("deadletters")) == 2, seconds=60)
        dead = box.cli("deadletters")
        first, second = (str(d["job_id"]) for d in dead)
        await shows(pilot, "AccessDenied", first, second)

        await select_row(pilot, first)
        await pilot.press("r")
        await shows(pilot, f"job {first} queued again")
        assert jobs(box).get("dead") == 1  # the other one stays dead
        # the retried job runs again: its third IndexFaces call (two failed before)
        await until(
            pilot, "the retried job indexed", lambda: rekognition.count("IndexFaces") >= 3, seconds=90
        )

        await select_row(pilot, second)
        await pilot.press("d")
        await shows(pilot, f"Discard sync job {second}?")
        await pilot.press("y")
        await shows(pilot, "No dead letters")
    assert box.cli("deadletters") == []
    assert rekognition.count("IndexFaces") >= 3


@pytest.mark.asyncio
async def test_pause_and_resume_sync_from_the_dashboard(cloud_box: BoxProcess) -> None:
    app = ConsoleApp(cloud_box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await shows(pilot, "● online", "sync running")
        await pilot.press("s")
        await shows(pilot, "sync PAUSED")
        assert cloud_box.status()["cloud"]["paused"] is True
        await pilot.press("s")
        await shows(pilot, "sync running")
        assert cloud_box.status()["cloud"]["paused"] is False


# --- camera setup text (pure)

KEY = {
    "username": "abcd2345-canon-r5-1",
    "event": "abcd2345",
    "function": "ceremony",
    "camera": "Canon R5 #1",
    "password": "35pzuzxhm2e7me",
    "connect": {
        "host": "192.0.2.2",
        "port": 2121,
        "implicit_tls_port": None,
        "passive_ports": "60000-60099",
        "tls": "explicit (AUTH TLS) on the same port",
    },
}


@pytest.mark.parametrize("brand", BRANDS)
def test_every_brand_gets_host_port_user_password_and_passive(brand: Any) -> None:
    steps = setup(brand, KEY, "/srv/shutterbox")
    values = dict(steps.values)
    assert values["Server / host"] == "192.0.2.2"
    assert values["Port"] == "2121"
    assert values["Passive mode"] == "ON"
    assert values["User name"] == "abcd2345-canon-r5-1"
    assert values["Password"] == "35pzuzxhm2e7me"
    text = "\n".join(steps.steps)
    assert "192.0.2.2" in text and "2121" in text and "35pzuzxhm2e7me" in text
    assert "passive mode on" in text.lower()
    assert steps.ca == ("required" if brand == "sony" else "if asked")


def test_brand_specific_facts_from_the_operator_guide() -> None:
    canon = "\n".join(setup("canon", KEY).steps)
    assert "MKD + RMD" in canon and "Err 46" in canon
    assert "ftp.implicit_tls_port = 990" in canon, "implicit FTPS is off on this box"
    with_990 = copy.deepcopy(KEY)
    with_990["connect"]["implicit_tls_port"] = 990  # type: ignore[index]
    assert "use port 990" in "\n".join(setup("canon", with_990).steps)
    nikon = "\n".join(setup("nikon", KEY).steps)
    assert "ftp.max_file_size_mb" in nikon and "resume" in nikon
    sony = "\n".join(setup("sony", KEY, "/srv/shutterbox").steps)
    assert "shutterbox ca-cert --data /srv/shutterbox > shutterbox-ca.crt" in sony
    assert '"Secure Protocol" ON' in sony
    assert "root of a memory card" in sony


def test_missing_connect_fields_show_a_dash() -> None:
    steps = setup("nikon", {"username": "u"})
    assert dict(steps.values)["Server / host"] == "—"
    assert dict(steps.values)["Password"] == "—"


def test_fingerprint_matches_cryptography(box: BoxProcess) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    pem = box.run_cli("ca-cert").stdout
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert fingerprint(pem) == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert fingerprint("not a certificate") is None


# --- snapshots (content fixed or masked before the picture)

STATUS = {
    "version": "0.1.0",
    "queue": {"photos_total": 1234, "rejections": 2},
    "ftp": {
        "ports": {"ftp": 2121},
        "sessions": {"abcd2345-canon-r5-1": 1, "abcd2345-nikon-z9": 2},
        "banned_ips": {},
        "counters": {"login_ok": 40, "login_failed": 1},
    },
    "cloud": {
        "enabled": True,
        "bucket": "venue-photos",
        "uplink": "degraded",
        "uplink_since": None,
        "paused": False,
        "jobs": {"pending": 12, "done": 2400, "dead": 1},
    },
    "faces": {"photos_pending": 3, "photos_indexed": 1231},
    "throughput": {
        "frames_per_min": 18.0,
        "bytes_in_per_s": 2_400_000.0,
        "uploads_per_min": 19.0,
        "bytes_out_per_s": 1_150_000.0,
    },
    "system": {
        "cpu_temp_c": 61.5,
        "load": [0.52, 0.4, 0.33],
        "cpu_percent": 23.0,
        "memory_used_bytes": 412_000_000,
        "memory_total_bytes": 4_000_000_000,
    },
    "versions": {"shutterbox": "0.1.0", "python": "3.11"},
    "uptime_s": 7260.0,
    "queue_summary": {"pending": 12, "in_flight": 2, "failed": 1, "oldest_pending_age_s": 192.0},
    "disk": {
        "free_bytes": 48_200_000_000,
        "total_bytes": 62_000_000_000,
        "accepting_uploads": True,
        "time_to_full_s": 12_000.0,
    },
    "alerts": [
        {"level": "warning", "text": "uplink degraded: S3 is slow"},
        {"level": "critical", "text": "1 sync job dead-lettered"},
    ],
}


def fixed(app: ConsoleApp, status: dict[str, Any]) -> None:
    """Show ``status`` instead of the box's (same pid, so no "restarted" notice)."""
    app.apply_status({**status, "pid": (app.status or {}).get("pid")})
    screen = app.screen
    if isinstance(screen, BoxScreen):
        screen.show_status()


def test_snapshot_dashboard(box: BoxProcess, snap_compare: Any) -> None:
    app = ConsoleApp(box.data, poll_interval=3600)

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.status is not None)
        app.pending_history.clear()
        app.frames_history.clear()
        for pending in (0, 2, 5, 9, 12, 20, 16, 12):  # a known history for the sparklines
            sample = copy.deepcopy(STATUS)
            sample["queue_summary"]["pending"] = pending  # type: ignore[index]
            sample["throughput"]["frames_per_min"] = pending * 1.5  # type: ignore[index]
            fixed(app, sample)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_dead_letters_empty(box: BoxProcess, snap_compare: Any) -> None:
    app = ConsoleApp(box.data, poll_interval=3600)

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.status is not None)
        await pilot.press("5")
        await shows(pilot, "No dead letters")
        fixed(app, {"version": "0.1.0", "alerts": []})

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_sony_setup(box: BoxProcess, snap_compare: Any) -> None:
    event = box.new_event("Snapshot")
    app = ConsoleApp(box.data, poll_interval=3600)

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, "the first poll", lambda: app.status is not None)
        await pilot.press("3")
        await select_row(pilot, event)
        await pilot.press("a")
        await shows(pilot, "Add a camera")
        await pilot.press(*"Sony A1")
        form = app.screen
        assert isinstance(form, AddCameraForm)
        await until(pilot, "the brand guessed", lambda: form.brand == "sony")
        await pilot.press("enter")
        await until(pilot, "the setup", lambda: isinstance(app.screen, CameraSetupScreen))
        screen = app.screen
        assert isinstance(screen, CameraSetupScreen)
        await until(pilot, "the CA", lambda: screen.ca_fingerprint is not None)
        # mask what differs per run: event code, password, port, data folder, CA
        screen.key = {**KEY, "username": "abcd2345-sony-a1", "camera": "Sony A1", "function": "main"}
        screen.ca_fingerprint = ":".join(["AB"] * 32)
        screen.data_dir = Path("/var/lib/shutterbox")
        screen.render_setup()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# --- issue #18: what a new operator met at 80x24


@pytest.mark.asyncio
async def test_originals_are_choices_in_view_not_a_dropdown_over_create(box: BoxProcess) -> None:
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "n")
        await shows(pilot, "New event")
        form = app.screen
        assert isinstance(form, NewEventForm)
        assert not form.query(Select), "a dropdown opens over the fields and buttons below it"
        await shows(pilot, "(●) all go to S3", "( ) JPEG only", "( ) none (proxies only)")
        await pilot.press(*"Issue 18 originals")
        form.query_one("#originals", RadioSet).focus()
        await pilot.press("down", "enter")  # the operator picks "JPEG only"
        await shows(pilot, "(●) JPEG only")
        assert re.search(r"Create\s{2,}Cancel", screen_text(app)), screen_text(app)
        await pilot.press("shift+tab", "shift+tab", "enter")  # back in the name field: Enter submits
        await shows(pilot, "Issue 18 originals")
    created = next(e for e in box.cli("event", "list") if e["name"] == "Issue 18 originals")
    assert created["originals_policy"] == "jpeg"


@pytest.mark.asyncio
async def test_the_guest_pages_look_is_set_from_the_console(box: BoxProcess) -> None:
    """Name, day, accent colour, approval and face search set on the events screen (``e``) reach
    the box; a wrong colour is refused in the box's words and the form stays open to correct."""
    code = box.cli("event", "create", "Look from the console")["code"]
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await shows(pilot, code)
        await select_row(pilot, code)
        await pilot.press("e")
        await shows(pilot, f"Guest pages of {code}")
        await pilot.click("#cancel")  # the Cancel button every form shares: closes, sends nothing
        await until(pilot, "the form closed", lambda: isinstance(app.screen, BoxScreen))
        await pilot.press("e")
        await shows(pilot, f"Guest pages of {code}", "(●) public at once", "(●) search on")
        form = app.screen
        assert isinstance(form, EventLookForm)
        assert re.search(r"Save\s{2,}Cancel", screen_text(app)), "the buttons are on screen at 80x24"
        form.query_one("#date", Input).value = "2026-12-24"
        form.query_one("#accent", Input).value = "teal"
        form.query_one("#name", Input).focus()
        await pilot.press("enter")
        await shows(pilot, "refused:")
        assert "#rrggbb" in screen_text(app) or "accent" in screen_text(app), screen_text(app)
        form.query_one("#accent", Input).value = "#1a7f7a"
        form.query_one("#moderation", RadioSet).focus()
        await pilot.press("right", "enter")
        form.query_one("#search", RadioSet).focus()
        await pilot.press("right", "enter")
        await shows(pilot, "(●) after I approve", "(●) off: gallery only")
        form.query_one("#name", Input).focus()
        await pilot.press("enter")
        await until(pilot, "the form closed", lambda: isinstance(app.screen, BoxScreen))
    event = next(e for e in box.cli("event", "list") if e["code"] == code)
    assert (event["date"], event["accent"], event["moderation"], event["face_search"]) == (
        "2026-12-24",
        "#1a7f7a",
        "approve",
        False,
    ), event


def test_created_is_said_in_full_not_cut() -> None:
    now = dt.datetime(2026, 12, 6, 15, 30, tzinfo=dt.UTC)
    local = now.astimezone()

    def ago(**delta: float) -> str:
        return fmt_when((now - dt.timedelta(**delta)).isoformat(), now)

    assert ago(seconds=20) == "just now"
    assert ago(minutes=3) == "3 min ago"
    yesterday = local.replace(hour=12, minute=5) - dt.timedelta(days=1)
    assert fmt_when(yesterday.isoformat(), now) == "yesterday 12:05"
    assert ago(days=40) == f"{local - dt.timedelta(days=40):%Y-%m-%d}"
    assert fmt_when(None, now) == "—"
    assert all(len(ago(days=d, minutes=m)) <= 15 for d in range(0, 400, 3) for m in (0, 7, 59, 61, 600))


@pytest.mark.asyncio
async def test_events_table_fits_80_columns_with_a_long_name(box: BoxProcess) -> None:
    functions = ["ceremony", "reception", "first-dance", "portraits"]
    args = [arg for f in functions for arg in ("--function", f)]
    code = box.cli("event", "create", "The Smith and Jones wedding at the old mill", *args)["code"]
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await shows(pilot, code, "Created")
        row = next(line for line in screen_text(app).splitlines() if code in line)
        assert re.search(r"\ball\s+no\s+just now\s*$", row), f"Created cut off: {row!r}"
        assert "…" in row, "the long name is shortened on purpose"
        await select_row(pilot, code)
        await shows(pilot, "The Smith and Jones wedding at the old mill", "first-dance, portraits, reception")


def test_ftp_line_breaks_between_figures_never_past_80_columns() -> None:
    status = copy.deepcopy(STATUS)
    status["ftp"]["ports"] = {"ftp": 2121, "ftps_implicit": 990}  # type: ignore[index]
    status["ftp"]["banned_ips"] = {"192.0.2.7": 300, "192.0.2.8": 60}  # type: ignore[index]
    status["ftp"]["counters"] = {"login_ok": 12345, "login_failed": 678}  # type: ignore[index]
    status["ftp"]["sessions"] = {f"abcd2345-camera-{n}": 1 for n in range(9)}  # type: ignore[index]
    lines = footer_line(status).plain.splitlines()
    assert all(len(line) <= 78 for line in lines), lines  # 80 columns less the padding
    assert lines[0].startswith("FTP port 2121  implicit FTPS 990  keys online 9")
    assert any("logins 12,345 ok / 678 failed" in line for line in lines), "not broken inside"
    assert lines[-1].startswith("Online abcd2345-camera-0 (1)") and lines[-1].endswith("more")


@pytest.mark.asyncio
async def test_sync_off_says_photos_stay_and_hides_pause(box: BoxProcess) -> None:
    assert box.status()["cloud"]["enabled"] is False
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await shows(pilot, "Cloud sync off: photos stay", "held for a cloud", "? Help")
        text = screen_text(app)
        assert "Pending" not in text and "Oldest" not in text, "nothing is stuck: there is no cloud"
        await pilot.pause(0.5)  # a footer refresh would have come by now
        assert "Pause/resume sync" not in screen_text(app)
        assert isinstance(app.screen, DashboardScreen)
        assert app.screen.check_action("toggle_sync", ()) is False
        await pilot.press("s")  # hidden and inert
        await pilot.pause(0.3)
        assert "cloud sync is off" not in screen_text(app)


@pytest.mark.asyncio
async def test_help_lists_every_key_of_every_screen(box: BoxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # a key added to a screen is in the help without anyone editing the help
    extra = Binding("x", "nothing", "A key added later")
    monkeypatch.setattr(DashboardScreen, "BINDINGS", [*DashboardScreen.BINDINGS, extra])
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await shows(pilot, "? Help")
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            await until(pilot, "the help", lambda: isinstance(app.screen, HelpScreen))
            text = screen_text(app)
            for screen in (
                ConsoleApp,
                *app.MODES.values(),
                CameraSetupScreen,
                NewEventForm,
                AddCameraForm,
                EventLookForm,
            ):
                for binding in Binding.make_bindings(screen.BINDINGS):
                    assert binding.description in text, f"{screen.__name__}: {binding.description}"
            assert "A key added later" in text
            assert "Esc, ? or F1 closes this help" in text
            assert app.screen.query_one(VerticalScroll).max_scroll_y == 0, "it all fits 80x24"
            await pilot.press("escape")
            await until(pilot, "the help closed", lambda: isinstance(app.screen, BoxScreen))


@pytest.mark.asyncio
async def test_add_camera_offers_the_newest_event_and_its_functions(box: BoxProcess) -> None:
    older = box.new_event("Issue 18 older")
    newest = box.cli(
        "event", "create", "Issue 18 newest", "--function", "ceremony", "--function", "reception"
    )
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await shows(pilot, "demo camera")  # the cursor sits on the demo event's camera
        await pilot.press("a")
        await until(pilot, "the form", lambda: isinstance(app.screen, AddCameraForm))
        form = app.screen
        assert isinstance(form, AddCameraForm)
        assert form.query_one("#event", Select).value == newest["code"], "not the demo, not the older"
        function = form.query_one("#function", Select)
        assert [value for _, value in function._options] == ["ceremony", "reception"]
        assert function.value == "ceremony"
        form.query_one("#event", Select).value = older
        await until(pilot, "the older event's functions", lambda: function.value == "main")
        form.query_one("#event", Select).value = newest["code"]
        await until(pilot, "the functions back", lambda: function.value == "ceremony")
        function.value = "reception"
        form.query_one("#camera", Input).focus()
        await pilot.press(*"Nikon Z9 #2", "enter")
        await until(pilot, "the setup", lambda: isinstance(app.screen, CameraSetupScreen))
        setup_screen = app.screen
        assert isinstance(setup_screen, CameraSetupScreen)
        assert setup_screen.brand == "nikon", "guessed from the label"
        assert setup_screen.key["function"] == "reception"


def test_brand_guessed_from_the_label() -> None:
    assert guess_brand("Nikon Z9 #2") == "nikon"
    assert guess_brand("canon r5") == "canon"
    assert guess_brand("Sony A7 IV") == "sony"
    assert guess_brand("Z8 backup") == "nikon"
    assert guess_brand("EOS R6") == "canon"
    assert guess_brand("second body") is None


@pytest.mark.asyncio
async def test_brand_follows_the_label_until_the_operator_picks_one(box: BoxProcess) -> None:
    box.new_event("Issue 18 brand")
    app = ConsoleApp(box.data, poll_interval=FAST)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "a")
        await until(pilot, "the form", lambda: isinstance(app.screen, AddCameraForm))
        form = app.screen
        assert isinstance(form, AddCameraForm)
        assert form.brand == "canon"
        await pilot.press(*"Nikon")
        await until(pilot, "nikon guessed", lambda: form.brand == "nikon")
        await shows(pilot, "(●) Nikon", "( ) Canon")
        for _ in "Nikon":
            await pilot.press("backspace")
        await pilot.press(*"Sony A9")
        await until(pilot, "sony guessed", lambda: form.brand == "sony")
        form.query_one("#brand-canon", RadioButton).value = True  # the operator's own pick
        await until(pilot, "canon picked", lambda: form.brand == "canon")
        form.query_one("#camera", Input).focus()
        await pilot.press(*" Nikon")
        await pilot.pause(0.3)
        assert form.brand == "canon", "the operator's pick stays"
