"""cloudsync's S3 uploader against moto's real S3 server on loopback: verified checksums,
idempotent repeats, multipart resume after a dropout without re-sending parts, cleanup."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cloudsync.clients import make_clients
from cloudsync.errors import PermanentError, ThrottledError, TransientError, classify
from cloudsync.s3 import MultipartState, S3Uploader, composite_checksum
from tests.conftest import S3_BUCKET as BUCKET

MiB = 1 << 20


class MemoryJournal:
    def __init__(self) -> None:
        self.states: dict[str, MultipartState] = {}
        self.saves = 0

    def load(self, key: str) -> MultipartState | None:
        return self.states.get(key)

    def save(self, key: str, state: MultipartState) -> None:
        self.saves += 1
        self.states[key] = MultipartState(state.upload_id, state.part_size, dict(state.parts))

    def clear(self, key: str) -> None:
        self.states.pop(key, None)


def write(path: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_small_file_is_put_verified_and_not_sent_twice(s3: Any, tmp_path: Path) -> None:
    path, digest = write(tmp_path / "a.jpg", 300_000)
    uploader = S3Uploader(s3, BUCKET)
    key = f"events/abc/main/cam/{digest}.jpg"
    first = uploader.upload(key, path, digest, MemoryJournal())
    assert (first.already_there, first.bytes_sent, first.size) == (False, 300_000, 300_000)
    assert first.checksum == base64.b64encode(bytes.fromhex(digest)).decode()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest
    again = uploader.upload(key, path, digest, MemoryJournal())
    assert (again.already_there, again.bytes_sent) == (True, 0), "a retry after a crash sends nothing"


def _requests(client: Any) -> list[tuple[str, Any]]:
    """(method, Expect header) of every request ``client`` sends from now on."""
    sent: list[tuple[str, Any]] = []

    def record(request: Any, **kwargs: Any) -> None:
        sent.append((request.method, request.headers.get("Expect")))

    client.meta.events.register("before-send.s3", record)
    return sent


def test_a_first_attempt_takes_one_round_trip_to_put_and_one_to_verify(
    s3_endpoint: str, tmp_path: Path
) -> None:
    """Round trips are what a venue link is short of: a body up to INLINE_MAX goes as bytes (no
    ``Expect: 100-continue`` wait), the caller's first attempt skips the HEAD before the PUT, and
    every PUT is reported to ``on_transfer`` (bytes, started, answered, waits)."""
    client, _, _ = make_clients(
        region="us-east-1", s3_endpoint_url=s3_endpoint, access_key_id="test", secret_access_key="test"
    )
    sent = _requests(client)
    seen: list[tuple[int, float, float, int]] = []
    uploader = S3Uploader(client, BUCKET, on_transfer=lambda *t: seen.append(t))
    path, digest = write(tmp_path / "c.jpg", 200_000)
    key = f"events/abc/main/cam/{digest}.jpg"
    first = uploader.upload(key, path, digest, MemoryJournal(), check_first=False)
    assert first.bytes_sent == 200_000
    assert sent == [("PUT", None), ("HEAD", None)], "no HEAD before, no 100-continue wait"
    [(nbytes, started, answered, waits)] = seen
    assert nbytes == 200_000 and answered >= started and waits == 1
    sent.clear()
    again = uploader.upload(key, path, digest, MemoryJournal())
    assert again.already_there and sent == [("HEAD", None)], "a retry checks first"
    big, big_digest = write(tmp_path / "d.jpg", 5 * MiB)
    sent.clear()
    uploader.upload(f"events/abc/main/cam/{big_digest}.jpg", big, big_digest, MemoryJournal())
    assert sent[1] == ("PUT", b"100-continue"), "a streamed body still asks first"


def test_different_content_at_the_key_is_replaced(s3: Any, tmp_path: Path) -> None:
    path, digest = write(tmp_path / "b.jpg", 100_000)
    key = f"events/abc/main/cam/{digest}.jpg"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"half an upload from a crashed run")
    result = S3Uploader(s3, BUCKET).upload(key, path, digest, MemoryJournal())
    assert not result.already_there
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == 100_000


def test_multipart_upload_checks_the_composite_checksum(s3: Any, tmp_path: Path) -> None:
    path, digest = write(tmp_path / "big.cr3", 17 * MiB)
    uploader = S3Uploader(s3, BUCKET, multipart_threshold=5 * MiB, part_size=5 * MiB)
    journal = MemoryJournal()
    key = f"events/abc/main/cam/{digest}.cr3"
    result = uploader.upload(key, path, digest, journal)
    assert result.parts_sent == 4 and result.checksum.endswith("-4")
    data = path.read_bytes()
    parts = [
        base64.b64encode(hashlib.sha256(data[i : i + 5 * MiB]).digest()).decode()
        for i in range(0, len(data), 5 * MiB)
    ]
    assert result.checksum == composite_checksum(parts)
    assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest
    assert journal.states == {}, "a finished upload leaves no journal entry"
    assert uploader.upload(key, path, digest, journal).already_there


def test_dropout_mid_multipart_resumes_without_resending_parts(s3: Any, tmp_path: Path) -> None:
    path, digest = write(tmp_path / "video.mov", 23 * MiB)
    key = f"events/abc/main/cam/{digest}.mov"
    journal = MemoryJournal()
    sent = 0

    def link_dies_after_12_mib(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > 12 * MiB:
            raise ConnectionResetError("venue WiFi dropped")

    flaky = S3Uploader(
        s3, BUCKET, multipart_threshold=5 * MiB, part_size=5 * MiB, pace=link_dies_after_12_mib
    )
    with pytest.raises(TransientError):
        flaky.upload(key, path, digest, journal)
    state = journal.states[key]
    assert sorted(state.parts) == [1, 2], "two whole parts made it before the dropout"

    healthy = S3Uploader(s3, BUCKET, multipart_threshold=5 * MiB, part_size=5 * MiB)
    result = healthy.upload(key, path, digest, journal)
    assert result.parts_sent == 3, "parts 1 and 2 are not sent again"
    assert result.bytes_sent == 23 * MiB - 10 * MiB
    assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest


def test_resume_of_an_upload_that_was_aborted_starts_over(s3: Any, tmp_path: Path) -> None:
    path, digest = write(tmp_path / "gone.mov", 11 * MiB)
    key = f"events/abc/main/cam/{digest}.mov"
    created = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="SHA256")
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=created["UploadId"])
    journal = MemoryJournal()
    journal.states[key] = MultipartState(created["UploadId"], 5 * MiB, {})
    result = S3Uploader(s3, BUCKET, multipart_threshold=5 * MiB, part_size=5 * MiB).upload(
        key, path, digest, journal
    )
    assert result.parts_sent == 3 and not result.already_there


def test_stale_multipart_uploads_are_aborted_known_ones_kept(s3: Any) -> None:
    prefix = "events/stale/"
    stale = s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + "x", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    known = s3.create_multipart_upload(Bucket=BUCKET, Key=prefix + "y", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    uploader = S3Uploader(s3, BUCKET)
    # moto reports every upload as initiated in 2010: "recent" here means younger than 30 years
    assert uploader.abort_stale(prefix, keep={known}, older_than=dt.timedelta(days=365 * 30)) == 0
    assert uploader.abort_stale(prefix, keep={known}, older_than=dt.timedelta(seconds=-1)) == 1
    left = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])}
    assert left == {known} and stale not in left


def test_delete_prefix_removes_an_events_objects_only(s3: Any) -> None:
    for name in ("events/gone/a", "events/gone/b/c", "events/stays/a"):
        s3.put_object(Bucket=BUCKET, Key=name, Body=b"x")
    assert S3Uploader(s3, BUCKET).delete_prefix("events/gone/") == 2
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="events/").get("Contents", [])}
    assert "events/stays/a" in keys and not any(k.startswith("events/gone/") for k in keys)


def test_errors_are_classified_where_they_enter(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as denied:
        S3Uploader(s3, "no-such-bucket").upload("k", write(tmp_path / "x", 10)[0], "00" * 32, MemoryJournal())
    assert denied.value.code in {"NoSuchBucket", "404"}
    dead = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(TransientError):
        S3Uploader(dead, BUCKET).checksum_of("any")
    from botocore.exceptions import ClientError

    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    assert isinstance(classify(client_error("ThrottlingException", 400)), ThrottledError)
    assert isinstance(classify(client_error("ProvisionedThroughputExceededException", 400)), ThrottledError)
    assert isinstance(classify(client_error("SlowDown", 503)), ThrottledError)
    assert type(classify(client_error("InternalServerError", 500))) is TransientError
    assert isinstance(classify(client_error("InvalidImageFormatException", 400)), PermanentError)
    assert isinstance(classify(client_error("AccessDeniedException", 403)), PermanentError)
