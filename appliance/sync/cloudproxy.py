"""The cloud proxy: the JPEG a photo is indexed from in Rekognition, sized to the uplink.

The local index reads the box's own proxy (``appliance.proxy``, ``cloud.proxy_long_edge``, 2048
px, quality 85); the cloud gets that proxy, or a smaller or lighter JPEG made from it, so that
the proxies offered fit in ``LINK_SHARE`` of what the link carries at the rate photos are shot:
a budget of ``LINK_SHARE * link bytes/s / photos per s`` bytes per photo. The rest of the link
drains a blackout's backlog (and, later, the originals).

Which (long edge, quality) ``choose`` takes, best first, the first whose estimated size fits:

1. the local proxy itself (``proxy_long_edge`` at 85: no new encoding at all);
2. the same size at quality 80, then 75 (JPEG artefacts at 75 do not hide a face);
3. smaller at quality 75, in steps of ~6% of the edge, down to the floor;
4. at the floor, quality 70, 65, 60 (the floor holds even when nothing fits).

The floor is the long edge at which the smallest face the local index searches (short side
``faces.min_face_px`` in the local proxy, or this photo's smallest searchable face when the
local index has already found it) is still 40 px, Rekognition's smallest detectable face in
images up to 1920x1080. Size is estimated from the local proxy's bytes: proportional to the
pixel count (measured within 5% for 1024-2048 px), times a factor per quality, times a
correction learnt from the cloud proxies actually made (``SizeModel``).

``make_cloud_proxy`` is deterministic (the same local proxy and choice give the same bytes), so
a retried upload or IndexFaces after a crash sends the same bytes; the choice is recorded per
photo before the upload anyway, and the file kept until the photo is indexed. The JPEG comment
is carried over as the local proxy does. Runs on a sync worker thread (Pillow); ``choose`` and
``SizeModel`` are pure arithmetic, called from the asyncio thread.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from appliance.proxy import write_atomically

LINK_SHARE = 0.7
LOCAL_QUALITY = 85  # appliance.proxy's default, the quality of the local proxy
REKOGNITION_MIN_FACE_PX = 40  # in images up to 1920x1080 (proportionally more above)
MIN_EDGE = 256  # cloud.proxy_long_edge's own minimum
REQUEST_OVERHEAD = 3000  # bytes per photo besides the proxy: HEADs, PUT and IndexFaces headers
EDGE_STEP = 0.94
# JPEG bytes at quality q relative to quality 85 (Pillow, optimize=True), measured on the bench
# frames and the photographs in shared/faces between 1024 and 2048 px (spread about +-8%).
QUALITY_FACTOR = {85: 1.0, 80: 0.9, 75: 0.78, 70: 0.68, 65: 0.58, 60: 0.52}


@dataclass(frozen=True, slots=True)
class Choice:
    long_edge: int
    quality: int

    def is_local(self, local_edge: int) -> bool:
        """The local proxy as it is (nothing smaller or lighter to make)."""
        return self.long_edge >= local_edge and self.quality == LOCAL_QUALITY


def floor_edge(local_edge: int, smallest_face_px: float) -> int:
    """The smallest long edge keeping a face of ``smallest_face_px`` (short side, in a proxy of
    ``local_edge``) at 40 px or more."""
    if smallest_face_px <= 0:
        return local_edge
    edge = math.ceil(local_edge * REKOGNITION_MIN_FACE_PX / smallest_face_px)
    return max(MIN_EDGE, min(local_edge, edge))


def ladder(max_edge: int, floor: int) -> list[Choice]:
    """Every candidate, best first (see the module docstring)."""
    floor = min(floor, max_edge)
    out = [Choice(max_edge, q) for q in (85, 80, 75)]
    edge = max_edge * EDGE_STEP
    while edge > floor:
        out.append(Choice(int(edge), 75))
        edge *= EDGE_STEP
    out += [Choice(floor, q) for q in (75, 70, 65, 60)]
    return list(dict.fromkeys(out))


class SizeModel:
    """Estimated cloud proxy bytes, with a correction learnt from the ones made (EWMA of
    actual / estimated, clamped). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.correction = 1.0

    def estimate(self, local_bytes: int, local_edge: int, choice: Choice) -> float:
        if choice.is_local(local_edge):
            return float(local_bytes)
        scale = min(1.0, choice.long_edge / local_edge) ** 2
        with self._lock:
            correction = self.correction
        return local_bytes * scale * QUALITY_FACTOR[choice.quality] * correction

    def learn(self, estimated: float, actual: int) -> None:
        if estimated <= 0:
            return
        with self._lock:
            # ``estimated`` already holds the correction: the one that would have been exact is
            # correction * actual / estimated
            exact = self.correction * min(2.0, max(0.5, actual / estimated))
            self.correction = min(2.0, max(0.5, 0.8 * self.correction + 0.2 * exact))


def budget(link_bytes_per_s: float | None, photos_per_s: float) -> float | None:
    """Bytes a photo's proxy may take; None: no limit known (nothing measured yet, or no photos)."""
    if link_bytes_per_s is None or photos_per_s <= 0:
        return None
    return LINK_SHARE * link_bytes_per_s / photos_per_s - REQUEST_OVERHEAD


def choose(
    budget_bytes: float | None,
    *,
    local_bytes: int,
    local_edge: int,
    max_edge: int,
    floor: int,
    model: SizeModel,
) -> Choice:
    """The best choice whose estimate fits ``budget_bytes`` (the floor at quality 60 when none
    does; the local proxy when there is no budget)."""
    candidates = ladder(min(max_edge, local_edge), floor)
    if budget_bytes is None:
        return candidates[0]
    for choice in candidates:
        if model.estimate(local_bytes, local_edge, choice) <= budget_bytes:
            return choice
    return candidates[-1]


def make_cloud_proxy(local: Path, dest: Path, choice: Choice) -> tuple[str, int]:
    """Write the cloud proxy of the local proxy ``local`` at ``choice`` to ``dest`` (atomically,
    fsynced); (sha256, size). Same input and choice, same bytes."""
    with Image.open(local) as opened:
        comment = opened.info.get("comment")
        image = opened.convert("RGB")
    image.thumbnail((choice.long_edge, choice.long_edge), Image.Resampling.BILINEAR, reducing_gap=None)
    extra = {"comment": comment} if isinstance(comment, bytes | str) and comment else {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=choice.quality, optimize=True, **extra)
    data = out.getvalue()
    write_atomically(dest, data)
    return hashlib.sha256(data).hexdigest(), len(data)
