"""A fake Amazon Rekognition (face collections) that speaks the real wire protocol.

AWS cannot run here and moto has no Rekognition collections, so tests point real boto3 at this::

    with FakeRekognition() as fake:
        client = boto3.client("rekognition", endpoint_url=fake.url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")

**Protocol.** A ``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) taking awsJson1_1: ``POST /``
with ``X-Amz-Target: RekognitionService.<Operation>`` and a JSON body (blobs base64). Answers are
JSON (``application/x-amz-json-1.1``); errors are HTTP 400 (500 for InternalServerError) with the
body the Rekognition guide documents, ``{"__type", "Code", "Logref", "Message"}`` (botocore reads
``__type`` and ``message`` or ``Message``), so boto3 raises ``client.exceptions.<Code>``.
Operations: CreateCollection, DeleteCollection, DescribeCollection, ListCollections, IndexFaces,
SearchFacesByImage, ListFaces, DeleteFaces.

**Enforced**, in this order: ``delay``, injected faults (AWS throttles at the front door), then
botocore's own service model for Rekognition, on every request: ``ParamValidator`` (required
members, types, unknown members, minimums) plus a walk for what it skips -- string patterns (full
match), ``max`` lengths of strings, lists, maps and blobs, numeric ``max``, enums.
Violations answer ``ValidationException`` in AWS's "1 validation error detected: Value ... at
'collectionId' failed to satisfy constraint: ..." form (Image.Bytes over 5 MiB answers
ImageTooLargeException instead). Documented limits: JPEG/PNG only, by magic
(InvalidImageFormatException); both sides >= 80 px (InvalidParameterException); a missing
collection is ResourceNotFoundException; creating one twice, ResourceAlreadyExistsException.
IndexFaces indexes at most ``MaxFaces`` (and never over 100) of the largest faces, the rest go to
``UnindexedFaces`` as EXCEEDS_MAX_FACES. QualityFilter (IndexFaces default AUTO, search default
NONE): anything but NONE drops faces under the documented detection floor -- 40x40 px in a
1920x1080 image, scaled up proportionally for larger images (never below 40 px) -- as
SMALL_BOUNDING_BOX. Re-indexing the same bytes into the same collection with the same
ExternalImageId returns the same FaceIds and adds nothing. SearchFacesByImage searches with the
largest face only; no face is InvalidParameterException. FaceIds/ImageIds are UUIDs from a seeded
generator (reproducible runs); ListFaces/ListCollections page by an opaque NextToken (default 1000).

**Faces (stand-in engine).** An image declares its faces: a JPEG COM segment (or PNG ``tEXt``
"Comment") reading ``shutterbox-faces:{"size": [W, H], "faces": [{"person": "alice", "box":
[x, y, w, h]}, ...]}``, boxes in pixels of a W x H picture (``with_faces``, ``make_face_jpeg``,
``make_face_png`` write it, with the size of the image they write it in). The comment travels
with the picture when it is resized (the box's proxies carry it over), so the fake scales the
boxes from W x H to the image it is sent: a face declared 120 px wide in a 3000 px frame is 82 px
in its 2048 px proxy and 55 px in a 1366 px one, and Rekognition's size floor applies to that.
The older form, a bare list (``shutterbox-faces:[...]``), has boxes in the pixels of whatever
image carries it, unscaled. Two faces match when ``person`` is equal: similarity 99.0 plus a
deterministic jitter under 1. Detection and matching
sit behind the ``FaceSource`` protocol: ``EngineFaces`` puts the box's own face engine (dlib
HOG + ResNet embeddings) behind it, so real photographs are detected and matched for real, with
the embedding distance mapped onto Rekognition's 0-100 similarity.

**S3 images.** Given ``s3`` (a boto3 S3 client, e.g. on moto's server), ``Image.S3Object``
(Bucket, Name, optional Version) is read from there; a missing object or bucket answers
InvalidS3ObjectException, an object over 15 MB ImageTooLargeException (AWS's S3 limit).

**For tests.** ``calls`` (operation, params with Image.Bytes replaced by its sha256 and size) and
``count(op)``; ``invalid_requests`` (everything the box should never send: model violations,
unknown operations, unparseable bodies, images over 5 MiB / not JPEG or PNG / under 80 px);
``collections`` (snapshot); ``billable_calls`` (IndexFaces / SearchFacesByImage that got past
validation, collection lookup and image checks, even ones that indexed nothing or, for a faceless
selfie, then failed); ``fail_next(op, code, times, status)`` and ``delay(op, seconds)``; ``crashes``
(bugs in the fake, answered as 500s).

**Not done.** No signatures or IAM (credentials are ignored), no S3 images without ``s3`` (an
S3Object then answers InvalidS3ObjectException), no users (a ListFaces UserId filter matches
nothing), FaceDetail has only BoundingBox, Confidence, a neutral Pose and Quality (no Landmarks,
DetectionAttributes ignored), no EXIF orientation with ``DeclaredFaces`` (a declaration's size is
taken as the stored, unrotated one), no quotas or rate
limits unless injected.
Unconfirmed against live AWS: ValidationException (not InvalidParameterException) for model
violations, the ResourceNotFoundException and missing-image messages, and billing of failed calls.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import io
import json
import random
import re
import socket
import struct
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

try:  # the model's tag patterns use \p{L}; `regex` knows it, `re` gets an approximation
    import regex as _regex
except ImportError:  # pragma: no cover
    _regex = None

FACE_MODEL_VERSION = "7.0"
ACCOUNT = "123456789012"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024
MIN_IMAGE_SIDE = 80
MAX_INDEXED_FACES = 100
FACES_TAG = "shutterbox-faces:"
# each is served by the method named after it: IndexFaces -> FakeRekognition._index_faces
OPERATIONS = frozenset(("CreateCollection", "DeleteCollection", "DescribeCollection", "ListCollections"))
OPERATIONS |= {"IndexFaces", "SearchFacesByImage", "ListFaces", "DeleteFaces"}
MESSAGES = {  # from the Rekognition developer guide, "Error handling"
    "ThrottlingException": "Slow down; sudden increase in rate of requests.",
    "ProvisionedThroughputExceededException": "Provisioned Rate exceeded.",
    "InternalServerError": "Internal server error",
    "AccessDeniedException": f"User: arn:aws:iam::{ACCOUNT}:user/test is not authorized to perform this",
    "ImageTooLargeException": "Image size is too large.",
    "InvalidImageFormatException": "Request has invalid image format.",
    "InvalidParameterException": "Request has invalid parameters.",
}
_MODEL = botocore.session.get_session().get_service_model("rekognition")


class RekognitionError(Exception):
    """An AWS error answer; ``invalid`` marks a request the caller should never have sent."""

    def __init__(self, code: str, message: str | None = None, status: int = 400, invalid: bool = False):
        super().__init__(message or MESSAGES.get(code, code))
        self.code, self.message, self.status, self.invalid = code, str(self), status, invalid


# --- the face stand-in --------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectedFace:
    """A face in pixels. ``signature`` identifies the person (a name here, an embedding later)."""

    left: float
    top: float
    width: float
    height: float
    signature: object
    confidence: float = 99.99


class FaceSource(Protocol):
    def faces(self, image: bytes) -> list[DetectedFace]: ...
    def similarity(self, probe: DetectedFace, candidate: DetectedFace) -> float: ...


class DeclaredFaces:
    """Faces come from the image's ``shutterbox-faces:`` declaration, scaled from the size it
    names to the image's own; same person = match."""

    def faces(self, image: bytes) -> list[DetectedFace]:
        _, width, height, texts = image_info(image)
        for text in texts:
            if text.startswith(FACES_TAG):
                declared = json.loads(text[len(FACES_TAG) :])
                sx = sy = 1.0
                if isinstance(declared, dict):  # {"size": [W, H], "faces": [...]}
                    size_w, size_h = declared["size"]
                    sx, sy = width / size_w, height / size_h
                    declared = declared["faces"]
                found = []
                for d in declared:
                    x, y, w, h = map(float, d["box"])
                    found.append(DetectedFace(x * sx, y * sy, w * sx, h * sy, signature=d["person"]))
                return found
        return []

    def similarity(self, probe: DetectedFace, candidate: DetectedFace) -> float:
        if probe.signature != candidate.signature:
            return 0.0
        jitter = hashlib.sha256(repr((probe, candidate)).encode()).digest()[0] / 256
        return min(100.0, 99.0 + jitter)


