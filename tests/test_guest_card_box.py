"""The table card and the guest address against a real box (mDNS off, as every test box): the
start banner and ``shutterbox status`` give an address that answers, ``shutterbox event guest
--out`` writes the card in each format, the PIN rules, and the errors in words. One box for all."""

from __future__ import annotations

import io
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.boxproc import BoxProcess, make_box

pytestmark = pytest.mark.e2e

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    box = make_box(tmp_path_factory.mktemp("card") / "data", guest__wifi_name="Venue Guests").start()
    yield box
    assert box.stop() == 0, box.log[-4000:]


def words(svg: bytes) -> str:
    return " ".join(t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text"))


def test_banner_and_status_give_a_guest_address_that_answers(venue: BoxProcess) -> None:
    web = f"http://127.0.0.1:{venue.info['web_port']}"
    log = venue.log
    assert f"guest page      {web}" in log, log[-3000:]
    assert f"cameras, FTP    127.0.0.1:{venue.ftp_port}" in log
    assert f"passive ports {venue.env['SHUTTERBOX_FTP__PASSIVE_PORTS']}" in log
    assert f"admin API       http://127.0.0.1:{venue.info['admin_port']}" in log
    assert ".local" not in log.split("is serving:", 1)[1], "mDNS is off: no .local name is given"
    status = venue.cli("status")
    assert status["guest_url"] == web
    assert httpx.get(f"{web}/healthz").status_code == 200, "the address resolves and answers"
    text = venue.run_cli("status").stdout
    assert re.search(rf"^guest url +{re.escape(web)}$", text, re.MULTILINE), text


def test_card_in_every_format(venue: BoxProcess, tmp_path: Path) -> None:
    code = venue.new_event("Zoë & Łukasz")
    url = f"http://127.0.0.1:{venue.info['web_port']}/e/{code}"
    info = venue.cli("event", "guest", code, "--out", str(tmp_path / "card.svg"))
    assert info["url"] == url and info["card_file"] == str(tmp_path / "card.svg")
    said = words((tmp_path / "card.svg").read_bytes())
    assert "Zoë & Łukasz" in said and url in said and "WiFi: Venue Guests" in said
    assert "Take a selfie" in said and "PIN" not in said
    assert httpx.get(url).status_code == 200, "the card's address is the event's page"

    venue.cli("event", "guest", code, "--out", str(tmp_path / "card.pdf"))
    pdf = (tmp_path / "card.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"/MediaBox [0 0 297.64 419.53]" in pdf

    venue.cli("event", "guest", code, "--out", str(tmp_path / "CARD.PNG"))
    with Image.open(io.BytesIO((tmp_path / "CARD.PNG").read_bytes())) as image:
        assert image.size == (1240, 1748)


def test_pin_on_the_card(venue: BoxProcess, tmp_path: Path) -> None:
    code = venue.new_event("Pinned")
    venue.cli("event", "pin", code, "4821")
    out = tmp_path / "card.svg"
    asked = venue.run_cli("event", "guest", code, "--out", str(out))
    assert asked.returncode == 0, asked.stderr
    assert "has a PIN" in asked.stderr and "--pin" in asked.stderr
    assert "PIN: ask your host" in words(out.read_bytes())

    given = venue.run_cli("event", "guest", code, "--out", str(out), "--pin", "4821")
    assert given.returncode == 0 and given.stderr == ""
    assert "PIN: 4821" in words(out.read_bytes())

    wrong = venue.run_cli("event", "guest", code, "--out", str(tmp_path / "wrong.svg"), "--pin", "9999")
    assert wrong.returncode == 1 and "not the PIN" in wrong.stderr
    assert not (tmp_path / "wrong.svg").exists()


def test_errors_in_words(venue: BoxProcess, tmp_path: Path) -> None:
    code = venue.new_event("Errors")
    kinds: list[Any] = []
    bad = venue.run_cli("event", "guest", code, "--out", str(tmp_path / "card.txt"))
    kinds.append(bad.returncode)
    assert "name it .pdf, .svg or .png" in bad.stderr
    unwritable = venue.run_cli("event", "guest", code, "--out", str(tmp_path / "no" / "such" / "card.pdf"))
    kinds.append(unwritable.returncode)
    assert "cannot write the card to" in unwritable.stderr and "Traceback" not in unwritable.stderr
    assert kinds == [2, 2]
    missing = venue.run_cli("event", "guest", "zzzz2345", "--out", str(tmp_path / "card.pdf"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


@pytest.mark.asyncio
async def test_console_writes_the_card_here(
    venue: BoxProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.app import ConsoleApp
    from tui.screens.guest import GuestScreen

    venue.new_event("Console card")
    monkeypatch.chdir(tmp_path)
    app = ConsoleApp(venue.data, poll_interval=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        deadline = time.monotonic() + 30
        while not (isinstance(app.screen, GuestScreen) and app.screen.guest is not None):
            assert time.monotonic() < deadline, "the guest screen never showed an event"
            await pilot.pause(0.1)
        code = app.screen.event
        await pilot.press("p")
        card = tmp_path / f"card-{code}.pdf"
        while not card.exists() or not any(str(card) in n.message for n in app._notifications):
            assert time.monotonic() < deadline + 30, "no card written"
            await pilot.pause(0.1)
    assert card.read_bytes().startswith(b"%PDF-")


def test_the_admin_route_refuses_an_unknown_format_in_words(venue: BoxProcess) -> None:
    code = venue.new_event("Route")
    with venue.admin_api() as api:
        card = api.get(f"/api/events/{code}/card", params={"format": "png"})
        assert card.status_code == 200 and card.headers["content-type"] == "image/png"
        assert card.content.startswith(b"\x89PNG")
        gif = api.get(f"/api/events/{code}/card", params={"format": "gif"})
        assert gif.status_code == 422
        message = gif.json()["detail"][0]["msg"]
        assert "pdf" in message and "png" in message, message
        no_pin = api.get(f"/api/events/{code}/card", params={"pin": "4821"})
        assert no_pin.status_code == 422 and "has no PIN" in no_pin.json()["detail"]
