"""Hostile HTTP against a live box: its admin API through schemathesis, its guest pages through
Hypothesis.

Admin API: the schema the box serves at ``/openapi.json`` on the admin HTTP listener (loopback:
no token), every operation, positive and negative data, schemathesis's default checks except the
three the schema cannot pass as written (``ADMIN_CHECKS_EXCLUDED``). The purge
(``DELETE /api/events/{code}``) runs last.

Guest pages: the public listener lists no schema on purpose (``openapi_url=None``); the admin API
serves it (``/api/guest/openapi.json``), and schemathesis runs every guest operation from it
against the live guest listener (all default checks but positive_data_acceptance: a schema-valid
event code is still mostly not an event). Hypothesis then drives the live box harder: raw request
targets (traversal, encodings, forged and cross-event tokens, host keys, query junk) and search
uploads (random and mutated pictures, wrong and malformed multipart bodies). Invariants: never a
5xx; a 404 is the bare "Not found" (or, for a code, the page with the code form); a photo, ZIP
or host link works only for the event it was signed for; nothing about event A ever links a
photo of event B; the box stays up.
"""

from __future__ import annotations

import io
import json
import re
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation import GenerationMode

from appliance.credentials import ALPHABET
from appliance.guest.app import MESSAGES
from tests.boxproc import BoxProcess, make_box, store
from tests.test_fuzz_formats import ESCAPES, mutated_picture
from tests.test_guest_api import wait_indexed

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
HTTP = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# --- the admin API, with schemathesis -------------------------------------------------------------

# Checks the admin schema cannot pass as FastAPI writes it (reported, not hidden): handlers answer
# 404/409/503 (StoreError, HTTPException) that no operation documents (status_code_conformance);
# path parameters are validated in the handler, so a schema-valid code can get 422
# (positive_data_acceptance); and those 422s carry {"detail": "<text>"}, not FastAPI's documented
# validation-error list (response_schema_conformance).
ADMIN_CHECKS_EXCLUDED = ["status_code_conformance", "positive_data_acceptance", "response_schema_conformance"]
ADMIN_SCHEMA_GAPS: dict[tuple[str, str], list[str]] = {}  # none left: each gap found was fixed
PURGE = ("DELETE", "/api/events/{code}")


SQLITE_INT_MAX = (1 << 63) - 1


@dataclass
class AdminBox:
    box: BoxProcess
    url: str
    event: str  # a real event (with a key and a photo): handlers get past their 404
    username: str
    api: httpx.Client  # with the box's bearer token (loopback needs it too)


@pytest.fixture(scope="module")
def admin_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminBox]:
    """A box of its own for schemathesis: it creates events and keys, pauses sync, purges."""
    running = make_box(tmp_path_factory.mktemp("admin") / "data", faces__enabled="false").start()
    try:
        event = running.new_event("Admin fuzz")
        user, password = running.new_key(event, camera="admin-fuzz")
        with running.ftp(user, password) as ftp:
            assert store(ftp, "IMG_0001.JPG", _jpeg(seed=1)).startswith("226")
        with running.admin_api() as api:
            yield AdminBox(running, running.admin_url, event, user, api)
    finally:
        code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


@pytest.fixture(scope="module")
def admin_schema(admin_box: AdminBox) -> Any:
    return schemathesis.openapi.from_url(
        f"{admin_box.url}/openapi.json", headers=admin_box.box.admin_headers(), timeout=30
    )


def operation_test(
    cases: st.SearchStrategy[Any],
    excluded: list[Any],
    max_examples: int,
    headers: dict[str, str] | None = None,
) -> Any:
    @settings(HTTP, max_examples=max_examples, phases=[Phase.generate])
    @given(case=cases)
    def run(case: Any) -> None:
        case.call_and_validate(excluded_checks=excluded, timeout=60, headers=headers)

    return run


def fuzz_operations(admin: AdminBox, schema: Any, *, purge: bool, max_examples: int) -> dict[str, str]:
    """Every admin operation but the purge (or only the purge), half the cases aimed at the box's
    real event and key (so handlers get past "no such event"); failures by operation."""
    return fuzz_schema(
        schema,
        lambda path: {"code": admin.event, "username": admin.username},
        lambda method, path: ((method, path) == PURGE) == purge,
        lambda method, path: [*ADMIN_CHECKS_EXCLUDED, *ADMIN_SCHEMA_GAPS.get((method, path), [])],
        max_examples,
        headers=admin.box.admin_headers(),
    )


