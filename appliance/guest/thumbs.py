"""Guest-page thumbnails: 480 px JPEGs made from the proxy on first view and kept as a cache.
Pure function; runs on a worker thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PIL import Image, ImageOps

from appliance.proxy import draft_size

THUMB_EDGE = 480


def make_thumbnail(source: Path, dest: Path, edge: int = THUMB_EDGE) -> None:
    with Image.open(source) as opened:
        opened.draft("RGB", draft_size(opened.size, edge))
        opened.thumbnail((edge, edge), Image.Resampling.BILINEAR)
        image = ImageOps.exif_transpose(opened).convert("RGB")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    image.save(tmp, "JPEG", quality=78, optimize=True, progressive=True)
    os.replace(tmp, dest)
