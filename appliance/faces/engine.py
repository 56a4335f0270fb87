"""The local face engine: dlib's HOG detector, 5-point alignment and 128-d ResNet embedding.

Pure functions and one model object; runs inside the face worker processes (dlib computes on
one core and holds the GIL, so it never runs in the box's own process). The models come inside
the ``face-recognition-models`` wheel: nothing is downloaded, ever. Only the public-domain
5-point landmark model is loaded, never the non-commercial 68-point one.

Distances are Euclidean between embeddings; the same person lies below ~0.5, different people
above ~0.6 (docs/faces.md has the measurements behind the defaults).
"""

from __future__ import annotations

import importlib.util
import io
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dlib
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from appliance.faces.regions import (
    PROPOSER_EDGE,
    SELFIE_PROPOSER_EDGE,
    Proposal,
    Proposer,
    RegionHog,
    parts_for,
)
from appliance.proxy import draft_size

if TYPE_CHECKING:
    from appliance.faces.onnxembed import OnnxEmbedder

MAX_SELFIE_PIXELS = 50_000_000  # a 48 MP phone photo fits; a decompression bomb does not
SELFIE_LONG_EDGE = 1280  # a selfie's face is large: detection at this size costs ~55 ms
MAX_FULL_DECODE_PIXELS = 24_000_000  # PNG and others decode in full (no draft): cap the memory
CONFIDENT_SCORE = 0.5  # HOG score; real faces measured ~1-3, a mission patch 0.06
DETAIL_BELOW = 120  # faces narrower than this (proxy px) are cut from the larger decode when given


def models_dir() -> Path:
    """Where the wheel put the model files. Found without importing the package, whose
    ``__init__`` needs ``pkg_resources`` (gone from current setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the face-recognition-models package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class ImageRejected(Exception):
    """A picture the engine will not look at; ``code`` names why, for the guest's message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Face:
    left: int
    top: int
    width: int
    height: int
    searchable: bool
    embedding: np.ndarray | None  # float32[128] when searchable

    @property
    def size(self) -> int:
        return min(self.width, self.height)


RESNET_DAT = "dlib_face_recognition_resnet_model_v1.dat"
Detail = Callable[[], "Image.Image | None"]  # the picture at a higher resolution, when there is one


