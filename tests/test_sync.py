"""Cloud sync end to end: a real box, moto's S3 server and the fake Rekognition on loopback,
frames sent by FTP. Every frame reaches S3 once and is indexed once; permanent errors go to dead
letters while others flow; throttling slows without losing; quotas park and resume; a kill -9
mid-sync pays at most once more and stores no duplicate face."""

from __future__ import annotations

import ftplib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import S3_BUCKET as BUCKET
from tests.fakes.rekognition import FakeRekognition, make_face_jpeg


def cloud_box(tmp: Path, s3_endpoint: str, rekognition_url: str, **extra: str) -> BoxProcess:
    settings = {
        "cloud__bucket": BUCKET,
        "cloud__s3_endpoint_url": s3_endpoint,
        "cloud__rekognition_endpoint_url": rekognition_url,
        "cloud__access_key_id": "test",
        "cloud__secret_access_key": "test",
        "cloud__upload_mbit": "400",
        **extra,
    }
    return make_box(tmp / "data", **settings)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def jobs(box: BoxProcess) -> dict[str, int]:
    return dict(box.status()["cloud"]["jobs"])


def objects(s3: Any, prefix: str) -> dict[str, int]:
    found = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["Size"] for o in found}


def frames(people: list[list[str]]) -> list[bytes]:
    """One JPEG per list of people, each face declared for the fake (stand-in face engine)."""
    out = []
    for seed, names in enumerate(people):
        faces = [{"person": n, "box": [60 + 220 * i, 80, 180, 180]} for i, n in enumerate(names)]
        out.append(make_face_jpeg(900, 600, faces, seed=seed + 10))
    return out


def upload_all(box: BoxProcess, event: str, data: list[bytes], camera: str = "cam1") -> list[int]:
    user, password = box.new_key(event, camera=camera)
    with box.ftp(user, password) as ftp:
        for i, frame in enumerate(data):
            reply = store(ftp, f"IMG_{i:04d}.JPG", frame)
            assert reply.startswith("226")
    return [p["id"] for p in box.photos(event)]


def test_frames_reach_s3_and_are_indexed_exactly_once(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    orphan = s3.create_multipart_upload(Bucket=BUCKET, Key="events/gone/x", ChecksumAlgorithm="SHA256")
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url).start()
    try:
        event = box.new_event("Wedding")
        ids = upload_all(box, event, frames([["alice", "bob"], ["alice"], ["carol"]]))
        wait_for("all sync jobs done", lambda: jobs(box).get("done") == 6)
        keys = objects(s3, f"events/{event}/")
        assert len([k for k in keys if "/proxy/" in k]) == 3 and len(keys) == 6
        assert all(k.startswith(f"events/{event}/main/cam1/") for k in keys)
        assert rekognition.count("IndexFaces") == 3
        assert rekognition.invalid_requests == [], "every request matched botocore's model"
        faces = rekognition.collections[event]
        assert len(faces) == 4
        client = boto3.client(
            "rekognition",
            endpoint_url=rekognition.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        selfie = make_face_jpeg(400, 400, [{"person": "alice", "box": [100, 100, 200, 200]}], seed=99)
        found = client.search_faces_by_image(CollectionId=event, Image={"Bytes": selfie})["FaceMatches"]
        assert sorted(int(m["Face"]["ExternalImageId"]) for m in found) == sorted(ids[:2])
        ledger = box.cli("ledger", "--event", event)
        assert [r["outcome"] for r in ledger] == ["ok"] * 3
        assert sorted(r["photo_id"] for r in ledger) == sorted(ids)
        assert box.status()["cloud"]["uplink"] == "online"
        assert all(p["searchable_in_cloud_at"] for p in box.photos(event))
        uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="events/").get("Uploads", [])
        assert orphan["UploadId"] not in {u["UploadId"] for u in uploads}, "stale multipart aborted"
    finally:
        box.stop()


def test_permanent_error_goes_to_dead_letter_while_others_flow(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url, cloud__workers="1").start()
    try:
        event = box.new_event()
        rekognition.fail_next("IndexFaces", "AccessDeniedException", times=1, status=400)
        upload_all(box, event, frames([["dave"], ["erin"], ["frank"]]))
        wait_for("two indexed, one dead", lambda: jobs(box).get("dead") == 1 and jobs(box).get("done") == 5)
        [dead] = box.cli("deadletters")
        assert dead["kind"] == "proxy" and "AccessDenied" in dead["reason"]
        box.cli("deadletters", "retry", str(dead["job_id"]))
        wait_for("the retried job done", lambda: jobs(box).get("done") == 6)
        assert box.cli("deadletters") == []
        assert len(rekognition.collections[event]) == 3
    finally:
        box.stop()