class EngineFaces:
    """Real detection and matching with the box's own engine (dlib HOG, ResNet embeddings).

    A face's signature is its embedding (a tuple, so faces stay comparable); similarity maps
    the embedding distance onto Rekognition's scale with a logistic centred at 0.58: the same
    person (distance up to ~0.5) scores over 90, different people (0.6 and more) under 45."""

    def __init__(self, min_face_px: int = 80) -> None:
        from appliance.faces.engine import FaceModel

        self._model = FaceModel(min_face_px=min_face_px)
        self._lock = threading.Lock()  # one dlib model, called from the fake's handler threads

    def faces(self, image: bytes) -> list[DetectedFace]:
        import numpy as np
        from PIL import ImageOps

        with Image.open(io.BytesIO(image)) as opened:
            pixels = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        with self._lock:
            found = self._model.faces(pixels)
        return [
            DetectedFace(f.left, f.top, f.width, f.height, signature=tuple(float(x) for x in f.embedding))
            for f in found
            if f.embedding is not None
        ]

    def similarity(self, probe: DetectedFace, candidate: DetectedFace) -> float:
        import math

        a, b = probe.signature, candidate.signature
        if not (isinstance(a, tuple) and isinstance(b, tuple)):
            return 0.0
        distance = math.dist(a, b)
        return round(100.0 / (1.0 + math.exp((distance - 0.58) * 30.0)), 3)


