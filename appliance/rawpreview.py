"""The picture of a RAW frame: its largest embedded preview JPEG, and the RAW's orientation.

Two sources, the larger preview wins (ties: libraw's):

- libraw through ``rawpy`` (``extract_thumb``), the well-kept library that knows each body's
  quirks. Its errors are classified here, where they enter: any ``LibRawError`` (a body newer
  than the library, an unsupported thumbnail) just means "ask the structure instead".
- ``appliance.ingest.previews``, which reads the largest JPEG from the structures ingest already
  validates (TIFF IFDs, CR3 boxes, RAF's header), bounded, so a body newer than the libraw the
  box carries still gives its preview, and a box without rawpy still proxies RAWs.

A plain TIFF (kind "raw" too, told apart by ``previews.plain_tiff``: no sensor data) has no
preview: ``raw_picture`` returns None and its own pixels are the picture. A RAW with no preview
at all raises ``NoPreview`` (the photo is then recorded as not searchable,
with that reason); decoding the sensor data itself is not attempted. Pure; runs on the thread
that makes a proxy.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from appliance.ingest.previews import MAX_PREVIEW_BYTES, find_preview, plain_tiff, read_preview

logger = logging.getLogger(__name__)

# libraw's flip (0, 3, 5, 6) as an EXIF orientation
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


class NoPreview(Exception):
    """The RAW holds no embedded preview this box can read."""


@dataclass(frozen=True, slots=True)
class RawPicture:
    image: Image.Image  # the preview, decoded lazily by Pillow (``draft`` still works)
    orientation: int  # EXIF orientation to apply (1-8)
    source: str  # "libraw" or "structure"


def raw_picture(path: Path) -> RawPicture | None:
    """The largest preview of the RAW at ``path``, opened; None for a plain TIFF. Raises
    NoPreview, OSError."""
    if plain_tiff(path):  # its JPEGs, if any, are EXIF thumbnails, not its picture
        return None
    libraw = _libraw_preview(path)
    preview = find_preview(path)
    if libraw is not None and (preview is None or _pixels(libraw[0]) >= preview.width * preview.height):
        return RawPicture(libraw[0], libraw[1], "libraw")
    if preview is None:
        raise NoPreview(f"no preview: {path.name} holds no embedded JPEG preview")
    image = Image.open(io.BytesIO(read_preview(path, preview)))
    orientation = preview.orientation
    if orientation is None and libraw is not None:
        orientation = libraw[1]
    if orientation is None:
        orientation = image.getexif().get(0x0112, 1)
    return RawPicture(image, orientation if orientation in range(1, 9) else 1, "structure")


def _pixels(image: Image.Image) -> int:
    return image.width * image.height


def _libraw_preview(path: Path) -> tuple[Image.Image, int] | None:
    """libraw's thumbnail and flip, or None when rawpy is absent or libraw cannot give one."""
    try:
        import rawpy
    except ImportError:  # a box built without it: the structure parser alone
        return None
    try:
        with rawpy.imread(str(path)) as raw:
            flip = _FLIP_TO_ORIENTATION.get(int(raw.sizes.flip), 1)
            thumb = raw.extract_thumb()
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        logger.debug("libraw gives no preview of %s: %s", path.name, exc)
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        data = bytes(thumb.data)
        if len(data) > MAX_PREVIEW_BYTES:
            return None
        try:
            image = Image.open(io.BytesIO(data))
        except (OSError, Image.DecompressionBombError):
            return None
        if image.format != "JPEG":
            return None
        return image, flip
    if thumb.format == rawpy.ThumbFormat.BITMAP and not isinstance(thumb.data, bytes):
        return Image.fromarray(thumb.data), flip
    return None
