"""The host in control against a real box: the operator's ``event edit`` and ``photos
approve|reject|hide|unhide`` over the control socket, the host page's form over HTTP, and the
photo wall's feed, which drops a hidden photo at once.

One ``shutterbox up`` for the module; photos sent by FTP as a camera sends them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    box = make_box(tmp_path_factory.mktemp("host") / "data").start()
    try:
        code = box.new_event("Gala")
        user, password = box.new_key(code, camera="R5")
        with box.ftp(user, password) as ftp:
            for n in range(3):
                assert store(ftp, f"IMG_{n}.JPG", jpeg_bytes(seed=n)).startswith("226")
        ids = {p["original_name"]: p["id"] for p in box.photos(code)}
        yield {"box": box, "code": code, "ids": ids, "web": f"http://127.0.0.1:{box.info['web_port']}"}
    finally:
        box.stop()


def wall(venue: dict[str, Any]) -> list[int]:
    answer = httpx.get(f"{venue['web']}/e/{venue['code']}/wall.json")
    assert answer.status_code == 200
    return [p["photo_id"] for p in answer.json()["photos"]]


def test_the_operator_moderates_and_the_wall_follows_at_once(venue: dict[str, Any]) -> None:
    box: BoxProcess = venue["box"]
    code, ids = venue["code"], venue["ids"]
    a, b, c = ids["IMG_0.JPG"], ids["IMG_1.JPG"], ids["IMG_2.JPG"]
    assert wall(venue) == [c, b, a], "an open event shows every photo"

    event = box.cli(
        "event", "edit", code, "--moderation", "approve", "--date", "2026-12-24", "--cover", str(a)
    )
    assert (event["moderation"], event["date"], event["cover_photo_id"]) == ("approve", "2026-12-24", a)
    assert wall(venue) == []
    assert [e["awaiting_approval"] for e in box.cli("event", "list") if e["code"] == code] == [3]

    assert box.cli("photos", "approve", code, str(a), str(b))["changed"] == 2
    assert wall(venue) == [b, a]
    assert box.cli("photos", "hide", code, str(b))["changed"] == 1
    assert wall(venue) == [a], "a hidden photo leaves the wall at the next poll"

    refused = box.run_cli("event", "edit", code, "--date", "24/12/2026")
    assert refused.returncode == 1
    assert "'24/12/2026' is not a day written yyyy-mm-dd" in refused.stderr
    missing = box.run_cli("photos", "reject", code, str(c), "999999")
    assert missing.returncode == 1 and "not photos of this event: 999999" in missing.stdout
    words = box.run_cli("photos", "unhide", code, str(b))
    assert words.returncode == 0 and words.stdout.strip() == f"{code}: 1 photo unhidden"
    assert wall(venue) == [b, a]
    box.cli("event", "edit", code, "--moderation", "open")


def test_the_host_page_moderates_by_form(venue: dict[str, Any]) -> None:
    box: BoxProcess = venue["box"]
    code, web, ids = venue["code"], venue["web"], venue["ids"]
    host = web + urlsplit(box.cli("event", "host-link", code)["url"]).path
    page = httpx.get(host)
    assert page.status_code == 200
    assert re.findall(r'data-state="(\w+)"', page.text), page.text[:300]

    a = ids["IMG_0.JPG"]
    refused = httpx.post(
        f"{host}/moderate", data={"action": "hide", "id": str(a)}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert refused.status_code == 403
    assert a in wall(venue)
    done = httpx.post(
        f"{host}/moderate", data={"action": "hide", "id": str(a)}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("done=hide&n=1")
    assert a not in wall(venue)
    landed = httpx.get(web + done.headers["location"])
    assert "1 photo hidden." in landed.text
    assert re.search(rf'data-photo="{a}">.*?data-state="hidden">Hidden<', landed.text, re.S)
    thumb = httpx.get(f"{host}/p/{a}/thumb.jpg")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg", (
        "the host still sees it"
    )