class FaceModel:
    """Detector + aligner + embedder. One per worker process (loading costs ~0.3 s, 70 MB), used
    from several threads: the HOG detector is per thread, the rest is read-only.

    The embedder is dlib's ResNet run by onnxruntime from the model ``dlibnet`` converts from the
    packaged ``.dat`` (``onnx_model``; same embeddings within 1e-6, ~20x faster than dlib-bin's
    build); without one, dlib's own (the equivalence test compares the two)."""

    def __init__(
        self,
        *,
        min_face_px: int = 60,
        upsample: int = 0,
        onnx_model: Path | None = None,
        threads: int = 1,
        fast: bool = False,
        proposer: Path | None = None,
    ) -> None:
        folder = models_dir()
        self.min_face_px = min_face_px
        self.upsample = upsample
        # With a proposal model HOG scans only around proposed faces (the same boxes there).
        self._proposer: Proposer | None = None
        if proposer is not None and upsample == 0:
            self._proposer = Proposer(proposer)
        # dlib's object_detector keeps its feature pyramid inside itself while it scans: not safe
        # to share between threads (a shared one mixed two photos' boxes). One per thread, ~1 MB.
        self._detectors = threading.local()
        self._landmarks = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._onnx: OnnxEmbedder | None = None
        if onnx_model is not None:
            # imported here: onnxruntime lives in the face workers only, never in the box's process
            from appliance.faces.onnxembed import OnnxEmbedder

            self._onnx = OnnxEmbedder(onnx_model, threads=threads, fast=fast)
        self._embedder = (
            dlib.face_recognition_model_v1(str(folder / RESNET_DAT)) if self._onnx is None else None
        )

    def _detector(self) -> dlib.fhog_object_detector:
        detector: dlib.fhog_object_detector | None = getattr(self._detectors, "hog", None)
        if detector is None:
            detector = self._detectors.hog = dlib.get_frontal_face_detector()
        return detector

    def _detect(self, image: np.ndarray) -> list[tuple[dlib.rectangle, float]]:
        rects, scores, _ = self._detector().run(image, self.upsample, 0.0)
        return list(zip(rects, scores, strict=True))

    def propose(self, picture: Image.Image) -> list[Proposal] | None:
        """Where the proposal model sees faces in a photo (``faces``' ``proposals``), from the
        Pillow picture of its pixels (shrunk without a copy); None without a proposal model."""
        return None if self._proposer is None else self._proposer.propose(picture, PROPOSER_EDGE)

    def _detect_proposed(
        self, image: np.ndarray, edge: int = PROPOSER_EDGE, proposals: list[Proposal] | None = None
    ) -> list[tuple[dlib.rectangle, float]]:
        """``_detect``, scanning only around the faces the proposal model sees at ``edge`` px
        (regions.py), or around ``proposals`` when given: the full scan's boxes and scores
        there."""
        if self._proposer is None:
            return self._detect(image)
        scanner: RegionHog | None = getattr(self._detectors, "regions", None)
        if scanner is None:
            scanner = self._detectors.regions = RegionHog()
        if proposals is None:
            proposals = self._proposer.propose(image, edge)
        return scanner.detect(image, parts_for(proposals, scanner.config.window[0]))

    def _box(self, image: np.ndarray, rect: dlib.rectangle) -> tuple[int, int, int, int] | None:
        """A detection's box clipped to the picture (dlib's right/bottom are inclusive)."""
        height, width = image.shape[:2]
        left, top = max(0, rect.left()), max(0, rect.top())
        w, h = min(width, rect.right() + 1) - left, min(height, rect.bottom() + 1) - top
        return (left, top, w, h) if w > 0 and h > 0 else None

    def _faces(
        self, image: np.ndarray, rects: list[dlib.rectangle], detail: Detail | None = None
    ) -> list[Face]:
        """Detections as Faces, searchable when the box is at least ``min_face_px`` on its short
        side; the searchable ones embedded together (one batch for the photo). With ``detail``
        (the same picture, larger; asked for only when a face is under ``DETAIL_BELOW`` px),
        such faces are aligned and cut from it."""
        boxes = [(rect, box) for rect in rects if (box := self._box(image, rect)) is not None]
        wanted = [i for i, (_, box) in enumerate(boxes) if min(box[2], box[3]) >= self.min_face_px]
        small = [i for i in wanted if min(boxes[i][1][2], boxes[i][1][3]) < DETAIL_BELOW]
        larger = detail() if detail is not None and small else None
        scale = larger.width / image.shape[1] if larger is not None else 1.0
        if larger is None or scale < 1.05 or abs(larger.height / image.shape[0] - scale) > 0.02 * scale:
            small = []  # no larger copy of the same picture: every chip from ``image``
        large = [i for i in wanted if i not in small]
        vectors = self._embed(image, [boxes[i][0] for i in large])
        if small and larger is not None:
            vectors += self._embed_from(larger, [_scaled(boxes[i][0], scale) for i in small])
        embedding = dict(zip(large + small, vectors, strict=True))
        return [
            Face(*box, searchable=i in embedding, embedding=embedding.get(i))
            for i, (_, box) in enumerate(boxes)
        ]

    def faces(
        self, image: np.ndarray, detail: Detail | None = None, proposals: list[Proposal] | None = None
    ) -> list[Face]:
        """Every face in an RGB ``uint8`` image, largest first; boxes in ``image``'s pixels.
        Faces smaller than ``min_face_px`` are returned as unsearchable, without an embedding:
        the measured impostor margin shrinks with size (docs/faces.md). ``detail``: gives the
        same picture at a higher resolution (the decoder's output the proxy was shrunk from);
        a small face's 150 px chip is then cut from its pixels rather than enlarged from the
        proxy's (docs/faces.md measures what it changes). Called only if a face is small.
        ``proposals``: ``propose``'s, when the caller has a Pillow picture of ``image`` (its own
        array copy is then made once, and the picture need not be kept while faces are found)."""
        found = self._faces(
            image, [rect for rect, _ in self._detect_proposed(image, proposals=proposals)], detail
        )
        found.sort(key=lambda f: f.width * f.height, reverse=True)
        return found

    def largest(self, image: np.ndarray) -> tuple[Face | None, int]:
        """The largest face (as Rekognition does with a selfie) and how many faces there were.
        Only the largest is embedded. Confident detections are preferred: a badge or a patch
        on a shirt can make a weak detection larger than the face."""
        detections = self._detect_proposed(image, SELFIE_PROPOSER_EDGE)
        if not detections:
            return None, 0
        confident = [d for d in detections if d[1] >= CONFIDENT_SCORE] or detections
        rect = max(confident, key=lambda d: d[0].width() * d[0].height())[0]
        found = self._faces(image, [rect])
        return (found[0] if found else None), len(detections)

    def _embed_from(self, picture: Image.Image, rects: list[dlib.rectangle]) -> list[np.ndarray]:
        """``_embed`` of faces in a large picture, each from a patch around it (the face's size on
        every side: more than its landmarks and its chip's padding reach), so that a 24 MP
        decode is never copied whole into an array for a few small faces."""
        if self._onnx is None:
            return [vector for rect in rects for vector in self._embed(*_patch(picture, rect))]
        from appliance.faces.onnxembed import chips

        cut = []
        for rect in rects:
            patch, (moved,) = _patch(picture, rect)
            cut.append(chips(patch, [self._landmarks(patch, moved)]))
        return list(self._onnx.embed(np.concatenate(cut))) if cut else []

    def _embed(self, image: np.ndarray, rects: list[dlib.rectangle]) -> list[np.ndarray]:
        """The 128-d embedding of each face (its 5-point shape, then the aligned 150 px chip)."""
        if not rects:
            return []
        shapes = [self._landmarks(image, rect) for rect in rects]
        if self._onnx is not None:
            from appliance.faces.onnxembed import chips

            return list(self._onnx.embed(chips(image, shapes)))
        assert self._embedder is not None
        return [
            np.asarray(self._embedder.compute_face_descriptor(image, shape, 0), dtype=np.float32)
            for shape in shapes
        ]


