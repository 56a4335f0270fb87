"""The event-day checklist against a real box: each line the box can know turns from "not yet" to
"done" as the operator does the thing (an event with functions, a key per body, a test shot, a
guest's search), the cloud lines say "off" without a cloud, and what the box cannot see says
"by hand"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    started = make_box(tmp_path_factory.mktemp("checklist") / "data").start(timeout=60)
    yield started
    assert started.stop() == 0


def states(box: BoxProcess) -> dict[str, dict[str, Any]]:
    return {line["text"]: line for line in box.cli("checklist")}


def test_the_checklist_follows_the_operator(box: BoxProcess) -> None:
    first = states(box)
    assert first["Event and functions created"]["state"] == "not yet", "the demo event does not count"
    assert first["One key per camera body"]["state"] == "not yet"
    assert first["A test shot from every body shows in Cameras"]["state"] == "not yet"
    assert (
        first["A phone on the venue WiFi opens the guest page and finds the test shot"]["state"] == "not yet"
    )
    assert first["Table cards printed"]["state"] == "by hand"
    assert first["Purge the event when the contract says so"]["state"] == "by hand"
    for line in ("Uplink", "Sync drained (0 pending)", "Originals policy honoured"):
        assert first[line]["state"] == "off" and "cloud sync off" in first[line]["detail"]

    event = box.cli("event", "create", "Wedding", "--function", "ceremony", "--function", "reception")["code"]
    after = states(box)
    assert after["Event and functions created"]["state"] == "done"
    assert "ceremony, reception" in after["Event and functions created"]["detail"]
    assert after["One key per camera body"]["state"] == "not yet"
    assert event in after["One key per camera body"]["detail"]

    user, password = box.new_key(event, camera="Nikon Z9", function="ceremony")
    after = states(box)
    assert after["One key per camera body"]["state"] == "done"
    assert after["A test shot from every body shows in Cameras"]["state"] == "not yet"
    assert "Nikon Z9" in after["A test shot from every body shows in Cameras"]["detail"]

    with box.ftp(user, password) as ftp:
        assert store(ftp, "TEST.JPG", jpeg_bytes(seed=3)).startswith("226")
    assert states(box)["A test shot from every body shows in Cameras"]["state"] == "done"

    if FACES.is_dir():
        web = f"http://127.0.0.1:{box.info['web_port']}"
        selfie = (FACES / "obama-3.jpg").read_bytes()
        reply = httpx.post(
            f"{web}/api/events/{event}/search", files={"selfie": ("me.jpg", selfie, "image/jpeg")}
        )
        assert reply.status_code == 200, reply.text
        phone = states(box)["A phone on the venue WiFi opens the guest page and finds the test shot"]
        assert phone["state"] == "done" and "1 guest searches" in phone["detail"]


def test_the_checklist_prints_aligned_lines(box: BoxProcess) -> None:
    result = box.run_cli("checklist")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["when", "state", "what", "the", "box", "sees"]
    column = lines[0].index("what")
    assert all(line[column - 2 : column] == "  " for line in lines[1:]), result.stdout
    assert any("[x] done" in line for line in lines) or any("[ ] not yet" in line for line in lines)
