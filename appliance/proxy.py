"""The searchable proxy: one JPEG per photo, orientation applied, long edge capped (2048 px by
default), always under Rekognition's 5 MB. Its exact bytes are kept on disk until the photo is
indexed, because a retried IndexFaces must send the same bytes to be idempotent: the same input
and settings always give the same bytes (no time, randomness or thread in the encoding).

Every searchable kind (``formats.SEARCHABLE_KINDS``) has a picture, told by content, not name:

- JPEG, PNG, WebP, plain TIFF (kind "raw" without sensor data): Pillow; EXIF orientation applied
  (the orientation ``ImageOps.exif_transpose`` reads, applied with its transposes but without its
  copy: the same bytes as earlier versions for a JPEG).
- HEIF/HIF: libheif through ``pillow-heif`` (``open_heif``, no opener registered in Pillow: only
  this module decodes HEIF); libheif applies the file's own rotation and mirroring. AVIF (same
  container, AV1 inside): Pillow's own plugin.
- RAW (TIFF-based, CR3, RAF): the largest embedded preview JPEG with the RAW's orientation
  (``appliance.rawpreview``); a RAW without one raises ``ProxyError("no preview: ...")``.

Pure function; runs on a sync worker thread or a face worker. Decodes with ``Image.draft`` (the
JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding; JPEGs and RAW previews), then resamples
BILINEAR: 130 ms against 170 ms with LANCZOS for a 24 MP frame, PSNR 43 dB against the LANCZOS
proxy. The decode is the floor: entropy decoding a 24 MP JPEG costs ~57 ms even at 1/8
(docs/faces.md).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from appliance.ingest.formats import RAW_KINDS, SEARCHABLE_KINDS, InvalidFile, inspect
from appliance.rawpreview import NoPreview, raw_picture

MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # margin under Rekognition's 5 MB
# What decoding a hostile or damaged file raises. DecompressionBombWarning is a warning, raised
# only where warnings are errors (the test suite): a 100 MP medium-format frame must still work.
_UNREADABLE = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

# EXIF orientation -> the transposes that make the picture upright (as ImageOps.exif_transpose)
_UPRIGHT: dict[int, tuple[Image.Transpose, ...]] = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def draft_size(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """The size to ask ``Image.draft`` for so that it can scale while decoding: the picture's
    own aspect at ``long_edge``. (Asking for a square makes a 3:2 frame's short side the limit:
    6000x4000 at 1/2 is 3000x2000, under 2048 tall, so the decoder would decode all 24 MP.)"""
    width, height = size
    scale = min(1.0, long_edge / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


class ProxyError(Exception):
    """The photo cannot be turned into a proxy (not a decodable image, or a RAW without a
    preview); the message is the reason recorded for the photo."""


@dataclass(frozen=True, slots=True)
class Proxy:
    path: Path
    sha256: str
    size: int
    width: int
    height: int


@contextmanager
def _picture(source: Path) -> Iterator[tuple[Image.Image, int | None, object]]:
    """The opened picture of any searchable photo, the orientation to apply (None: the image's
    own EXIF, which Pillow's ``exif_transpose`` reads as each plugin needs), and its JPEG
    comment. Raises ProxyError."""
    try:
        kind = inspect(source, source.name).kind
    except InvalidFile as exc:
        raise ProxyError(f"cannot make a proxy of {source.name}: {exc.reason}") from exc
    if kind not in SEARCHABLE_KINDS:
        raise ProxyError(f"cannot make a proxy of {source.name}: a {kind} file is not a photo")
    if kind in RAW_KINDS:
        try:
            raw = raw_picture(source)
        except NoPreview as exc:
            raise ProxyError(str(exc)) from exc
        if raw is not None:
            with raw.image as image:
                yield image, raw.orientation, None
            return
    if kind == "heif" and not _avif(source):
        with _heif(source) as image:
            yield image, 1, None  # libheif applied the file's rotation and mirroring
        return
    with Image.open(source) as image:  # AVIF too: Pillow's own plugin (libheif here has no AV1)
        yield image, None, image.info.get("comment")


def _avif(source: Path) -> bool:
    """An AVIF (its major brand): Pillow decodes it, libheif as packaged cannot."""
    with source.open("rb") as file:
        return file.read(12)[8:12] == b"avif"


@contextmanager
def _heif(source: Path) -> Iterator[Image.Image]:
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(source, convert_hdr_to_8bit=True)
        image = heif.to_pillow()
    except (
        ValueError,
        RuntimeError,
        SyntaxError,
        OSError,
    ) as exc:  # libheif's (SyntaxError: unsupported box)
        raise ProxyError(f"cannot make a proxy of {source.name}: {exc}") from exc
    with image:
        image.info.pop("exif", None)  # its orientation is already applied
        yield image


@dataclass(frozen=True, slots=True)
class Decoded:
    """A picture as the decoder gave it for a proxy (a JPEG at the decoder's 1/2, 1/4 or 1/8
    scale), before the proxy was shrunk from it, with the transposes that make it upright. The
    face worker cuts small faces from it: it has more of their pixels than the proxy."""

    image: Image.Image  # RGB
    steps: tuple[Image.Transpose, ...]

    def upright(self) -> Image.Image:
        image = self.image
        for step in self.steps:
            image = image.transpose(step)
        return image


def _open(source: Path, long_edge: int, *, keep: bool) -> tuple[Image.Image, object, Decoded | None]:
    """``open_upright``, also keeping the decoded picture from before the shrink when ``keep``
    (the proxy is made the same way either way: its bytes must not depend on who made it)."""
    decoded = None
    try:
        with _picture(source) as (opened, orientation, comment):
            opened.draft("RGB", draft_size(opened.size, long_edge))  # a no-op but for JPEG (and MPO)
            opened.load()  # decoded before the file closes (a small picture is never resized)
            orientation = _orientation(opened, orientation)
            if keep:
                # an RGB decode is kept as it is: the 18 MB of a 24 MP JPEG is never copied
                kept = opened if opened.mode == "RGB" else opened.convert("RGB")
                decoded = Decoded(kept, _UPRIGHT.get(orientation, ()))
            if decoded is not None and decoded.image is opened:
                # shrunk into a new picture as thumbnail() would shrink it (same size, same
                # filter: the same pixels), leaving the kept decode whole
                size = thumbnail_size(opened.size, long_edge)
                if size is not None and size != opened.size:
                    opened = opened.resize(size, Image.Resampling.BILINEAR)
            else:
                # Shrink in place before any copy: a 24 MP frame is 72 MB decoded, the proxy a tenth.
                opened.thumbnail((long_edge, long_edge), Image.Resampling.BILINEAR, reducing_gap=None)
            # converted only when it is not RGB already: a copy of 8 MB would change no pixel
            image = opened if opened.mode == "RGB" else opened.convert("RGB")
    except _UNREADABLE as exc:
        raise ProxyError(f"cannot make a proxy of {source.name}: {exc}") from exc
    for step in _UPRIGHT.get(orientation, ()):
        image = image.transpose(step)
    return image, comment, decoded


def _orientation(opened: Image.Image, given: int | None) -> int:
    """The orientation to apply: ``given`` (a RAW's own; 1 where libheif applied it), else the
    EXIF tag ``ImageOps.exif_transpose`` reads."""
    if given is not None:
        return given
    tag: int = opened.getexif().get(0x0112, 1)
    return tag


def thumbnail_size(size: tuple[int, int], long_edge: int) -> tuple[int, int] | None:
    """The size ``Image.thumbnail((long_edge, long_edge))`` shrinks a picture of ``size`` to
    (None: it would leave it as it is): the aspect ratio kept, each side rounded to whichever
    integer keeps it best, at least 1 (Pillow's own rule; a test holds them equal)."""
    width, height = size
    if long_edge >= width and long_edge >= height:
        return None
    aspect = width / height
    x = y = long_edge
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(
            min(
                math.floor(x / aspect),
                math.ceil(x / aspect),
                key=lambda n: 0 if n == 0 else abs(aspect - x / n),
            ),
            1,
        )
    return x, y


def decode(source: Path, long_edge: int) -> Decoded:
    """The picture a proxy of ``source`` at ``long_edge`` is shrunk from (for a photo whose
    proxy already exists). Raises ProxyError."""
    try:
        with _picture(source) as (opened, orientation, _comment):
            opened.draft("RGB", draft_size(opened.size, long_edge))
            return Decoded(opened.convert("RGB"), _UPRIGHT.get(_orientation(opened, orientation), ()))
    except _UNREADABLE as exc:
        raise ProxyError(f"cannot decode {source.name}: {exc}") from exc


def open_upright(source: Path, long_edge: int) -> tuple[Image.Image, object]:
    """The picture of ``source`` as RGB, upright, its long edge at most ``long_edge`` (never
    enlarged), and its JPEG comment (None when it has none). Raises ProxyError."""
    image, comment, _ = _open(source, long_edge, keep=False)
    return image, comment


def make_proxy(source: Path, dest: Path, *, long_edge: int = 2048, quality: int = 85) -> Proxy:
    """Write the proxy of ``source`` to ``dest`` (atomically, fsynced) and describe it."""
    return make_proxy_image(source, dest, long_edge=long_edge, quality=quality)[0]


def make_proxy_image(
    source: Path, dest: Path, *, long_edge: int = 2048, quality: int = 85, keep_decoded: bool = False
) -> tuple[Proxy, Image.Image, Decoded | None]:
    """``make_proxy``, also returning the proxy's pixels before JPEG encoding (the face worker
    detects in them rather than decoding the file it has just written) and, with
    ``keep_decoded``, the picture they were shrunk from. ``source`` is any searchable photo
    (JPEG, RAW, HEIF, PNG, TIFF, WebP)."""
    image, comment, decoded = _open(source, long_edge, keep=keep_decoded)
    extra = {"comment": comment} if isinstance(comment, bytes | str) and comment else {}
    with _atomic_file(dest) as handle:
        for q in (quality, 75, 65, 50):
            handle.seek(0)
            handle.truncate()
            # Into a real file Pillow encodes without holding the GIL (into a BytesIO it holds
            # it ~13 ms a proxy, and the face worker's other threads wait): the same bytes.
            image.save(handle, "JPEG", quality=q, optimize=True, **extra)
            if handle.tell() <= MAX_BYTES:
                break
        if handle.tell() > MAX_BYTES:
            raise ProxyError(f"proxy of {source.name} stays over 5 MB")
        handle.seek(0)
        data = handle.read()
    width, height = image.size
    return Proxy(dest, hashlib.sha256(data).hexdigest(), len(data), width, height), image, decoded


def write_atomically(dest: Path, data: bytes) -> None:
    """``data`` at ``dest``, whole or not at all, fsynced."""
    with _atomic_file(dest) as handle:
        handle.write(data)


@contextmanager
def _atomic_file(dest: Path) -> Iterator[BinaryIO]:
    """A new file that becomes ``dest`` when the block ends (fsynced, then renamed over it), or
    is removed if the block raises. The temporary name is unique per writer: the face worker
    and the sync service may both make the same proxy at once."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
