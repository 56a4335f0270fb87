"""Guest link signing and rate limits: pure logic, checked with explicit clocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import GuestSettings
from appliance.guest.access import DAY, ClientWindow, GuestAccess, host_key_hash, new_host_key
from appliance.layout import Layout

NOW = 1_800_000_000.0  # a fixed instant (2027-01-15)


@pytest.fixture
def access(tmp_path: Path) -> GuestAccess:
    return GuestAccess(GuestSettings(link_hours=48), Layout(tmp_path))


def test_photo_token_is_bound_to_event_and_expires(access: GuestAccess, tmp_path: Path) -> None:
    token = access.photo_token("evnt2345", 42, now=NOW)
    assert access.photo_id("evnt2345", token, now=NOW) == 42
    assert access.photo_id("othr2345", token, now=NOW) is None
    # valid for at least link_hours, at most one day more (expiry at a day boundary)
    assert access.photo_id("evnt2345", token, now=NOW + 48 * 3600) == 42
    assert access.photo_id("evnt2345", token, now=NOW + 48 * 3600 + DAY + 1) is None
    # the same all day, so thumbnails stay cached
    assert access.photo_token("evnt2345", 42, now=NOW + 60) == token
    # one flipped character, garbage, or another box's key: refused
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert access.photo_id("evnt2345", flipped, now=NOW) is None
    assert access.photo_id("evnt2345", "..%2F..%2Fetc", now=NOW) is None
    (tmp_path / "other").mkdir()
    other_box = GuestAccess(GuestSettings(), Layout(tmp_path / "other"))
    assert other_box.photo_id("evnt2345", token, now=NOW) is None


def test_link_key_survives_restart(tmp_path: Path) -> None:
    first = GuestAccess(GuestSettings(), Layout(tmp_path))
    token = first.photo_token("evnt2345", 7, now=NOW)
    again = GuestAccess(GuestSettings(), Layout(tmp_path))
    assert again.photo_id("evnt2345", token, now=NOW) == 7
    assert (tmp_path / "link.key").stat().st_mode & 0o777 == 0o600


def test_zip_token_round_trips_many_ids_compactly(access: GuestAccess) -> None:
    ids = list(range(1, 5001))
    token = access.zip_token("evnt2345", ids, now=NOW)
    assert len(token) < 400, "5,000 consecutive ids fit in a URL"
    assert access.zip_ids("evnt2345", token, now=NOW) == ids
    assert access.zip_ids("othr2345", token, now=NOW) is None
    assert access.zip_ids("evnt2345", token, now=NOW + 4 * DAY) is None


def test_pin_cookie_changes_with_the_pin(access: GuestAccess) -> None:
    cookie = access.pin_cookie("evnt2345", "scrypt$hash-one")
    assert access.pin_cookie_ok("evnt2345", "scrypt$hash-one", cookie)
    assert not access.pin_cookie_ok("evnt2345", "scrypt$hash-two", cookie)
    assert not access.pin_cookie_ok("othr2345", "scrypt$hash-one", cookie)
    assert not access.pin_cookie_ok("evnt2345", "scrypt$hash-one", None)


def test_host_key_is_stored_only_as_a_hash() -> None:
    key, digest = new_host_key()
    assert len(key) >= 43 and digest == host_key_hash(key) and key not in digest


def test_rate_limiter_window_slides() -> None:
    limiter = ClientWindow(3, 60.0)
    assert [limiter.hit("10.0.0.9", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.hit("10.0.0.8", now=3), "another client has its own allowance"
    assert limiter.retry_after("10.0.0.9", now=3) == 58
    assert limiter.hit("10.0.0.9", now=60.5)
