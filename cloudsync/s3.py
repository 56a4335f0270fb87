"""S3 uploads that are safe to repeat and resume: content-addressed keys (the caller puts the
photo's SHA-256 in the key), a SHA-256 checksum on every request, a HEAD afterwards compared by
us (moto does not reject a wrong checksum, and we trust nothing we did not check), multipart for
large files with the upload id and finished parts persisted through a caller's Journal after
each part, so a dropout or a reboot resumes from the last part instead of starting over.

Round trips cost more than bytes on a venue link (150 ms each way): a body up to
``INLINE_MAX`` is read and given as bytes, which the clients ``cloudsync.clients`` makes send
with their headers (botocore otherwise waits for ``100 Continue`` before any PUT body: one round
trip more); a larger one is streamed and still asks first. A caller that knows the key cannot
exist yet (its first attempt) skips the HEAD before the PUT. Every PUT is reported to ``on_transfer(bytes,
started, answered, waits)`` (monotonic times; ``waits``: round trips without body in between),
which is how the appliance measures what its link carries.

Blocking boto3 calls; run on a worker thread. Errors leave as ``cloudsync.errors`` types.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from cloudsync.errors import PermanentError, TransientError, classify

logger = logging.getLogger(__name__)

MiB = 1 << 20
MULTIPART_THRESHOLD = 16 * MiB
PART_SIZE = 8 * MiB  # S3's minimum is 5 MiB (but for the last part)
INLINE_MAX = 4 * MiB  # single PUTs up to this go as bytes (no 100-continue round trip)
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class PartRecord:
    number: int
    etag: str
    checksum: str  # base64 SHA-256 of the part


@dataclass(slots=True)
class MultipartState:
    upload_id: str
    part_size: int
    parts: dict[int, PartRecord] = field(default_factory=dict)


class Journal(Protocol):
    """Where multipart progress survives a reboot (the appliance keeps it in its database)."""

    def load(self, key: str) -> MultipartState | None: ...

    def save(self, key: str, state: MultipartState) -> None: ...

    def clear(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class UploadResult:
    key: str
    size: int
    checksum: str  # what S3 reports: base64 SHA-256, or composite "<b64>-<parts>"
    already_there: bool
    parts_sent: int
    bytes_sent: int


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def composite_checksum(part_checksums: list[str]) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' digests, then ``-N``."""
    joined = b"".join(base64.b64decode(c) for c in part_checksums)
    return f"{b64_sha256(joined)}-{len(part_checksums)}"


def same_checksum(reported: str, expected: str) -> bool:
    """Compare checksums; S3 reports a multipart composite as ``<b64>-<parts>``, some
    implementations (moto) without the ``-<parts>`` suffix."""
    digest, _, parts = reported.partition("-")
    want_digest, _, want_parts = expected.partition("-")
    return digest == want_digest and (not parts or parts == want_parts)


