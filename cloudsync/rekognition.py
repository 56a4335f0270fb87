"""Rekognition, one collection per event: create on first use, index a photo's proxy (its bytes,
or the object already uploaded to S3) under a deterministic ExternalImageId, search, delete on
purge.

Exactly-once is the caller's discipline plus AWS's behaviour: IndexFaces has no client token,
but the same bytes + the same collection + the same ExternalImageId do not store duplicate
faces. So the caller keeps the exact proxy bytes until indexed and always sends those, under
the photo's id. Every call is billed; the caller's ledger counts each one.

Blocking boto3 calls; run on worker threads. Every call goes through the shared RateLimiter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloudsync.errors import PermanentError, ThrottledError, classify
from cloudsync.ratelimit import INDEX, SEARCH, RateLimiter

MAX_IMAGE_BYTES = 5 * 1024 * 1024
_COLLECTION_RE = re.compile(r"^[a-zA-Z0-9_.\-]{1,255}$")
_EXTERNAL_ID_RE = re.compile(r"^[a-zA-Z0-9_.\-:]{1,255}$")


@dataclass(frozen=True, slots=True)
class S3Image:
    """An image Rekognition reads from S3 itself (same region): nothing is sent twice over the
    uplink. The object is the checksum-verified proxy, so its bytes are the cached proxy's."""

    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class IndexedFaces:
    face_ids: tuple[str, ...]
    unindexed: int


@dataclass(frozen=True, slots=True)
class FaceMatch:
    external_image_id: str
    face_id: str
    similarity: float


class FaceIndex:
    def __init__(
        self, client: Any, limiter: RateLimiter, observe: Callable[[str, str], None] | None = None
    ) -> None:
        """``observe(operation, result)`` is told of every call (result: ok, throttled, error)."""
        self.client = client
        self.limiter = limiter
        self.observe = observe or (lambda operation, result: None)

    def _call(self, method: str, lane: int, **kwargs: Any) -> Any:
        self.limiter.acquire(lane)
        operation = "".join(part.title() for part in method.split("_"))
        try:
            reply = getattr(self.client, method)(**kwargs)
        except (ClientError, BotoCoreError, OSError) as exc:
            error = classify(exc)
            throttled = isinstance(error, ThrottledError)
            self.observe(operation, "throttled" if throttled else "error")
            if throttled:
                self.limiter.backoff()
            raise error from exc
        self.observe(operation, "ok")
        return reply

    def ensure_collection(self, collection: str) -> bool:
        """Create the event's collection if needed; True when it was created now."""
        _check(_COLLECTION_RE, collection, "collection id")
        try:
            self._call("create_collection", INDEX, CollectionId=collection)
        except PermanentError as exc:
            if exc.code == "ResourceAlreadyExistsException":
                return False
            raise
        return True

    def delete_collection(self, collection: str) -> bool:
        try:
            self._call("delete_collection", INDEX, CollectionId=collection)
        except PermanentError as exc:
            if exc.code == "ResourceNotFoundException":
                return False
            raise
        return True

    def index(
        self,
        collection: str,
        image: bytes | S3Image,
        external_id: str,
        *,
        max_faces: int = 100,
        quality: str = "AUTO",
    ) -> IndexedFaces:
        _check(_COLLECTION_RE, collection, "collection id")
        _check(_EXTERNAL_ID_RE, external_id, "external image id")
        if isinstance(image, S3Image):
            source: dict[str, Any] = {"S3Object": {"Bucket": image.bucket, "Name": image.key}}
        elif len(image) > MAX_IMAGE_BYTES:
            raise PermanentError(f"proxy is {len(image)} bytes, over Rekognition's 5 MB", "ImageTooLarge")
        else:
            source = {"Bytes": image}
        reply = self._call(
            "index_faces",
            INDEX,
            CollectionId=collection,
            Image=source,
            ExternalImageId=external_id,
            MaxFaces=max_faces,
            QualityFilter=quality,
            DetectionAttributes=[],
        )
        faces = tuple(str(r["Face"]["FaceId"]) for r in reply.get("FaceRecords", []))
        return IndexedFaces(faces, len(reply.get("UnindexedFaces", [])))

    def search(
        self, collection: str, image: bytes, *, threshold: float = 90.0, max_faces: int = 4096
    ) -> list[FaceMatch]:
        """Guests' lane. No face in the selfie -> PermanentError with code InvalidParameterException."""
        reply = self._call(
            "search_faces_by_image",
            SEARCH,
            CollectionId=collection,
            Image={"Bytes": image},
            FaceMatchThreshold=threshold,
            MaxFaces=max_faces,
        )
        return [
            FaceMatch(
                str(m["Face"].get("ExternalImageId", "")), str(m["Face"]["FaceId"]), float(m["Similarity"])
            )
            for m in reply.get("FaceMatches", [])
        ]


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.match(value):
        raise PermanentError(f"invalid {what} {value!r}", "InvalidParameterException")
