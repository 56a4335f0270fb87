"""Frozen records that cross thread boundaries (FTP threads <-> asyncio), and the small helpers
every writer of them shares (timestamps, labels, the originals policy). Pure data."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

OriginalsPolicy = Literal["all", "jpeg", "none"]  # which originals go to S3: all, JPEG only, none
ORIGINALS_POLICIES: tuple[OriginalsPolicy, ...] = get_args(OriginalsPolicy)
Moderation = Literal["open", "approve"]  # guests see every frame at once, or only approved ones
MODERATIONS: tuple[Moderation, ...] = get_args(Moderation)
Approval = Literal["approved", "rejected"]  # the host's decision on one photo (None: none yet)

_LABEL_RE = re.compile(r"[^a-z0-9]+")


def utcnow() -> str:
    """Now, as the store writes times: ISO 8601 in UTC, milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def slug(text: str, limit: int = 24) -> str:
    """A file- and username-safe form of an operator label ('Ceremony 2' -> 'ceremony-2')."""
    return _LABEL_RE.sub("-", text.lower()).strip("-")[:limit] or "x"


@dataclass(frozen=True, slots=True)
class Event:
    code: str
    name: str
    created_at: str
    demo: bool
    functions: tuple[str, ...] = ()
    originals_policy: OriginalsPolicy = "all"
    index_quota: int | None = None  # photos to index in Rekognition at most (None: no limit)
    pin_hash: str | None = None  # guests must type this PIN first (scrypt hash; None: no PIN)
    host_key_hash: str | None = None  # SHA-256 of the host link's key (None: no host link)
    moderation: Moderation = "open"
    face_search: bool = True  # guests may search by selfie (off: the host-published gallery only)
    date: str | None = None  # the event's day as the guests see it (ISO date), if set
    accent: str | None = None  # the guest pages' accent colour, "#rrggbb", if set
    cover_photo_id: int | None = None  # a photo of the event shown on top of the guest pages

    def to_json(self) -> dict[str, Any]:
        data = {**asdict(self), "functions": list(self.functions)}
        data["pin"] = data.pop("pin_hash") is not None
        data["host_link"] = data.pop("host_key_hash") is not None
        return data


@dataclass(frozen=True, slots=True)
class UploadKey:
    username: str
    event: str
    function: str
    camera: str
    secret_hash: str
    created_at: str
    revoked_at: str | None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["secret_hash"]
        return data


@dataclass(frozen=True, slots=True)
class LandedFrame:
    """A verified, fsynced file already renamed into the photo store, ready to be queued."""

    event: str
    function: str
    camera: str
    username: str | None
    original_name: str
    ftp_path: str | None
    sha256: str
    size: int
    kind: str
    searchable: bool
    stored_path: str
    received_at: str
    capture_time: str | None
    body_serial: str | None
    make: str | None
    model: str | None
    orientation: int | None
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class Photo:
    id: int
    event: str
    function: str
    camera: str
    username: str | None
    original_name: str
    ftp_path: str | None
    sha256: str
    size: int
    kind: str
    searchable: bool
    state: str
    stored_path: str
    received_at: str
    capture_time: str | None
    body_serial: str | None
    make: str | None
    model: str | None
    orientation: int | None
    width: int | None
    height: int | None

    searchable_in_cloud_at: str | None = None  # when IndexFaces' result was committed
    proxy_path: str | None = None  # the searchable proxy JPEG, once made
    faces_state: str | None = None  # local face index: None (to do), "done" or "failed"
    searchable_local_at: str | None = None  # when the local face index recorded its faces
    evicted_at: str | None = None  # the original was deleted from the box, safely in S3
    faces_error: str | None = None  # why the local index has no picture of it ("no preview: ...")
    approval: Approval | None = None  # the host's decision (matters when the event is "approve")
    hidden_at: str | None = None  # the host hid it: no guest sees it, whatever the moderation
    cloud_proxy_edge: int | None = None  # the proxy sent to S3 and Rekognition, sized to the link
    cloud_proxy_sha256: str | None = None  # (the local proxy's when no smaller one was chosen)

    def shown_to_guests(self, moderation: Moderation) -> bool:
        """Whether guests may see it: not hidden, not rejected, and approved if the event says so."""
        if self.hidden_at is not None or self.approval == "rejected":
            return False
        return moderation == "open" or self.approval == "approved"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Rejection:
    id: int
    at: str
    username: str | None
    event: str | None
    original_name: str
    size: int
    reason: str
    quarantine_path: str | None
    resumed_photo_id: int | None = None  # the camera resumed this upload and it landed as this photo

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


PHOTO_COLUMNS = ", ".join(f.name for f in fields(Photo))  # SELECT these to make a Photo
MAX_BATCH = 500  # 19 columns x 500 rows stays under SQLite's 32766 bound parameters


def photo_from(data: dict[str, Any]) -> Photo:
    """A Photo from a row's columns by name."""
    data["searchable"] = bool(data["searchable"])
    return Photo(**data)