def _patch(picture: Image.Image, rect: dlib.rectangle) -> tuple[np.ndarray, list[dlib.rectangle]]:
    """The part of ``picture`` around ``rect`` as an array, and ``rect`` in its coordinates."""
    margin = max(rect.width(), rect.height())
    left, top = max(0, rect.left() - margin), max(0, rect.top() - margin)
    right, bottom = (
        min(picture.width, rect.right() + 1 + margin),
        min(picture.height, rect.bottom() + 1 + margin),
    )
    patch = np.asarray(picture.crop((left, top, right, bottom)).convert("RGB"))
    return patch, [dlib.translate_rect(rect, dlib.point(-left, -top))]


def _scaled(rect: dlib.rectangle, scale: float) -> dlib.rectangle:
    return dlib.rectangle(
        round(rect.left() * scale),
        round(rect.top() * scale),
        round((rect.right() + 1) * scale) - 1,
        round((rect.bottom() + 1) * scale) - 1,
    )


# What a phone's browser uploads from a camera or a gallery; Pillow's other decoders (DDS, IM,
# AVIF...) only widen what hostile input can reach (fuzzing found three of them raising oddities).
SELFIE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG also opens MPO (many phones)


def decode_selfie(data: bytes, *, long_edge: int = SELFIE_LONG_EDGE) -> tuple[np.ndarray, bytes]:
    """A guest's upload as an oriented RGB array, plus a JPEG of it for Rekognition (which
    keeps any JPEG comment). Reads the header before decoding anything, so a decompression bomb
    is refused for its declared size, never decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=SELFIE_FORMATS) as opened:
                width, height = opened.size
                limit = MAX_SELFIE_PIXELS if opened.format == "JPEG" else MAX_FULL_DECODE_PIXELS
                if width * height > limit or max(width, height) > 20_000:
                    raise ImageRejected("too_large", f"the picture is {width}x{height} pixels")
                opened.draft("RGB", draft_size(opened.size, long_edge))
                comment = opened.info.get("comment")
                opened.thumbnail((long_edge, long_edge), Image.Resampling.BILINEAR)
                image = ImageOps.exif_transpose(opened).convert("RGB")
                image.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_large", str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageRejected("not_an_image", f"not a readable picture: {exc}") from exc
    except Exception as exc:
        raise ImageRejected("not_an_image", f"not a readable picture ({type(exc).__name__})") from exc
    out = io.BytesIO()
    extra = {"comment": comment} if isinstance(comment, bytes | str) and comment else {}
    image.save(out, "JPEG", quality=88, **extra)
    return np.asarray(image), out.getvalue()


def load_rgb(path: Path) -> np.ndarray:
    """An already-oriented JPEG (a proxy) as an RGB array."""
    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"))
