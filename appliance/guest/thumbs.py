"""Guest-page thumbnails: 480 px JPEGs made on first view and kept as a cache, from the proxy
or, before it exists, from the photo itself (any searchable kind: ``proxy.open_upright``).
Pure function; runs on a worker thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

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