def image_info(data: bytes) -> tuple[str, int, int, list[str]]:
    """(``"jpeg"``/``"png"``, width, height, comment texts) from the headers; ValueError if neither."""
    texts: list[str] = []
    size: tuple[int, int] | None = None
    if data.startswith(b"\xff\xd8\xff"):
        kind, pos = "jpeg", 2
        while pos + 4 <= len(data) and data[pos] == 0xFF:
            marker = data[pos + 1]
            if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD7:
                pos += 1 if marker == 0xFF else 2
                continue
            (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
            body = data[pos + 4 : pos + 2 + length]
            if marker == 0xFE:
                texts.append(body.decode("utf-8", "replace"))
            elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and len(body) >= 5:
                height, width = struct.unpack(">HH", body[1:5])
                size = (width, height)
            if marker in (0xDA, 0xD9):
                break
            pos += 2 + length
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        kind, pos = "png", 8
        while pos + 8 <= len(data):
            length, chunk = struct.unpack(">I4s", data[pos : pos + 8])
            body = data[pos + 8 : pos + 8 + length]
            if chunk == b"IHDR" and len(body) >= 8:
                size = struct.unpack(">II", body[:8])
            elif chunk == b"tEXt" and body.startswith(b"Comment\0"):
                texts.append(body[8:].decode("latin-1"))
            elif chunk == b"IEND":
                break
            pos += 12 + length
    else:
        raise ValueError("neither JPEG nor PNG")
    if size is None:
        raise ValueError(f"{kind} without dimensions")
    return kind, size[0], size[1], texts


def declaration(faces: Sequence[Mapping[str, Any]], size: tuple[int, int]) -> str:
    """The declaration text of ``faces`` whose boxes are pixels of a ``size`` (W, H) picture."""
    listed = [{"person": f["person"], "box": list(f["box"])} for f in faces]
    return FACES_TAG + json.dumps({"size": list(size), "faces": listed})


def with_faces(jpeg: bytes, faces: Sequence[Mapping[str, Any]], size: tuple[int, int] | None = None) -> bytes:
    """The JPEG with a face declaration (COM segment) inserted right after SOI; the boxes are
    pixels of a ``size`` picture (default: this JPEG's own size)."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    if size is None:
        size = image_info(jpeg)[1:3]
    payload = declaration(faces, size).encode()
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("too many faces for one COM segment")
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _picture(width: int, height: int, faces: Sequence[Mapping[str, Any]], seed: int) -> Image.Image:
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y = rng.randrange(width), rng.randrange(height)
        draw.rectangle(
            (x, y, x + width // 5, y + height // 5), fill=tuple(rng.randrange(256) for _ in range(3))
        )
    for face in faces:
        x, y, w, h = face["box"]
        draw.ellipse((x, y, x + w, y + h), fill=(224, 172, 105), outline=(0, 0, 0))
    return image


def make_face_jpeg(width: int, height: int, faces: Sequence[Mapping[str, Any]], seed: int = 0) -> bytes:
    """A deterministic JPEG (same args, same bytes) with ``faces`` drawn and declared."""
    out = io.BytesIO()
    _picture(width, height, faces, seed).save(out, "JPEG", quality=85)
    return with_faces(out.getvalue(), faces, (width, height))


def make_face_png(width: int, height: int, faces: Sequence[Mapping[str, Any]], seed: int = 0) -> bytes:
    """Like ``make_face_jpeg`` but a PNG, the declaration in a ``tEXt`` "Comment" chunk."""
    info = PngInfo()
    info.add_text("Comment", declaration(faces, (width, height)))
    out = io.BytesIO()
    _picture(width, height, faces, seed).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def min_face_side(width: int, height: int) -> float:
    """The documented floor: 40 px in 1920x1080, proportionally more in larger images."""
    return 40 * max(1.0, max(width, height) / 1920, min(width, height) / 1080)


# --- request validation against botocore's model -----------------------------------------------


@functools.cache
def _matcher(pattern: str) -> Callable[[str], object]:
    if _regex is not None:
        matcher: Callable[[str], object] = _regex.compile(pattern).fullmatch
        return matcher
    for prop, approx in ((r"\p{L}", r"\w"), (r"\p{Z}", r"\s"), (r"\p{N}", r"\d")):
        pattern = pattern.replace(prop, approx)
    return re.compile(pattern).fullmatch


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def _violations(value: Any, shape: Shape, path: str) -> list[tuple[str, str, str]]:
    """(path, what, constraint) for every max/pattern/enum/range rule ParamValidator skips."""
    found: list[tuple[str, str, str]] = []
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        for name, member in shape.members.items():
            if name in value:
                sub = name[0].lower() + name[1:]
                found += _violations(value[name], member, f"{path}.{sub}" if path else sub)
    elif kind == "list":
        for i, item in enumerate(value, 1):
            found += _violations(item, shape.member, f"{path}.{i}.member")
    elif kind == "map":
        for key, item in value.items():
            found += _violations(key, shape.key, f"{path}.key")
            found += _violations(item, shape.value, f"{path}.value")
    if kind in ("string", "blob", "list", "map"):
        if "max" in meta and len(value) > meta["max"]:
            found.append((path, "max", f"Member must have length less than or equal to {meta['max']}"))
        if "min" in meta and len(value) < meta["min"]:
            found.append((path, "min", f"Member must have length greater than or equal to {meta['min']}"))
    if kind == "string" and shape.enum and value not in shape.enum:
        found.append((path, "enum", f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"))
    if kind == "string" and "pattern" in meta and not _matcher(meta["pattern"])(value):
        found.append((path, "pattern", f"Member must satisfy regular expression pattern: {meta['pattern']}"))
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool):
            found.append((path, "type", "Member must be a number"))
        elif "max" in meta and value > meta["max"]:
            found.append((path, "max", f"Member must have value less than or equal to {meta['max']}"))
        elif "min" in meta and value < meta["min"]:
            found.append((path, "min", f"Member must have value greater than or equal to {meta['min']}"))
    return [(p, w, f"Value '{_show(value)}' at '{p}' failed to satisfy constraint: {c}") for p, w, c in found]


def _decode_blobs(value: Any, shape: Shape) -> Any:
    """The params with base64 blobs decoded to bytes (binascii.Error if one is not base64)."""
    if shape.type_name == "blob" and isinstance(value, str):
        return base64.b64decode(value, validate=True)
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _decode_blobs(v, members[k]) if k in members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_decode_blobs(v, shape.member) for v in value]
    return value


def validate(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Decoded params, or RekognitionError(invalid=True) as AWS would answer a bad request."""
    shape = _MODEL.operation_model(operation).input_shape
    try:
        decoded: dict[str, Any] = _decode_blobs(params, shape)
    except (binascii.Error, ValueError) as exc:
        raise RekognitionError(
            "SerializationException", f"Base64 decoding failed: {exc}", invalid=True
        ) from exc
    report = ParamValidator().validate(decoded, shape)
    if report.has_errors():
        raise RekognitionError("ValidationException", report.generate_report(), invalid=True)
    found = _violations(decoded, shape, "")
    if any(p == "image.bytes" and what == "max" for p, what, _ in found):
        raise RekognitionError("ImageTooLargeException", invalid=True)
    if found:
        s = "s" if len(found) > 1 else ""
        text = f"{len(found)} validation error{s} detected: " + "; ".join(m for _, _, m in found)
        raise RekognitionError("ValidationException", text, invalid=True)
    return decoded


# --- the service ---------------------------------------------------------------------------------


_Found = tuple[int, DetectedFace]  # a face and its index in the FaceSource's detection order


class Call(NamedTuple):
    operation: str
    params: dict[str, Any]


class InvalidRequest(NamedTuple):
    operation: str
    params: dict[str, Any]
    code: str
    message: str


@dataclass
class _Face:
    face_id: str
    image_id: str
    external_image_id: str | None
    box: dict[str, float]
    detected: DetectedFace

    def wire(self) -> dict[str, Any]:
        face = {"FaceId": self.face_id, "BoundingBox": self.box, "ImageId": self.image_id}
        if self.external_image_id is not None:
            face["ExternalImageId"] = self.external_image_id
        return {**face, "Confidence": self.detected.confidence, "IndexFacesModelVersion": FACE_MODEL_VERSION}


@dataclass
class _Collection:
    created: float
    faces: dict[str, _Face] = field(default_factory=dict)
    # (image sha256, ExternalImageId) -> (ImageId, {index of the face in detection order: FaceId})
    indexed: dict[tuple[str, str | None], tuple[str, dict[int, str]]] = field(default_factory=dict)


def _box(face: DetectedFace, width: int, height: int) -> dict[str, float]:
    """A pixel box as AWS gives it: ratios of the image size."""
    x, y, w, h = face.left / width, face.top / height, face.width / width, face.height / height
    return {"Width": w, "Height": h, "Left": x, "Top": y}


def _detail(face: DetectedFace, width: int, height: int) -> dict[str, Any]:
    """FaceDetail, DEFAULT attributes (Landmarks left out: nothing here could place them)."""
    pose, quality = {"Roll": 0.0, "Yaw": 0.0, "Pitch": 0.0}, {"Brightness": 80.0, "Sharpness": 90.0}
    return {
        "BoundingBox": _box(face, width, height),
        "Confidence": face.confidence,
        "Pose": pose,
        "Quality": quality,
    }


def _summary(params: dict[str, Any]) -> dict[str, Any]:
    image = params.get("Image")
    if not (isinstance(image, dict) and isinstance(image.get("Bytes"), str)):
        return params
    try:
        raw = base64.b64decode(image["Bytes"])
    except (binascii.Error, ValueError):
        raw = image["Bytes"].encode()
    rest = {k: v for k, v in image.items() if k != "Bytes"}
    return {
        **params,
        "Image": {**rest, "BytesSha256": hashlib.sha256(raw).hexdigest(), "BytesSize": len(raw)},
    }


class FakeRekognition:
    """The fake service; see the module docstring. Use as a context manager (or start/stop)."""

    def __init__(
        self,
        face_source: FaceSource | None = None,
        *,
        region: str = "us-east-1",
        seed: int = 0,
        s3: Any | None = None,
    ):
        self.face_source: FaceSource = face_source or DeclaredFaces()
        self.s3 = s3
        self._last_image_sha = ""
        self.region, self.url = region, ""
        self.crashes: list[str] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._random = random.Random(seed)
        self._collections: dict[str, _Collection] = {}
        self._calls: list[Call] = []
        self._invalid: list[InvalidRequest] = []
        self._faults: dict[str, list[tuple[str, int]]] = {}
        self._delays: dict[str, float] = {}
        self._billable = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> FakeRekognition:
        self._stopping.clear()
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-rekognition"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return
        self._stopping.set()  # wakes delayed requests
        server.shutdown()
        server.close_connections()  # keep-alive handler threads are parked in recv
        server.server_close()  # joins every handler thread
        thread.join()

    def __enter__(self) -> FakeRekognition:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # observability and fault injection

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def count(self, operation: str) -> int:
        with self._lock:
            return sum(call.operation == operation for call in self._calls)

    @property
    def invalid_requests(self) -> list[InvalidRequest]:
        with self._lock:
            return list(self._invalid)

    @property
    def billable_calls(self) -> int:
        with self._lock:
            return self._billable

    @property
    def collections(self) -> dict[str, list[dict[str, Any]]]:
        """Collection id -> its faces as ListFaces shows them (a deep snapshot)."""
        with self._lock:
            snapshot = {
                cid: [c.faces[f].wire() for f in sorted(c.faces)] for cid, c in self._collections.items()
            }
        copied: dict[str, list[dict[str, Any]]] = json.loads(json.dumps(snapshot))
        return copied

    def fail_next(self, operation: str, error_code: str, times: int = 1, status: int | None = None) -> None:
        """The next ``times`` calls of ``operation`` answer ``error_code`` (InternalServerError: 500)."""
        if operation not in _MODEL.operation_names:
            raise ValueError(f"Rekognition has no operation {operation!r}")
        code = status or (500 if error_code == "InternalServerError" else 400)
        with self._lock:
            self._faults.setdefault(operation, []).extend([(error_code, code)] * times)

    def delay(self, operation: str, seconds: float) -> None:
        """Every later call of ``operation`` waits ``seconds`` before it is handled (0 to undo)."""
        with self._lock:
            self._delays[operation] = seconds

    # the request pipeline

    def handle(self, target: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        operation = (target or "").removeprefix("RekognitionService.")
        params: dict[str, Any] = {}
        try:
            try:
                params = json.loads(body or b"{}")
            except ValueError as exc:
                raise RekognitionError("SerializationException", "Malformed JSON body", invalid=True) from exc
            if not isinstance(params, dict):
                params = {}
                raise RekognitionError("SerializationException", "Body is not a JSON object", invalid=True)
            with self._lock:
                self._calls.append(Call(operation, _summary(params)))
            if not (target or "").startswith("RekognitionService.") or operation not in OPERATIONS:
                note = "" if operation not in _MODEL.operation_names else " (real, but not faked)"
                raise RekognitionError(
                    "UnknownOperationException", f"Unknown operation {operation!r}{note}", invalid=True
                )
            with self._lock:
                wait = self._delays.get(operation, 0.0)
            if wait > 0:
                self._stopping.wait(wait)
            with self._lock:
                fault = self._faults.get(operation)
                if fault:
                    code, status = fault.pop(0)
                    raise RekognitionError(code, status=status)
            decoded = validate(operation, params)
            with self._lock:
                return 200, getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower())(decoded)
        except RekognitionError as err:
            if err.invalid:
                with self._lock:
                    self._invalid.append(InvalidRequest(operation, _summary(params), err.code, err.message))
            return err.status, {"__type": err.code, "Code": err.code, "Message": err.message}
        except Exception:
            with self._lock:
                self.crashes.append(traceback.format_exc())
            return 500, {"__type": "InternalServerError", "Message": traceback.format_exc(limit=1)}

    def _collection(self, collection_id: str) -> _Collection:
        if collection_id not in self._collections:
            raise RekognitionError(
                "ResourceNotFoundException", f"The collection id: {collection_id} does not exist"
            )
        return self._collections[collection_id]

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _image(
        self, image: dict[str, Any], quality_filter: str
    ) -> tuple[int, int, list[_Found], list[_Found]]:
        """Width, height, usable and too-small faces (largest first, with their detection index)."""
        if ("Bytes" in image) == ("S3Object" in image):  # exactly one of them
            raise RekognitionError("InvalidParameterException", invalid=True)
        data: bytes = image["Bytes"] if "Bytes" in image else self._s3_image(image["S3Object"])
        self._last_image_sha = hashlib.sha256(data).hexdigest()  # same bytes, same image: idempotent
        try:
            _, width, height, _ = image_info(data)
        except ValueError as exc:
            raise RekognitionError("InvalidImageFormatException", invalid=True) from exc
        if min(width, height) < MIN_IMAGE_SIDE:
            raise RekognitionError("InvalidParameterException", invalid=True)
        self._billable += 1
        faces = sorted(enumerate(self.face_source.faces(data)), key=lambda f: -f[1].width * f[1].height)
        floor = 0.0 if quality_filter == "NONE" else min_face_side(width, height)
        usable = [f for f in faces if f[1].width >= floor and f[1].height >= floor]
        return width, height, usable, [f for f in faces if f not in usable]

    def _s3_image(self, ref: dict[str, Any]) -> bytes:
        if self.s3 is None:
            raise RekognitionError("InvalidS3ObjectException", "The fake has no S3; send Bytes")
        extra = {"VersionId": ref["Version"]} if "Version" in ref else {}
        try:
            head = self.s3.head_object(Bucket=ref.get("Bucket", ""), Key=ref.get("Name", ""), **extra)
            if head["ContentLength"] > MAX_S3_IMAGE_BYTES:
                raise RekognitionError("ImageTooLargeException")
            body = self.s3.get_object(Bucket=ref["Bucket"], Key=ref["Name"], **extra)["Body"]
            return bytes(body.read())
        except RekognitionError:
            raise
        except Exception as exc:  # botocore's ClientError for a missing object or bucket
            raise RekognitionError(
                "InvalidS3ObjectException",
                "Unable to get object metadata from S3. Check object key, region and/or access permissions.",
            ) from exc

    # operations (called with the lock held, params validated and decoded)

    def _create_collection(self, p: dict[str, Any]) -> dict[str, Any]:
        cid = p["CollectionId"]
        if cid in self._collections:
            raise RekognitionError(
                "ResourceAlreadyExistsException", f"The collection id: {cid} already exists."
            )
        self._collections[cid] = _Collection(created=time.time())
        arn = f"aws:rekognition:{self.region}:{ACCOUNT}:collection/{cid}"  # sic: AWS's example has no "arn:"
        return {"StatusCode": 200, "CollectionArn": arn, "FaceModelVersion": FACE_MODEL_VERSION}

    def _delete_collection(self, p: dict[str, Any]) -> dict[str, Any]:
        self._collection(p["CollectionId"])
        del self._collections[p["CollectionId"]]
        return {"StatusCode": 200}

    def _describe_collection(self, p: dict[str, Any]) -> dict[str, Any]:
        col = self._collection(p["CollectionId"])
        arn = f"arn:aws:rekognition:{self.region}:{ACCOUNT}:collection/{p['CollectionId']}"
        counts = {"FaceCount": len(col.faces), "UserCount": 0}
        return {
            **counts,
            "FaceModelVersion": FACE_MODEL_VERSION,
            "CollectionARN": arn,
            "CreationTimestamp": col.created,
        }

    def _page(self, items: list[str], p: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        start = 0
        if "NextToken" in p:
            try:
                start = int(base64.urlsafe_b64decode(p["NextToken"]).decode().removeprefix("offset:"))
            except ValueError as exc:
                raise RekognitionError("InvalidPaginationTokenException", "Invalid Token") from exc
        end = start + (p.get("MaxResults") or 1000)
        if end >= len(items):
            return items[start:end], {}
        return items[start:end], {"NextToken": base64.urlsafe_b64encode(f"offset:{end}".encode()).decode()}

    def _list_collections(self, p: dict[str, Any]) -> dict[str, Any]:
        ids, more = self._page(sorted(self._collections), p)
        return {"CollectionIds": ids, "FaceModelVersions": [FACE_MODEL_VERSION] * len(ids), **more}

    def _list_faces(self, p: dict[str, Any]) -> dict[str, Any]:
        col = self._collection(p["CollectionId"])
        wanted = sorted(f for f in col.faces if f in p.get("FaceIds", col.faces) and "UserId" not in p)
        ids, more = self._page(wanted, p)
        return {"Faces": [col.faces[f].wire() for f in ids], "FaceModelVersion": FACE_MODEL_VERSION, **more}

    def _delete_faces(self, p: dict[str, Any]) -> dict[str, Any]:
        col = self._collection(p["CollectionId"])
        deleted = [f for f in dict.fromkeys(p["FaceIds"]) if col.faces.pop(f, None) is not None]
        missing = [{"FaceId": f, "Reasons": ["FACE_NOT_FOUND"]} for f in p["FaceIds"] if f not in deleted]
        return {"DeletedFaces": deleted, **({"UnsuccessfulFaceDeletions": missing} if missing else {})}

    def _index_faces(self, p: dict[str, Any]) -> dict[str, Any]:
        col = self._collection(p["CollectionId"])
        width, height, usable, small = self._image(p["Image"], p.get("QualityFilter", "AUTO"))
        external = p.get("ExternalImageId")
        limit = min(p.get("MaxFaces", MAX_INDEXED_FACES), MAX_INDEXED_FACES)
        key = (self._last_image_sha, external)
        image_id, known = col.indexed.get(key) or (self._uuid(), {})
        records = []
        for index, face in usable[:limit]:
            face_id = known.get(index)
            if face_id not in col.faces:  # new, or deleted since: index it (again)
                face_id = known[index] = self._uuid()
                col.faces[face_id] = _Face(face_id, image_id, external, _box(face, width, height), face)
            records.append({"Face": col.faces[face_id].wire(), "FaceDetail": _detail(face, width, height)})
        col.indexed[key] = (image_id, known)
        why = [(f, "EXCEEDS_MAX_FACES") for _, f in usable[limit:]] + [
            (f, "SMALL_BOUNDING_BOX") for _, f in small
        ]
        unindexed = [{"Reasons": [reason], "FaceDetail": _detail(f, width, height)} for f, reason in why]
        return {"FaceRecords": records, "FaceModelVersion": FACE_MODEL_VERSION, "UnindexedFaces": unindexed}

    def _search_faces_by_image(self, p: dict[str, Any]) -> dict[str, Any]:
        col = self._collection(p["CollectionId"])
        width, height, usable, _ = self._image(p["Image"], p.get("QualityFilter", "NONE"))
        if not usable:
            raise RekognitionError(
                "InvalidParameterException", "There are no faces in the image. Should be at least 1."
            )
        probe = usable[0][1]
        threshold = p.get("FaceMatchThreshold", 80.0)
        scored = [(self.face_source.similarity(probe, f.detected), f) for f in col.faces.values()]
        matches = sorted(((s, f) for s, f in scored if s >= threshold), key=lambda m: (-m[0], m[1].face_id))
        found = [{"Similarity": s, "Face": f.wire()} for s, f in matches[: p.get("MaxFaces", 4096)]]
        searched = {
            "SearchedFaceBoundingBox": _box(probe, width, height),
            "SearchedFaceConfidence": probe.confidence,
        }
        return {**searched, "FaceMatches": found, "FaceModelVersion": FACE_MODEL_VERSION}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload = self.server.fake.handle(self.headers.get("X-Amz-Target"), body)
        request_id = str(uuid.uuid4())
        if status != 200:
            payload["Logref"] = request_id
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", request_id)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can end keep-alive handler threads."""

    daemon_threads = False  # server_close() joins only non-daemon handler threads

    def __init__(self, fake: FakeRekognition):
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.fake._stopping.is_set():  # a peer vanishing mid-shutdown is not news
            super().handle_error(request, client_address)