def fuzz_schema(
    schema: Any,
    real: Callable[[str], dict[str, str]],
    select: Callable[[str, str], bool],
    excluded_checks: Callable[[str, str], list[str]],
    max_examples: int,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Run every selected operation with positive and negative cases, and as many again with the
    path parameters that `real(path)` names set to those real values; failures by operation."""
    load_all_checks()
    failures: dict[str, str] = {}
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not select(operation.method.upper(), operation.path):
            continue
        ran += 1
        excluded = CHECKS.get_by_names(excluded_checks(operation.method.upper(), operation.path))
        aimed = {
            name: value for name, value in real(operation.path).items() if "{" + name + "}" in operation.path
        }
        strategies = [
            operation.as_strategy(mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if aimed:
            strategies += [
                operation.as_strategy(mode, path_parameters=aimed)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            ]

        try:
            operation_test(st.one_of(strategies), excluded, max_examples, headers)()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup
            failures[operation.label] = str(exc)[:3000]
    assert ran, "no operation selected: the schema changed shape?"
    return failures


def test_admin_api_operations_hold_schemathesis_checks(admin_box: AdminBox, admin_schema: Any) -> None:
    failures = fuzz_operations(admin_box, admin_schema, purge=False, max_examples=25)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_admin_api_operations_hold_schemathesis_checks_long(admin_box: AdminBox, admin_schema: Any) -> None:
    failures = fuzz_operations(admin_box, admin_schema, purge=False, max_examples=300)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


@pytest.mark.parametrize("action", ["retry", "discard"])
def test_dead_letter_ids_past_64_bits_are_not_found(admin_box: AdminBox, action: str) -> None:
    reply = admin_box.api.post(f"{admin_box.url}/api/deadletters/{SQLITE_INT_MAX + 1}/{action}", timeout=30)
    assert reply.status_code in (404, 422), f"{reply.status_code}: {reply.text[:200]}"


def test_index_quota_past_64_bits_is_refused(admin_box: AdminBox) -> None:
    reply = admin_box.api.put(
        f"{admin_box.url}/api/events/{admin_box.event}/quota",
        json={"index_quota": SQLITE_INT_MAX + 1},
        timeout=30,
    )
    assert reply.status_code == 422, f"{reply.status_code}: {reply.text[:200]}"


@settings(HTTP, max_examples=10)
@given(job_id=st.integers(min_value=0, max_value=1 << 70), quota=st.integers(min_value=0, max_value=1 << 70))
@example(job_id=SQLITE_INT_MAX + 1, quota=0)
@example(job_id=0, quota=SQLITE_INT_MAX + 1)
def test_admin_integers_never_fail_property(admin_box: AdminBox, job_id: int, quota: int) -> None:
    for reply in (
        admin_box.api.post(f"{admin_box.url}/api/deadletters/{job_id}/retry", timeout=30),
        admin_box.api.put(
            f"{admin_box.url}/api/events/{admin_box.event}/quota", json={"index_quota": quota}, timeout=30
        ),
    ):
        assert reply.status_code < 500, f"{reply.request.url} -> {reply.status_code}"


def test_qr_svg_content_type_is_documented(admin_schema: Any) -> None:
    responses = admin_schema.raw_schema["paths"]["/api/events/{code}/qr.svg"]["get"]["responses"]
    assert "image/svg+xml" in responses["200"]["content"], responses["200"]


def test_index_quota_refuses_a_boolean(admin_box: AdminBox) -> None:
    reply = admin_box.api.put(
        f"{admin_box.url}/api/events/{admin_box.event}/quota", json={"index_quota": False}, timeout=30
    )
    assert reply.status_code == 422, reply.text


@pytest.mark.parametrize(
    ("method", "path", "functions"),
    [("POST", "/api/events", ["main", "main"]), ("PUT", "/api/events/zzzzzzzz", ["a", "A"])],
)
def test_duplicate_function_names_are_not_an_event_code_collision(
    admin_box: AdminBox, method: str, path: str, functions: list[str]
) -> None:
    reply = admin_box.api.request(
        method, admin_box.url + path, json={"name": "dup", "functions": functions}, timeout=30
    )
    assert reply.status_code in (201, 422), reply.text  # merged, or refused as invalid input


def test_admin_api_purge_holds_schemathesis_checks(admin_box: AdminBox, admin_schema: Any) -> None:
    """Last of the admin tests: the destructive one (on this module's own box), random codes and
    then the real event, which must be gone afterwards."""
    failures = fuzz_operations(admin_box, admin_schema, purge=True, max_examples=25)
    assert not failures, failures
    reply = admin_box.api.delete(f"{admin_box.url}/api/events/{admin_box.event}", timeout=60)
    assert reply.status_code in (200, 404), reply.text  # 404: the fuzzing purged it already
    assert admin_box.api.get(f"{admin_box.url}/api/events/{admin_box.event}/guest").status_code == 404
    assert not (admin_box.box.data / "photos" / admin_box.event).exists()


def _jpeg(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    image = Image.effect_noise(size, 40 + seed).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


# --- a raw HTTP client: request targets exactly as written ----------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def raw_request(
    port: int,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    body: bytes = b"",
    timeout: float = 60,
) -> Answer:
    """One request on its own connection; h11 (uvicorn) or the app answers, never a hang.

    The body goes in 64 KiB pieces and sending stops as soon as an answer arrives: a server may
    refuse an upload before reading it (and then reset the connection), as browsers expect."""
    head = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    head += [name + b": " + value for name, value in headers]
    if body or method == b"POST":
        head.append(b"Content-Length: " + str(len(body)).encode())
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            for at in range(0, len(body), 1 << 16):
                if select.select([sock], [], [], 0)[0]:
                    break  # answered early
                sock.sendall(body[at : at + (1 << 16)])
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        except (ConnectionResetError, BrokenPipeError):
            pass  # keep what arrived before the reset
    raw = b"".join(chunks)
    if not raw:
        return Answer(0, {}, b"")  # reset before any answer: the caller decides if that is fine
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), raw[:200]
    parsed: dict[str, str] = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        parsed[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if parsed.get("transfer-encoding") == "chunked":
        payload = _dechunk(payload)
    return Answer(int(status_line.split()[1]), parsed, payload)


# --- the guest side: a venue with two events ------------------------------------------------------


@dataclass
class Venue:
    box: BoxProcess
    web: int  # port
    events: dict[str, set[int]]  # event code -> its photo ids
    tokens: dict[str, set[str]] = field(default_factory=dict)  # event -> genuine photo tokens
    zips: dict[str, set[str]] = field(default_factory=dict)  # event -> genuine ZIP tokens
    host_keys: dict[str, str] = field(default_factory=dict)  # host key -> its event

    @property
    def codes(self) -> list[str]:
        return sorted(self.events)

    def other(self, code: str) -> str:
        return next(c for c in self.codes if c != code)

    def check_isolation(self, code: str | None, body: str) -> None:
        """Nothing about event `code` links a photo or ZIP of another event."""
        for other in self.codes:
            if other != code:
                assert f"/e/{other}/p/" not in body and f"/e/{other}/zip/" not in body, (
                    f"a response about {code} links photos of {other}"
                )

    def record(self, code: str, result: dict[str, Any]) -> None:
        for match in result["matches"]:
            self.tokens.setdefault(code, set()).add(match["thumbnail_url"].split("/p/")[1].split("/")[0])
        if result["zip_url"]:
            self.zips.setdefault(code, set()).add(result["zip_url"].rsplit("/", 1)[1])


def face(name: str) -> bytes:
    return (FACES / name).read_bytes()


def reencoded(name: str) -> bytes:
    out = io.BytesIO()
    with Image.open(FACES / name) as image:
        image.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def multipart(fields: list[tuple[bytes, bytes, bytes | None, bytes | None]], boundary: bytes) -> bytes:
    """(name, data, filename, content type) parts, as a browser sends them."""
    out = b""
    for name, data, filename, ctype in fields:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        out += b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n"
        if ctype is not None:
            out += b"Content-Type: " + ctype + b"\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def search(venue: Venue, code: str, selfie: bytes, page: bool = False) -> Answer:
    boundary = b"fuzzboundary1234"
    body = multipart([(b"selfie", selfie, b"selfie.jpg", b"image/jpeg")], boundary)
    target = f"/e/{code}/search" if page else f"/api/events/{code}/search"
    ctype = b"multipart/form-data; boundary=" + boundary
    return raw_request(venue.web, b"POST", target.encode(), [(b"Content-Type", ctype)], body)


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    if not FACES.is_dir():
        pytest.skip(f"public-domain face photos not found at {FACES}")
    box = make_box(
        tmp_path_factory.mktemp("guestfuzz") / "data",
        faces__workers="1",
        guest__searches_per_minute="100000",
        guest__code_attempts_per_hour="100000",
        guest__max_selfie_mb="1",  # so an oversize upload is cheap to send
    ).start(timeout=90)
    try:
        events: dict[str, set[int]] = {}
        for name, files in [
            ("Wedding A", {"obama-1.jpg": face("obama-1.jpg"), "biden-1.jpg": face("biden-1.jpg")}),
            ("Conference B", {"obama-2.jpg": reencoded("obama-2.jpg"), "hopper-1.jpg": face("hopper-1.jpg")}),
        ]:
            code = box.new_event(name)
            user, password = box.new_key(code, camera=f"cam-{code}")
            with box.ftp(user, password) as ftp:
                for filename, data in files.items():
                    assert store(ftp, filename, data).startswith("226")
            events[code] = {p["id"] for p in box.photos(code)}
        wait_indexed(box, timeout=180)
        result = Venue(box, int(box.info["web_port"]), events)
        admin = f"http://127.0.0.1:{box.info['admin_port']}"
        for code in result.codes:
            answer = search(result, code, face("obama-3.jpg"))
            assert answer.status == 200, answer.text
            found = json.loads(answer.body)
            assert found["matches"], f"premise: obama-3 finds Obama in {code}"
            result.record(code, found)
            link = httpx.post(
                f"{admin}/api/events/{code}/host-link", headers=box.admin_headers(), timeout=30
            ).json()["url"]
            result.host_keys[urlsplit(link).path.rsplit("/", 1)[1]] = code
        yield result
    finally:
        code = box.stop()
    assert code == 0, f"box exited with {code}:\n{box.log[-4000:]}"


def check_answer(venue: Venue, target: str, answer: Answer, *, head: bool = False) -> None:
    """The invariants of every guest answer."""
    assert answer.status < 500, f"{target} -> {answer.status}: {answer.text[:500]}"
    # A 404 is the bare one, except the page a person gets for a code that leads nowhere (the
    # home page's form, an event page, a PIN or search post: "No event has that code", with the
    # code form) and HEAD (no body).
    if answer.status == 404 and not head and answer.body != b"Not found":
        assert "No event has that code" in answer.text and 'name="code"' in answer.text, (
            f"{target}: a 404 must be the bare one or the unknown-code page: {answer.text[:300]}"
        )
    assert "Traceback" not in answer.text
    named = re.match(r"/(?:e|api/events)/([^/?#]+)", target)
    code = named.group(1).lower() if named else None  # codes are case-insensitive
    if target.startswith("/host/"):
        code = venue.host_keys.get(target.split("/")[2].split("?")[0])
    if answer.headers.get("content-type", "").startswith(("text/", "application/json")):
        venue.check_isolation(code, answer.text)
    photo = re.fullmatch(
        r"/e/([^/]+)/p/([^/]+)/(thumb\.jpg|view\.jpg|f\d+\.jpg|download)", target.split("?")[0]
    )
    if photo and answer.status in (200, 304):
        event, token = photo.group(1).lower(), photo.group(2)
        assert token in venue.tokens.get(event, set()), f"{target} served a photo for a token not of {event}"
    archive = re.fullmatch(r"/e/([^/]+)/zip/([^/]+)", target.split("?")[0])
    if archive and answer.status == 200:
        event, token = archive.group(1).lower(), archive.group(2)
        assert token in venue.zips.get(event, set()), f"{target} served a ZIP for a token not of {event}"
    host = re.fullmatch(r"/host/([^/?]+)", target.split("?")[0])
    if host and answer.status == 200:
        assert host.group(1) in venue.host_keys, f"{target} opened a host page for an unknown key"


# --- strategies over the venue's own codes and tokens ---------------------------------------------


def mutate_token(token: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, len(token) - 1).flatmap(
            lambda i: st.sampled_from("AZaz09-_=.%/").map(lambda c: token[:i] + c + token[i + 1 :])
        ),
        st.integers(1, len(token) - 1).map(lambda n: token[:n]),
        st.text("AZaz09-_", min_size=1, max_size=8).map(lambda t: token + t),
        st.just(token.upper()),
        st.just(quote(token, safe="")),
    )


def token_strategy(venue: Venue) -> st.SearchStrategy[str]:
    genuine = sorted(t for tokens in venue.tokens.values() for t in tokens)
    zips = sorted(t for tokens in venue.zips.values() for t in tokens)
    every = genuine + zips
    return st.one_of(
        st.sampled_from(every),
        st.sampled_from(every).flatmap(mutate_token),
        st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60),
        st.sampled_from(["..", "%2e%2e", "..%2F..%2Fshutterbox.db", "%00", "A" * 5000, "link.key"]),
    )


def mostly(
    percent: int, common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """`common` about `percent` % of the time (Hypothesis's one_of would split evenly)."""
    return st.integers(0, 99).flatmap(lambda n: common if n < percent else rare)


def code_strategy(venue: Venue) -> st.SearchStrategy[str]:
    return mostly(60, st.sampled_from(venue.codes), forged_code(venue))


def forged_code(venue: Venue) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(venue.codes).map(str.upper),
        st.text(ALPHABET, min_size=8, max_size=8),
        st.text(ALPHABET, max_size=12),
        st.sampled_from(["", "..", "%2e%2e", "e", "%00", " ", "\u00e9", "a" * 3000]),
    )


SEGMENT_JUNK = ["..", ".", "%2e%2e", "%2F", "%5C", "//", ";", "%00", "%ff", "~", "*", "index.html", "static"]


@st.composite
def guest_target(draw: st.DrawFn, venue: Venue) -> str:
    code = draw(code_strategy(venue))
    own = sorted(venue.tokens.get(code, set()) | venue.zips.get(code, set()))
    token = draw(mostly(40, st.sampled_from(own), token_strategy(venue)) if own else token_strategy(venue))
    shape = draw(
        st.sampled_from(
            [
                "/e/{c}",
                "/e/{c}/",
                "/e/{c}/p/{t}/thumb.jpg",
                "/e/{c}/p/{t}/view.jpg",
                "/e/{c}/p/{t}/download",
                "/e/{c}/p/{t}/other.jpg",
                "/e/{c}/p/{t}",
                "/e/{c}/zip/{t}",
                "/e/{c}/qr.png",
                "/e/{c}/qr.svg",
                "/e/{c}/qr.gif",
                "/e/{c}/pin",
                "/host/{h}",
                "/host/{h}?page={n}",
                "/?code={c}",
                "/api/events/{c}/search",
                "/healthz",
                "/docs",
                "/openapi.json",
                "/api/events",
                "/api/status",
                "/{j}",
                "/e/{c}/{j}/{t}",
            ]
        )
    )
    host = draw(st.one_of(st.sampled_from(sorted(venue.host_keys)), token_strategy(venue)))
    target = shape.format(
        c=code,
        t=token,
        h=host,
        n=draw(st.sampled_from(["1", "0", "-5", "abc", "99999999999999999999", "1e3", ""])),
        j=draw(st.sampled_from(SEGMENT_JUNK)),
    )
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(1, len(target)))
        target = target[:at] + draw(st.sampled_from(SEGMENT_JUNK)) + target[at:]
    return quote(target, safe="/?=&%;~*.-_:@!$'()+,")


METHODS = mostly(75, st.just(b"GET"), st.sampled_from([b"HEAD", b"POST", b"PUT", b"DELETE"]))


@settings(HTTP, max_examples=150)
@given(data=st.data(), method=METHODS)
def test_guest_paths_never_fail_or_leak(venue: Venue, data: st.DataObject, method: bytes) -> None:
    guest_path_case(venue, data, method)


@pytest.mark.slow
@settings(HTTP, max_examples=2000)
@given(data=st.data(), method=METHODS)
def test_guest_paths_never_fail_or_leak_long(venue: Venue, data: st.DataObject, method: bytes) -> None:
    guest_path_case(venue, data, method)


def guest_path_case(venue: Venue, data: st.DataObject, method: bytes) -> None:
    target = data.draw(guest_target(venue), label="target")
    answer = raw_request(venue.web, method, target.encode("ascii"))
    event(f"{target.split('/')[1][:12]} -> {answer.status}")  # --hypothesis-show-statistics
    check_answer(venue, target, answer, head=method == b"HEAD")


HOST_PAGE = 60  # appliance.guest.app.HOST_PAGE


@pytest.mark.parametrize("page", [str(SQLITE_INT_MAX // HOST_PAGE + 2), "99999999999999999999"])
def test_host_page_far_past_the_end_is_answered(venue: Venue, page: str) -> None:
    key = next(iter(venue.host_keys))
    answer = raw_request(venue.web, b"GET", f"/host/{key}?page={page}".encode())
    assert answer.status in (200, 404), f"{answer.status}: {answer.text[:200]}"


@pytest.mark.parametrize("page", ["abc", "", "-3", "1e3", "%D9%A3", "0x10", "1.5", "x" * 5000])
def test_host_page_typed_by_hand_shows_the_first_page(venue: Venue, page: str) -> None:
    """Not FastAPI's 422 JSON echoing what was typed: the host's gallery, page 1."""
    key = next(iter(venue.host_keys))
    answer = raw_request(venue.web, b"GET", f"/host/{key}?page={page}".encode())
    assert answer.status == 200, f"{answer.status}: {answer.text[:200]}"
    assert answer.headers.get("content-type", "").startswith("text/html"), answer.headers
    first = raw_request(venue.web, b"GET", f"/host/{key}?page=1".encode())
    tokens = re.compile(r"/e/[^/]+/zip/[^\"]+")  # signed per request
    assert tokens.sub("", answer.text) == tokens.sub("", first.text)


@settings(HTTP, phases=[Phase.explicit])
@given(page=st.integers())
@example(page=1 << 63)
def test_host_page_numbers_never_fail_property(venue: Venue, page: int) -> None:
    target = f"/host/{next(iter(venue.host_keys))}?page={page}"
    check_answer(venue, target, raw_request(venue.web, b"GET", target.encode()))


# --- search uploads -------------------------------------------------------------------------------


@dataclass
class Upload:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    what: str

    def __repr__(self) -> str:  # Hypothesis prints it on failure: not a megabyte of it
        return (
            f"Upload({self.what}, headers={self.headers!r}, {len(self.body)} bytes: {self.body[:300]!r}...)"
        )


@st.composite
def upload(draw: st.DrawFn, venue: Venue) -> Upload:
    """A hostile search upload: headers, body and what it is."""
    picture = draw(
        st.integers(0, 19).flatmap(
            lambda n: (
                mutated_picture()
                if n < 9
                else st.binary(max_size=4000)
                if n < 13
                else st.sampled_from(
                    [
                        face("hopper-1.jpg"),
                        reencoded("obama-3.jpg"),
                        face("obama-3.jpg")[:20_000],
                        b"",
                        b"\xff\xd8",
                    ]
                )
                if n < 19
                else st.just(b"\xff\xd8" + b"\0" * (1 << 20) + b"\xff\xd9")
            )  # over guest.max_selfie_mb
        )
    )
    boundary = draw(
        mostly(
            70,
            st.just(b"fuzzboundary1234"),
            st.sampled_from([b"x", b"-" * 70, b"a'b(c)", b"\xc3\xa9t\xc3\xa9"]),
        )
    )
    name = draw(mostly(80, st.just(b"selfie"), st.sampled_from([b"file", b"SELFIE", b"", b"selfie\r\nX: y"])))
    filename = draw(st.sampled_from([b"selfie.jpg", None, b"../../etc/passwd", b"x" * 2000, b"\xff\xfe.png"]))
    ctype = draw(st.sampled_from([b"image/jpeg", None, b"text/html", b"application/octet-stream"]))
    fields = [(name, picture, filename, ctype)]
    if draw(st.integers(0, 4)) == 0:
        fields.append((b"selfie", draw(st.binary(max_size=100)), b"second.jpg", b"image/png"))
    if draw(st.integers(0, 4)) == 0:
        fields.insert(0, (b"note", b"n" * draw(st.integers(0, 100_000)), None, None))
    body = multipart(fields, boundary)
    damage = draw(mostly(80, st.just("none"), st.sampled_from(["cut", "garbage", "no-final-boundary"])))
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "garbage":
        body = draw(st.binary(max_size=2000))
    elif damage == "no-final-boundary":
        body = body.rsplit(b"--" + boundary + b"--", 1)[0]
    content_type = draw(
        mostly(
            75,
            st.sampled_from(
                [
                    b"multipart/form-data; boundary=" + boundary,
                    b'multipart/form-data; boundary="' + boundary + b'"',
                ]
            ),
            st.sampled_from(
                [
                    b"multipart/form-data",
                    b"multipart/form-data; boundary=other",
                    b"multipart/mixed; boundary=" + boundary,
                    b"application/json",
                    b"text/plain",
                    b"application/x-www-form-urlencoded",
                    b"",
                ]
            ),
        )
    )
    headers = [(b"Content-Type", content_type)] if content_type else []
    return Upload(headers, body, f"{damage} body, {content_type!r}, fields {[f[0] for f in fields]}")


OK_SEARCH_ERRORS = {"not_an_image", "too_large", "upload_too_large", "no_face", "face_too_small"}
OK_SEARCH_ERRORS |= {"no_file", "bad_request"}


@settings(HTTP, max_examples=80)
@given(data=st.data(), page=st.booleans())
def test_hostile_search_uploads_never_fail_or_leak(venue: Venue, data: st.DataObject, page: bool) -> None:
    search_upload_case(venue, data, page)


@pytest.mark.slow
@settings(HTTP, max_examples=800)
@given(data=st.data(), page=st.booleans())
def test_hostile_search_uploads_never_fail_or_leak_long(
    venue: Venue, data: st.DataObject, page: bool
) -> None:
    search_upload_case(venue, data, page)


def search_upload_case(venue: Venue, data: st.DataObject, page: bool) -> None:
    code = data.draw(mostly(85, st.sampled_from(venue.codes), forged_code(venue)), label="code")
    sent = data.draw(upload(venue), label="upload")
    headers, body, what = sent.headers, sent.body, sent.what
    target = quote(f"/e/{code}/search" if page else f"/api/events/{code}/search", safe="/%")
    answer = raw_request(venue.web, b"POST", target.encode(), headers, body)
    event(f"{'page' if page else 'api'} {answer.status} {answer.text[:40] if answer.status != 200 else ''}")
    if answer.status == 0:
        assert len(body) > 1 << 16, f"{target} ({what}): connection reset without an answer"
        return
    check_answer(venue, target, answer)
    code = code.lower()  # an event's code in capitals is that event
    if code not in venue.events:
        assert answer.status == 404, f"{target} ({what}) -> {answer.status}"
        return
    ok = (303, 400, 413, 422) if page else (200, 400, 413, 422)  # the page: 303 to its results
    assert answer.status in ok, f"{target} ({what}) -> {answer.status}: {answer.text[:300]}"
    if page:
        return
    result = json.loads(answer.body)
    if answer.status != 200:
        assert result["error"] in OK_SEARCH_ERRORS and result["message"], result
        return
    venue.record(code, result)
    assert {m["photo_id"] for m in result["matches"]} <= venue.events[code], "photos of another event"
    for match in result["matches"]:
        for key in ("thumbnail_url", "view_url", "download_url"):
            assert urlsplit(match[key]).path.startswith(f"/e/{code}/p/"), match


# --- the guest API, with schemathesis --------------------------------------------------------------

# Path parameters are checked in the handlers (an event code, a signed token), so a schema-valid
# value is mostly a 404: positive_data_acceptance cannot hold. Every other default check does.
GUEST_CHECKS_EXCLUDED = ["positive_data_acceptance"]


@pytest.fixture(scope="module")
def guest_schema(venue: Venue) -> Any:
    """The guest listener's schema, as the admin API serves it; requests go to the guest port."""
    admin = f"http://127.0.0.1:{venue.box.info['admin_port']}"
    reply = httpx.get(f"{admin}/api/guest/openapi.json", headers=venue.box.admin_headers(), timeout=30)
    assert reply.status_code == 200, reply.text
    assert raw_request(venue.web, b"GET", b"/openapi.json").status == 404  # not listed on the LAN
    schema = schemathesis.openapi.from_dict(reply.json())
    schema.config.update(base_url=f"http://127.0.0.1:{venue.web}")
    return schema


def guest_real_values(venue: Venue, path: str) -> dict[str, str]:
    """A real event, its host key and (by route) a genuine photo or ZIP token of it."""
    code = venue.codes[0]
    tokens = venue.zips if "/zip/" in path else venue.tokens
    return {
        "code": code,
        "token": sorted(tokens[code])[0],
        "key": next(k for k, c in venue.host_keys.items() if c == code),
        "variant": "thumb",
        "fmt": "svg",
    }


def guest_schema_failures(venue: Venue, schema: Any, max_examples: int) -> dict[str, str]:
    return fuzz_schema(
        schema,
        lambda path: guest_real_values(venue, path),
        lambda method, path: True,
        lambda method, path: GUEST_CHECKS_EXCLUDED,
        max_examples,
    )


def test_guest_schema_documents_every_route(guest_schema: Any) -> None:
    paths = guest_schema.raw_schema["paths"]
    search = paths["/api/events/{code}/search"]["post"]
    assert "selfie" in search["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"200", "400", "404", "413", "422", "429", "503"} <= set(search["responses"])
    errors = search["responses"]["422"]["content"]["application/json"]["schema"]["properties"]["error"]
    assert set(errors["enum"]) == set(MESSAGES), "the documented error codes are the ones the API sends"
    assert {"/", "/e/{code}", "/e/{code}/zip/{token}", "/host/{key}", "/healthz"} <= set(paths)


def test_guest_api_operations_hold_schemathesis_checks(venue: Venue, guest_schema: Any) -> None:
    failures = guest_schema_failures(venue, guest_schema, max_examples=30)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_guest_api_operations_hold_schemathesis_checks_long(venue: Venue, guest_schema: Any) -> None:
    failures = guest_schema_failures(venue, guest_schema, max_examples=300)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_the_box_is_still_up_after_the_guest_fuzzing(venue: Venue) -> None:
    assert venue.box.proc is not None and venue.box.proc.poll() is None
    answer = raw_request(venue.web, b"GET", b"/healthz")
    assert answer.status == 200 and b'"ok":true' in answer.body
    code = venue.codes[0]
    found = search(venue, code, face("obama-3.jpg"))
    assert found.status == 200 and json.loads(found.body)["matches"]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            name,
        )
        for name, (_, why) in ESCAPES.items()
    ],
)
@pytest.mark.parametrize("page", [False, True], ids=["api", "page"])
def test_undecodable_selfies_get_a_friendly_error(venue: Venue, case: str, page: bool) -> None:
    answer = search(venue, venue.codes[0], ESCAPES[case][0](), page=page)
    assert answer.status == 422, f"{answer.status}: {answer.text[:200]}"


@settings(HTTP, phases=[Phase.explicit], report_multiple_bugs=False)
@given(selfie=st.binary())
@example(selfie=ESCAPES["dds-pixel-format-flags-0"][0]())
@example(selfie=ESCAPES["avif-missing-primary-item"][0]())
@example(selfie=ESCAPES["im-fractional-size"][0]())
def test_search_never_fails_known_escapes_property(venue: Venue, selfie: bytes) -> None:
    answer = search(venue, venue.codes[0], selfie)
    check_answer(venue, f"/api/events/{venue.codes[0]}/search", answer)