def test_throttling_slows_down_without_losing_work(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url).start()
    try:
        event = box.new_event()
        rekognition.fail_next("IndexFaces", "ThrottlingException", times=4)
        rekognition.fail_next("CreateCollection", "ProvisionedThroughputExceededException", times=1)
        ids = upload_all(box, event, frames([["gina"], ["hank"], ["ivan"]]))
        wait_for("all done despite throttling", lambda: jobs(box).get("done") == 6, timeout=90)
        assert box.cli("deadletters") == []
        ledger = box.cli("ledger", "--event", event)
        ok = Counter(r["photo_id"] for r in ledger if r["outcome"] == "ok")
        assert ok == Counter(ids), "each photo indexed exactly once"
        throttled = [r for r in ledger if "Throttling" in r["outcome"]]
        assert len(throttled) == 4, "every attempt is in the ledger, refused ones too"
        assert len(rekognition.collections[event]) == 3
        assert box.status()["cloud"]["counters"]["throttled"] >= 4
    finally:
        box.stop()


def test_quota_parks_indexing_visibly_and_raising_it_resumes(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url, cloud__workers="1").start()
    try:
        event = box.new_event()
        box.cli("event", "quota", event, "1")
        upload_all(box, event, frames([["judy"], ["kim"], ["leo"]]))
        wait_for(
            "one indexed, two parked", lambda: jobs(box).get("blocked") == 2 and jobs(box).get("done") == 4
        )
        assert rekognition.count("IndexFaces") == 1
        assert box.cli("event", "quota", event, "none")["released_jobs"] == 2
        wait_for("all indexed", lambda: jobs(box).get("done") == 6)
        assert rekognition.count("IndexFaces") == 3
    finally:
        box.stop()


def test_no_cloud_configured_and_cloud_unreachable_both_run_fine(tmp_path: Path) -> None:
    offline = make_box(tmp_path / "off" / "data").start()
    try:
        assert offline.status()["cloud"]["enabled"] is False
    finally:
        offline.stop()
    box = cloud_box(tmp_path / "dead", "http://127.0.0.1:9", "http://127.0.0.1:9").start()
    try:
        event = box.new_event()
        upload_all(box, event, frames([["mia"]]))
        assert len(box.photos(event)) == 1, "ingest does not depend on the uplink"
        wait_for("the uplink seen offline", lambda: box.status()["cloud"]["uplink"] == "offline", timeout=90)
        assert box.cli("deadletters") == [], "network failures are retried, never dead-lettered"
    finally:
        box.stop()


@pytest.mark.slow
def test_kill_9_during_sync_pays_at_most_once_more_and_duplicates_nothing(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url).start()
    event = box.new_event()
    people = [[f"p{i}"] for i in range(12)]
    ids = upload_all(box, event, frames(people))
    rekognition.delay("IndexFaces", 0.3)  # widen the window between the call and its commit
    for _ in range(3):
        time.sleep(0.8)
        box.kill9()
        box.start()
    wait_for("everything synced after the kills", lambda: jobs(box).get("done") == 24, timeout=120)
    ledger = box.cli("ledger", "--event", event)
    box.stop()
    keys = objects(s3, f"events/{event}/")
    assert len(keys) == 24, "each proxy and original once"
    faces = rekognition.collections[event]
    assert sorted(f["ExternalImageId"] for f in faces) == sorted(str(i) for i in ids), "no duplicate face"
    ok = Counter(r["photo_id"] for r in ledger if r["outcome"] == "ok")
    assert ok == Counter(ids), "exactly one settled IndexFaces per photo"
    # A kill between a ledger row ("calling") and its settling commit repeats that call once;
    # each kill can interrupt one call per worker (2). The ledger holds every call the fake saw,
    # and may hold one that never left the box.
    interrupted = [r for r in ledger if r["outcome"] == "calling"]
    assert len(ledger) == len(ids) + len(interrupted)
    assert len(interrupted) <= 3 * 2
    assert rekognition.count("IndexFaces") <= len(ledger)