class _Paced(io.RawIOBase):
    """A seekable reader that asks the bandwidth bucket before handing out new bytes.

    botocore may read a body twice (over plain HTTP it reads it once to sign it, then seeks
    back): only bytes past the high-water mark are paced and counted as sent."""

    def __init__(self, raw: io.BufferedReader | io.BytesIO, pace: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._pace = pace
        self._start = raw.tell()
        self.sent = 0

    def readable(self) -> bool:
        return True

    def close_source(self) -> None:
        self._raw.close()

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > _CHUNK:
            size = _CHUNK
        position = self._raw.tell() - self._start
        data = self._raw.read(size)
        fresh = position + len(data) - self.sent
        if fresh > 0:
            if self._pace is not None:
                self._pace(fresh)
            self.sent += fresh
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class S3Uploader:
    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        pace: Callable[[int], None] | None = None,
        on_transfer: Callable[[int, float, float, int], None] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.pace = pace
        self.on_transfer = on_transfer

    def _transferred(self, nbytes: int, started: float, waits: int) -> None:
        if self.on_transfer is not None and nbytes:
            self.on_transfer(nbytes, started, time.monotonic(), waits)

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise classify(exc) from exc

    # --- reading back

    def checksum_of(self, key: str) -> tuple[str, int] | None:
        """(checksum, size) of the object as S3 reports it, or None when it does not exist."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise classify(exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise classify(exc) from exc
        return str(head.get("ChecksumSHA256", "")), int(head["ContentLength"])

    # --- uploading

    def upload(
        self, key: str, path: Path, sha256_hex: str, journal: Journal, *, check_first: bool = True
    ) -> UploadResult:
        """Put ``path`` at ``key`` unless it is already there, whole and with the same content.
        ``check_first=False``: the caller knows nothing can be at ``key`` yet (its first attempt
        at this content), so the HEAD before a single PUT is skipped; the HEAD after it is not."""
        size = path.stat().st_size
        whole = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
        if size <= self.multipart_threshold:
            if check_first:
                existing = self.checksum_of(key)
                if existing is not None and existing[1] == size and same_checksum(existing[0], whole):
                    return UploadResult(key, size, whole, True, 0, 0)
            if size <= INLINE_MAX:
                data = path.read_bytes()
                if self.pace is not None:
                    self.pace(len(data))
                body: bytes | _Paced = data
                waits = 1
            else:
                body = _Paced(path.open("rb"), self.pace)
                waits = 2  # botocore waits for "100 Continue" before a file-like body
            started = time.monotonic()
            try:
                self._call(
                    "put_object",
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=whole,
                )
            finally:
                if isinstance(body, _Paced):
                    body.close_source()
            sent = body.sent if isinstance(body, _Paced) else size
            self._transferred(sent, started, waits)
            self._verify(key, whole, size)
            return UploadResult(key, size, whole, False, 1, sent)
        return self._multipart(key, path, size, journal)

    def _verify(self, key: str, expected: str, size: int) -> None:
        found = self.checksum_of(key)
        if found is None or found[1] != size or not same_checksum(found[0], expected):
            raise PermanentError(
                f"s3://{self.bucket}/{key} reads back as {found}, expected {(expected, size)}"
            )

    def _multipart(self, key: str, path: Path, size: int, journal: Journal) -> UploadResult:
        state = journal.load(key)
        if state is not None:
            state = self._resume(key, state)
        if state is None:
            existing = self.checksum_of(key)
            if existing is not None and existing[1] == size and self._matches_file(existing[0], path):
                return UploadResult(key, size, existing[0], True, 0, 0)
            created = self._call(
                "create_multipart_upload", Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"
            )
            state = MultipartState(str(created["UploadId"]), self.part_size)
            journal.save(key, state)
        count = -(-size // state.part_size)
        parts_sent = bytes_sent = 0
        with path.open("rb") as handle:
            for number in range(1, count + 1):
                if number in state.parts:
                    continue  # sent before the dropout or reboot: not again
                handle.seek((number - 1) * state.part_size)
                data = handle.read(state.part_size)
                checksum = b64_sha256(data)
                body = _Paced(io.BytesIO(data), self.pace)
                started = time.monotonic()
                reply = self._call(
                    "upload_part",
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=state.upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=len(data),
                    ChecksumSHA256=checksum,
                )
                self._transferred(body.sent, started, 2)
                state.parts[number] = PartRecord(number, str(reply["ETag"]), checksum)
                journal.save(key, state)
                parts_sent += 1
                bytes_sent += body.sent
        ordered = [state.parts[n] for n in range(1, count + 1)]
        self._call(
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=key,
            UploadId=state.upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.number, "ETag": p.etag, "ChecksumSHA256": p.checksum} for p in ordered
                ]
            },
        )
        expected = composite_checksum([p.checksum for p in ordered])
        self._verify(key, expected, size)
        journal.clear(key)
        return UploadResult(key, size, expected, False, parts_sent, bytes_sent)

    def _resume(self, key: str, state: MultipartState) -> MultipartState | None:
        """Trust S3's own list of parts (a part we sent but did not journal is kept, too)."""
        try:
            listed = self.client.list_parts(Bucket=self.bucket, Key=key, UploadId=state.upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                logger.info("multipart upload of %s is gone; starting over", key)
                return None
            raise classify(exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise classify(exc) from exc
        parts = {}
        for part in listed.get("Parts", []):
            number = int(part["PartNumber"])
            mine = state.parts.get(number)
            checksum = str(part.get("ChecksumSHA256") or (mine.checksum if mine else ""))
            if checksum:
                parts[number] = PartRecord(number, str(part["ETag"]), checksum)
        return MultipartState(state.upload_id, state.part_size, parts)

    def _matches_file(self, checksum: str, path: Path) -> bool:
        """Is the object at the key this file, uploaded whole or in our part size?"""
        with path.open("rb") as handle:
            whole = base64.b64encode(hashlib.file_digest(handle, "sha256").digest()).decode()
            if same_checksum(checksum, whole):
                return True
            sums = []
            handle.seek(0)
            while chunk := handle.read(self.part_size):
                sums.append(b64_sha256(chunk))
        return same_checksum(checksum, composite_checksum(sums))

    # --- housekeeping

    def abort_stale(self, prefix: str, keep: set[str], older_than: dt.timedelta) -> int:
        """Abort multipart uploads under ``prefix`` that no journal knows and that are old."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        listed = self._call("list_multipart_uploads", Bucket=self.bucket, Prefix=prefix)
        aborted = 0
        for upload in listed.get("Uploads", []):
            if upload["UploadId"] in keep or upload["Initiated"] > cutoff:
                continue
            self._call(
                "abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            aborted += 1
        return aborted

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (an event's purge); returns how many."""
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    deleted += len(keys)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise classify(exc) from exc
        return deleted


__all__ = [
    "Journal",
    "MultipartState",
    "PartRecord",
    "S3Uploader",
    "TransientError",
    "UploadResult",
    "composite_checksum",
]
