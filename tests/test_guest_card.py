"""The guest address and the table card, in-process: which address guests are given (public_url,
the mDNS name only while mDNS is on, else the LAN address), the card in PDF, SVG and PNG (its QR
code read back from the PNG's pixels), names in any script, and the start banner's lines."""

from __future__ import annotations

import io
import ipaddress
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import segno
from PIL import Image

from appliance.box import address_lines
from appliance.config import Settings
from appliance.guest import address, card
from appliance.guest.address import first_address, guest_address, lan_address
from appliance.guest.card import CardFacts, CardFormatError, latin1, readable_date, render_card
from appliance.mdns import box_name

URL = "http://192.0.2.7:8080/e/abcd2345"
SVG = "{http://www.w3.org/2000/svg}"


def settings(**sections: Any) -> Settings:
    return Settings(**sections)


# --- the guest address


def test_public_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = settings(guest={"public_url": "https://photos.example:8443/"}, mdns={"enabled": True})
    assert guest_address(chosen, 8080) == "https://photos.example:8443"


def test_mdns_on_gives_the_local_name() -> None:
    on = settings(mdns={"enabled": True, "name": "smithbox"})
    assert guest_address(on, 8080) == "http://smithbox.local:8080"
    assert guest_address(on, 80) == "http://smithbox.local", "port 80 is left out"
    unnamed = settings(mdns={"enabled": True})
    assert guest_address(unnamed, 8080) == f"http://{box_name(unnamed.mdns)}.local:8080"


def test_mdns_off_gives_the_lan_address_not_a_local_name() -> None:
    """The bug: with mDNS off the box still printed http://<hostname>.local, which no phone resolves."""
    off = settings(mdns={"enabled": False}, web={"host": "0.0.0.0"})
    url = guest_address(off, 8080)
    assert ".local" not in url
    host = re.fullmatch(r"http://([0-9.]+):8080", url)
    assert host is not None, url
    assert isinstance(ipaddress.ip_address(host.group(1)), ipaddress.IPv4Address)
    assert host.group(1) == lan_address()
    assert guest_address(off, 80) == f"http://{lan_address()}"


def test_mdns_off_and_one_bound_address_gives_that_address() -> None:
    bound = settings(mdns={"enabled": False}, web={"host": "192.0.2.9"})
    assert guest_address(bound, 8080) == "http://192.0.2.9:8080"
    v6 = settings(mdns={"enabled": False}, web={"host": "fd00::5"})
    assert guest_address(v6, 8080) == "http://[fd00::5]:8080"


class _NoRoute:
    """A socket whose connect fails: a box with no default route."""

    def __init__(self, *args: Any) -> None:
        pass

    def connect(self, target: Any) -> None:
        raise OSError(101, "Network is unreachable")

    def close(self) -> None:
        pass


def _interfaces(*pairs: tuple[str, str]) -> dict[str, list[Any]]:
    return {name: [SimpleNamespace(family=socket.AF_INET, address=ip)] for name, ip in pairs}


def test_without_a_default_route_the_first_lan_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(address.socket, "socket", _NoRoute)
    found = _interfaces(("lo", "127.0.0.1"), ("wlan0", "10.3.0.1"), ("eth0", "192.168.4.20"))
    monkeypatch.setattr(address.psutil, "net_if_addrs", lambda: found)
    assert lan_address() == "192.168.4.20", "interfaces by name: eth0 before wlan0, never lo"
    monkeypatch.setattr(address.psutil, "net_if_addrs", lambda: _interfaces(("lo", "127.0.0.1")))
    assert lan_address() == "127.0.0.1", "loopback last"
    assert first_address() == "127.0.0.1"


# --- the card


def facts(**changes: Any) -> CardFacts:
    base = {
        "name": "Smith wedding",
        "url": URL,
        "date": "2026-12-24",
        "wifi_name": "Venue Guests",
        "pin": None,
        "pin_required": False,
        "accent": "#7a1f5c",
    }
    return CardFacts(**{**base, **changes})


def svg_text(data: bytes) -> tuple[ET.Element, str]:
    root = ET.fromstring(data)
    words = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    return root, words


def test_svg_card_says_everything() -> None:
    root, words = svg_text(render_card(facts(pin="4821", pin_required=True), "svg"))
    assert root.tag == f"{SVG}svg"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("105mm", "148mm", "0 0 105 148")
    assert "Smith wedding" in words
    assert "Thursday 24 December 2026" in words
    assert URL in words and "Or open" in words and "on your phone" in words
    assert "WiFi: Venue Guests" in words
    assert "PIN: 4821" in words
    for step in ("Join the WiFi", "Take a selfie", "Get every photo you are in"):
        assert step in words
    fills = {e.get("fill") for e in root.iter(f"{SVG}rect")}
    assert "#7a1f5c" in fills, "the event's accent on the title bar"
    assert root.find(f"{SVG}path[@class='qr']") is not None


def test_svg_card_without_wifi_date_pin_or_accent() -> None:
    root, words = svg_text(render_card(facts(wifi_name=None, date=None, accent=None), "svg"))
    assert "WiFi" not in words and "PIN" not in words and "December" not in words
    assert "Scan the QR code" in words
    assert card.DEFAULT_ACCENT in {e.get("fill") for e in root.iter(f"{SVG}rect")}


def test_a_pin_the_box_cannot_print_asks_the_host() -> None:
    _, words = svg_text(render_card(facts(pin=None, pin_required=True), "svg"))
    assert "PIN: ask your host" in words


def test_svg_escapes_the_event_name() -> None:
    _, words = svg_text(render_card(facts(name='<script>"Tom & Jerry"</script>'), "svg"))
    assert '<script>"Tom & Jerry"</script>' in words


