"""How the host page shows each photo: a picture, or a typed tile. Video (MP4, MOV), sidecars
(XMP, WAV) and photos with no picture (a RAW without a preview) have no thumbnail; their tile
names the type, with the reason when there is one, and links to the file. Pure functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.store.records import Photo


def tile_label(photo: Photo) -> str | None:
    """None for a photo shown as a picture; else the type its tile shows (``MP4``, ``XMP``,
    ``NEF``...). A searchable photo is a picture unless the face index found it has none."""
    if photo.searchable and (photo.faces_state != "failed" or photo.proxy_path is not None):
        return None
    return extension(photo) or "FILE"


def extension(photo: Photo) -> str:
    """The camera's extension, upper-cased (``NEF``), or "" when it is not a plain one."""
    suffix = Path(photo.original_name).suffix.lstrip(".")
    return suffix.upper()[:6] if suffix.isascii() and suffix.isalnum() else ""