def test_originals_policy_decides_which_originals_are_queued(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data").start()  # no cloud: the jobs are made and wait
    try:
        counts = {}
        for policy in ("all", "jpeg", "none"):
            event = box.cli("event", "create", policy, "--originals", policy)["code"]
            assert box.cli("event", "list") and event
            user, password = box.new_key(event, camera=policy)
            with box.ftp(user, password) as ftp:
                store(ftp, "IMG_1.JPG", frames([["x"]])[0])
                store(ftp, "IMG_1.XMP", b"<x:xmpmeta/>")
            counts[policy] = box.status()["cloud"]["jobs"]["pending"]
        assert counts["all"] == 3, "proxy + both originals"
        assert counts["jpeg"] - counts["all"] == 2, "proxy + the JPEG original only"
        assert counts["none"] - counts["jpeg"] == 1, "the proxy only"
        changed = box.cli("event", "originals", event, "all")
        assert changed["originals_policy"] == "all"
        assert box.status()["cloud"]["enabled"] is False
    finally:
        box.stop()


def test_purge_forgets_an_event_everywhere_and_only_that_event(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url).start()
    try:
        gone, kept = box.new_event("forget me"), box.new_event("keep me")
        user, password = box.new_key(gone, camera="cam-gone")
        upload_all(box, gone, frames([["nina"], ["omar"]]), camera="cam-gone")
        upload_all(box, kept, frames([["pia"]]), camera="cam-kept")
        wait_for("both events synced", lambda: jobs(box).get("done") == 6)
        live = box.ftp(user, password)
        refused = box.run_cli("event", "purge", gone)
        assert refused.returncode == 2 and "--yes" in refused.stderr, "purge asks for --yes"
        result = box.cli("event", "purge", gone, "--yes")
        assert result["s3_objects_deleted"] == 4 and result["collection_deleted"] is True
        assert objects(s3, f"events/{gone}/") == {}
        assert gone not in rekognition.collections and kept in rekognition.collections
        assert len(objects(s3, f"events/{kept}/")) == 2
        with pytest.raises((OSError, EOFError, ftplib.Error)):
            live.sendcmd("NOOP")  # the event's camera sessions were cut
        live.close()
        assert gone not in {e["code"] for e in box.cli("event", "list")}
        assert not (box.data / "photos" / gone).exists() and not (box.data / "proxies" / gone).exists()
        assert not (box.data / "ftp" / user).exists()
        assert len(box.photos(kept)) == 1
        assert box.run_cli("photos", "--event", gone).returncode == 1
        ledger = box.cli("ledger", "--event", gone)
        assert len(ledger) == 2, "the bill stays: it holds only ids"
    finally:
        box.stop()


@pytest.mark.parametrize("fault", ["dropout", "reboot"])
def test_outage_mid_multipart_resumes_without_resending_parts(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition, fault: str
) -> None:
    """After two 5 MB parts of an 18.8 MB original the uplink drops (connections reset, new ones
    refused for 8 s, so the job fails and is re-run) or the box is killed and restarted; the
    upload resumes from the journal instead of starting over."""
    from tests.conftest import jpeg_bytes
    from tests.fakes.faultproxy import FaultProxy

    host, port = s3_endpoint.removeprefix("http://").split(":")
    with FaultProxy((host, int(port))) as link:
        box = cloud_box(
            tmp_path,
            link.url("http"),
            rekognition.url,
            cloud__multipart_threshold_mb="5",
            cloud__part_size_mb="5",
            cloud__upload_mbit="40",
            cloud__workers="1",
        ).start()
        try:
            event = box.new_event()
            big = jpeg_bytes(5000, 3500, seed=1, quality=98)
            user, password = box.new_key(event, camera="r5")
            with box.ftp(user, password) as ftp:
                store(ftp, "IMG_9999.JPG", big)
            wait_for("two parts sent", lambda: link.bytes_up > 12 * (1 << 20), timeout=60)
            if fault == "dropout":
                link.blackout(8, reset=True, refuse_new=True)
            else:
                box.kill9()
                box.start()
            wait_for("proxy and original synced", lambda: jobs(box).get("done") == 2, timeout=120)
            [photo] = box.photos(event)
            keys = objects(s3, f"events/{event}/")
            original = next(k for k in keys if "/proxy/" not in k)
            proxy = next(k for k in keys if "/proxy/" in k)
            assert keys[original] == len(big)
            body = s3.get_object(Bucket=BUCKET, Key=original)["Body"].read()
            assert body == big
            sent = link.bytes_up
            # resumed: the original once, plus at most the part cut mid-way, plus the proxy and
            # request overhead; starting over would add the 12 MB already sent
            assert sent < len(big) + keys[proxy] + (5 << 20) + (1 << 20), sent
            assert photo["searchable_in_cloud_at"]
            assert box.cli("deadletters") == []
        finally:
            box.stop()


def test_uplink_goes_offline_waits_and_resumes_within_seconds(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    from tests.fakes.faultproxy import FaultProxy

    host, port = s3_endpoint.removeprefix("http://").split(":")
    with FaultProxy((host, int(port))) as link:
        link.blackout(300, refuse_new=True)  # the venue's uplink is down
        box = cloud_box(tmp_path, link.url("http"), rekognition.url).start()
        try:
            event = box.new_event()
            upload_all(box, event, frames([["quinn"], ["rosa"]]))
            wait_for("uplink offline", lambda: box.status()["cloud"]["uplink"] == "offline", timeout=120)
            time.sleep(10)  # the job that was in flight finishes its quick in-job retries
            attempts_while_down = link.connections_total
            time.sleep(6)
            assert link.connections_total - attempts_while_down <= 3, (
                "offline: a probe every 3 s, no hammering"
            )
            assert box.cli("deadletters") == []
            link.heal()
            wait_for("synced after the uplink returned", lambda: jobs(box).get("done") == 4, timeout=30)
            assert box.status()["cloud"]["uplink"] in {"online", "degraded"}
            assert len(objects(s3, f"events/{event}/")) == 4
        finally:
            box.stop()


def test_upload_bandwidth_cap_paces_all_sync_traffic(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    """cloud.upload_mbit holds the box's uploads to its rate (the guests' WiFi keeps the rest):
    2.6 MB at 4 Mbit/s (500 kB/s) cannot be done in under ~4 s. A functional check of the cap,
    with a wide margin, not a performance figure."""
    from tests.conftest import jpeg_bytes

    box = cloud_box(
        tmp_path, s3_endpoint, rekognition.url, cloud__upload_mbit="4", cloud__index_faces="false"
    )
    box.start()
    try:
        event = box.new_event()
        frame = jpeg_bytes(2400, 1600, seed=7, quality=95)
        user, password = box.new_key(event, camera="paced")
        with box.ftp(user, password) as ftp:
            store(ftp, "IMG_0001.JPG", frame)
        started = time.monotonic()
        wait_for("proxy and original uploaded", lambda: jobs(box).get("done") == 2, timeout=60)
        elapsed = time.monotonic() - started
        sent = sum(objects(s3, f"events/{event}/").values())
        assert sent > 2_000_000
        floor = (sent - 256 * 1024) / 500_000  # the bucket may start with one 256 KiB burst
        assert elapsed >= floor * 0.8, (elapsed, floor)
    finally:
        box.stop()


def test_a_thin_link_gets_a_smaller_cloud_proxy_that_keeps_the_searchable_faces(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    """At 0.01 Mbit/s (the box's cap, which is also its guess of the link before it has measured
    anything) three photos in a few seconds leave ~6 kB a photo: the cloud gets a proxy at the
    floor (1366 px: faces.min_face_px 60 -> 40 px), not the 2048 px one the local index reads. The
    fake scales the frame's declaration to it: the 100 px face (68 px locally) is indexed, the 70
    px one (48 px locally, under min_face_px; 32 px in the cloud proxy) is too small. The object
    in S3 is the recorded cloud proxy (the ledger's key holds its SHA-256), and its file is gone
    once the photo is indexed."""
    import hashlib
    import io

    from PIL import Image

    box = cloud_box(tmp_path, s3_endpoint, rekognition.url, cloud__upload_mbit="0.01").start()
    try:
        event = box.cli("event", "create", "thin", "--originals", "none")["code"]
        people = [
            [
                {"person": f"big{i}", "box": [400, 500, 100, 100]},
                {"person": f"small{i}", "box": [1500, 500, 70, 70]},
            ]
            for i in range(3)
        ]
        data = [make_face_jpeg(3000, 2000, faces, seed=40 + i) for i, faces in enumerate(people)]
        ids = upload_all(box, event, data)
        wait_for("three proxies indexed", lambda: jobs(box).get("done") == 3, timeout=120)
        ledger = {r["photo_id"]: r["idempotency_key"] for r in box.cli("ledger", "--event", event)}
        for key in objects(s3, f"events/{event}/"):
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            with Image.open(io.BytesIO(body)) as image:
                assert max(image.size) == 1366, image.size
            photo = next(p for p in box.photos(event) if p["sha256"] in key)
            assert ledger[photo["id"]].endswith(":" + hashlib.sha256(body).hexdigest())
        stored = rekognition.collections[event]
        assert sorted(f["ExternalImageId"] for f in stored) == sorted(str(i) for i in ids), "one face each"
        assert all(f["BoundingBox"]["Left"] == pytest.approx(400 / 3000, abs=1e-3) for f in stored)
        status = box.status()["cloud"]["link"]
        assert status["cloud_proxy"]["long_edge"] == 1366 and status["cloud_proxy"]["floor"] == 1366
        assert not list((box.data / "proxies" / event / "cloud").glob("*.jpg")), "kept only until indexed"
        assert rekognition.invalid_requests == []
    finally:
        box.stop()