def test_pdf_card_is_a6_with_the_event_name() -> None:
    pdf = render_card(facts(), "pdf")
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/MediaBox [0 0 297.64 419.53]" in pdf, "A6 portrait: 105 x 148 mm in points"
    assert b"/Title (Smith wedding)" in pdf


def test_png_card_is_300_dpi_a6_and_its_qr_code_reads_back() -> None:
    png = render_card(facts(), "png")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (1240, 1748)
        pixels = image.convert("RGB")
    # only the QR code is pure black: its modules, read back at their centres
    black = Image.eval(pixels.convert("L"), lambda v: 255 if v == 0 else 0)
    left, top, right, bottom = black.getbbox() or (0, 0, 0, 0)
    matrix = [list(map(bool, row)) for row in segno.make(URL, error="m").matrix_iter(border=0)]
    count = len(matrix)
    assert right - left == bottom - top > 500, "a large code: over 4 cm on the card"
    module = (right - left) / count
    read = [
        [
            pixels.getpixel((int(left + (col + 0.5) * module), int(top + (row + 0.5) * module))) == (0, 0, 0)
            for col in range(count)
        ]
        for row in range(count)
    ]
    assert read == matrix


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_a_name_in_any_script_never_crashes(fmt: str) -> None:
    name = "Zoë & Łukasz 🎉 漢字 Ωμέγα"
    out = render_card(facts(name=name, wifi_name="Café Łódź"), fmt)
    assert len(out) > 1000
    if fmt == "svg":
        _, words = svg_text(out)
        assert "Zoë & Łukasz" in words and "Café Łódź" in words
    if fmt == "pdf":
        title = "Zoë & Łukasz 🎉 漢字 Ωμέγα".encode("utf-16-be").hex().encode()
        assert b"<feff" + title + b">" in out


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_without_a_system_font_the_core_fonts_do(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = Path("/nonexistent/font.ttf")
    monkeypatch.setattr(card, "FONTS", {False: missing, True: missing})
    card._font.cache_clear()
    card._glyphs.cache_clear()
    try:
        out = render_card(facts(name="Zoë & Łukasz — 漢字"), fmt)
    finally:
        card._font.cache_clear()
        card._glyphs.cache_clear()
    assert len(out) > 1000
    if fmt == "pdf":
        assert b"/BaseFont /Helvetica" in out
        title = "Zoë & Łukasz — 漢字".encode("utf-16-be").hex().encode()
        assert b"<feff" + title + b">" in out, "the metadata keeps the name whole"


def test_latin1_spells_what_the_core_font_lacks() -> None:
    assert latin1("Zoë & Łukasz — Œuvre") == "Zoë & Lukasz - OEuvre"
    assert latin1("漢") == "?"
    latin1("Zoë & Łukasz 漢字").encode("latin-1")


def test_unknown_format_is_refused_in_words() -> None:
    with pytest.raises(CardFormatError, match="pdf, svg or png"):
        render_card(facts(), "gif")
    assert issubclass(CardFormatError, ValueError)


def test_dates_read_as_words() -> None:
    assert readable_date("2026-12-24") == "Thursday 24 December 2026"
    assert readable_date("2027-01-02") == "Saturday 2 January 2027"
    assert readable_date("next summer") == "next summer", "anything else as it was given"


def test_a_light_accent_gets_dark_text() -> None:
    assert card.text_on("#ffd400") == card.INK
    assert card.text_on("#1d6fd8") == "#ffffff"
    root, _ = svg_text(render_card(facts(accent="#ffd400"), "svg"))
    title = next(root.iter(f"{SVG}text"))
    assert title.get("fill") == card.INK
    assert card.accent_colour("red") == card.DEFAULT_ACCENT, "only #rrggbb is taken"


def test_a_long_name_and_address_stay_on_the_card() -> None:
    long = facts(
        name="The wedding of " + "Bartholomew " * 12, url="http://" + "x" * 150 + ".example/e/abcd2345"
    )
    layout = card.layout(long)
    assert sum(1 for line in layout.lines if line.bold and line.size >= 12) >= 2
    assert all(0 <= line.y <= card.HEIGHT_MM for line in layout.lines)
    assert all(card._width(line.text, line.size, line.bold) <= 89.5 for line in layout.lines)
    assert layout.qr_y + layout.qr_size < card.HEIGHT_MM
    _, words = svg_text(render_card(long, "svg"))
    assert "…" in words


# --- the start banner


def test_the_banner_lists_every_address(tmp_path: Path) -> None:
    chosen = settings(
        mdns={"enabled": False},
        web={"host": "0.0.0.0"},
        admin={"host": "127.0.0.1"},
        ftp={"passive_ports": "60000-60099"},
    )
    connect = {"host": "192.0.2.2", "port": 2121, "implicit_tls_port": 990, "passive_ports": "60000-60099"}
    lines = "\n".join(
        address_lines(
            chosen, connect, web_port=8080, admin_port=8081, control_socket=tmp_path / "control.sock"
        )
    )
    assert "192.0.2.2:2121" in lines and "explicit FTPS" in lines
    assert "192.0.2.2:990" in lines and "implicit TLS" in lines
    assert lines.count("passive ports 60000-60099") == 2
    assert f"guest page      http://{lan_address()}:8080" in lines
    assert "admin API       http://127.0.0.1:8081" in lines
    assert str(tmp_path / "control.sock") in lines
    no_admin = "\n".join(
        address_lines(
            chosen,
            {**connect, "implicit_tls_port": None},
            web_port=80,
            admin_port=None,
            control_socket=tmp_path,
        )
    )
    assert "FTPS   " not in no_admin and "no HTTP listener" in no_admin
    assert f"http://{lan_address()} " in no_admin, "port 80 left out"
