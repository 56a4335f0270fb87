"""The searchable proxy: one JPEG per photo, orientation applied, long edge capped (2048 px by
default), always under Rekognition's 5 MB. Its exact bytes are kept on disk until the photo is
indexed, because a retried IndexFaces must send the same bytes to be idempotent.

Pure function; runs on a sync worker thread or a face worker. Decodes with ``Image.draft`` (the
JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding), then resamples BILINEAR: 130 ms against
170 ms with LANCZOS for a 24 MP frame, PSNR 43 dB against the LANCZOS proxy. The decode is the
floor: entropy decoding a 24 MP JPEG costs ~57 ms even at 1/8 (docs/faces.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 5 * 1024 * 1024 - 64 * 1024  # margin under Rekognition's 5 MB


def draft_size(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """The size to ask ``Image.draft`` for so that it can scale while decoding: the picture's
    own aspect at ``long_edge``. (Asking for a square makes a 3:2 frame's short side the limit:
    6000x4000 at 1/2 is 3000x2000, under 2048 tall, so the decoder would decode all 24 MP.)"""
    width, height = size
    scale = min(1.0, long_edge / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


class ProxyError(Exception):
    """The photo cannot be turned into a proxy (not a decodable image)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    path: Path
    sha256: str
    size: int
    width: int
    height: int


def make_proxy(source: Path, dest: Path, *, long_edge: int = 2048, quality: int = 85) -> Proxy:
    """Write the proxy of ``source`` to ``dest`` (atomically, fsynced) and describe it."""
    return make_proxy_image(source, dest, long_edge=long_edge, quality=quality)[0]


def make_proxy_image(
    source: Path, dest: Path, *, long_edge: int = 2048, quality: int = 85
) -> tuple[Proxy, Image.Image]:
    """``make_proxy``, also returning the proxy's pixels before JPEG encoding (the face worker
    detects in them rather than decoding the file it has just written)."""
    try:
        with Image.open(source) as opened:
            opened.draft("RGB", draft_size(opened.size, long_edge))
            comment = opened.info.get("comment")  # carried over: a label some workflows rely on
            # Shrink in place before any copy: a 24 MP frame is 72 MB decoded, the proxy a tenth.
            opened.thumbnail((long_edge, long_edge), Image.Resampling.BILINEAR, reducing_gap=None)
            image = ImageOps.exif_transpose(opened).convert("RGB")
            data = b""
            for q in (quality, 75, 65, 50):
                out = io.BytesIO()
                extra = {"comment": comment} if isinstance(comment, bytes | str) and comment else {}
                image.save(out, "JPEG", quality=q, optimize=True, **extra)
                data = out.getvalue()
                if len(data) <= MAX_BYTES:
                    break
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProxyError(f"cannot make a proxy of {source.name}: {exc}") from exc
    if len(data) > MAX_BYTES:
        raise ProxyError(f"proxy of {source.name} stays over 5 MB")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer: the face worker and the sync service may both make the same proxy.
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, dest)
    return Proxy(dest, hashlib.sha256(data).hexdigest(), len(data), width, height), image
