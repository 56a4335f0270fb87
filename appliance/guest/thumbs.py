"""Guest-page thumbnails: 480 px JPEGs made on first view and kept as a cache, from the proxy
or, before it exists, from the photo itself (any searchable kind: ``proxy.open_upright``).
Pure function; runs on a worker thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PIL import Image

from appliance.proxy import open_upright

THUMB_EDGE = 480


def make_thumbnail(source: Path, dest: Path, edge: int = THUMB_EDGE) -> None:
    """Write the thumbnail of ``source`` to ``dest``. Raises ``ProxyError`` for a file with no
    picture (a RAW without a preview), ``OSError`` when it cannot be written."""
    image, _comment = open_upright(source, edge)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    image.save(tmp, "JPEG", quality=78, optimize=True, progressive=True)
    os.replace(tmp, dest)


FACE_EDGE = 360


def face_square(width: int, height: int, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) to show a face in: about 2.6 times the face, its
    centre a little above the middle (hair and shoulders fit), kept inside the picture."""
    x, y, w, h = box
    side = min(width, height, max(int(max(w, h) * 2.6), 48))
    cx, cy = x + w / 2, y + h / 2 + h * 0.15
    left = int(min(max(cx - side / 2, 0), width - side))
    top = int(min(max(cy - side / 2, 0), height - side))
    return left, top, left + side, top + side


def make_face_thumbnail(
    source: Path, dest: Path, box: tuple[int, int, int, int], edge: int = FACE_EDGE
) -> None:
    """Write a square thumbnail of ``source`` (a proxy, upright as the face index saw it) around
    the face at ``box`` (x, y, w, h in its pixels) to ``dest``."""
    with Image.open(source) as image:
        square = face_square(image.width, image.height, box)
        crop = image.convert("RGB").crop(square)
    crop = crop.resize((edge, edge), Image.Resampling.LANCZOS) if crop.width > edge else crop
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    crop.save(tmp, "JPEG", quality=80, optimize=True, progressive=True)
    os.replace(tmp, dest)
