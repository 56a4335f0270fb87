"""Synthetic event photos whose faces are known: real faces pasted onto large backgrounds.

The faces are cut from the public-domain photographs in ``../shared/faces`` (see its README):
the face that dlib's HOG detector finds in each picture, with a feathered elliptical margin
around it (hair, chin, a little neck), so a pasted head looks like a head and not like a
rectangle. ``compose`` pastes chosen faces at chosen widths onto a 6000x4000 (24 MP) background
at random non-overlapping positions and returns the picture with its ground truth (identity,
source picture and face box of every pasted face); ``write_frame`` writes such a frame as a
camera-like JPEG (quality 90, ~7.5 MB). Everything is deterministic by seed; the crops are made
once per process and cached.

Identities: Obama (three photographs), Biden, Hopper, Collins and Marie Curie (one each; Pierre
Curie is in profile and HOG does not find him). ``obama-partial-1.jpg`` is a crop of
``obama-1.jpg`` and the two Curie files are one picture, so ``Picture.picture`` names the
photograph a file shows: a selfie must never be compared with a face pasted from the same
photograph and counted as a match. ``DEFAULT_POOL`` leaves ``obama-2`` out, as the selfie.

Runs on the caller's thread (single-threaded); used by ``bench/faces_accuracy.py`` and by
``tests/test_faces_engine.py`` (which loads it by path).
"""

from __future__ import annotations

import functools
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

FACES_DIR = Path(__file__).resolve().parents[2] / "shared" / "faces"
FRAME_SIZE = (6000, 4000)  # a 24 MP camera frame
PROXY_LONG_EDGE = 2048
JPEG_QUALITY = 90
GRAIN_SIGMA = 9.0  # sensor-like grain; with it a 24 MP frame encodes to ~7.5 MB at quality 90
GAP = 24  # pixels kept free between two pasted heads

Box = tuple[int, int, int, int]  # left, top, width, height


@dataclass(frozen=True, slots=True)
class Picture:
    """One public-domain file: who is on it and which photograph it is."""

    file: str
    identity: str
    picture: str  # files cut from the same photograph share this


PICTURES = (
    Picture("obama-1.jpg", "obama", "obama-1"),
    Picture("obama-2.jpg", "obama", "obama-2"),
    Picture("obama-3.jpg", "obama", "obama-3"),
    Picture("biden-1.jpg", "biden", "biden-1"),
    Picture("hopper-1.jpg", "hopper", "hopper-1"),
    Picture("collins-astronaut.png", "collins", "collins-astronaut"),
    Picture("curie-couple.jpg", "marie-curie", "curie-couple"),
)
# The other files show the same photographs again: never pasted, usable as selfies or as real
# event photos (with the same-photograph rule applied).
SAME_PHOTOGRAPH = (
    Picture("obama-partial-1.jpg", "obama", "obama-1"),  # obama-1 cut at x=419: half a face
    Picture("curie-couple-exif-orientation-6.jpg", "marie-curie", "curie-couple"),
)
# Marie Curie is also in the 1927 Solvay group (front row, third from the left, the only woman),
# 23 years after the Curie couple picture: her HOG box there at upsample 1. The other 28 are
# people who appear in no other file.
SOLVAY = "solvay-1927-group.jpg"
SOLVAY_MARIE_CURIE: Box = (365, 494, 36, 36)
SELFIE_PICTURE = "obama-2"  # the held-out selfie of benchmarks that need one
DEFAULT_POOL = tuple(p.picture for p in PICTURES if p.picture != SELFIE_PICTURE)
SELFIE_VARIANTS = ("original", "flip", "dark", "bright", "jpeg-q25", "rotate+8", "rotate-8")


def available(folder: Path = FACES_DIR) -> bool:
    files = [p.file for p in (*PICTURES, *SAME_PHOTOGRAPH)] + [SOLVAY]
    return all((folder / file).is_file() for file in files)


def picture(name: str) -> Picture:
    """The ``Picture`` of a photograph name (``"obama-1"``) or of a file name."""
    for item in (*PICTURES, *SAME_PHOTOGRAPH):
        if name in (item.picture, item.file):
            return item
    raise KeyError(name)


def open_oriented(path: Path) -> Image.Image:
    """A file as an upright RGB picture (EXIF orientation applied)."""
    with Image.open(path) as opened:
        return ImageOps.exif_transpose(opened).convert("RGB")


@dataclass(frozen=True)
class Crop:
    """A head cut from a picture: RGB pixels, a feathered alpha mask and the HOG face box."""

    source: Picture
    image: Image.Image
    mask: Image.Image
    face: Box  # in crop pixels


@functools.cache
def _detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


def crop(name: str, folder: Path = FACES_DIR) -> Crop:
    """The head of the largest face HOG finds in a picture (cached per process)."""
    return _crop(picture(name).picture, folder)


@functools.cache
def _crop(name: str, folder: Path) -> Crop:
    source = picture(name)
    image = open_oriented(folder / source.file)
    rects = list(_detector()(np.asarray(image), 0))
    if not rects:
        raise ValueError(f"no face found in {source.file}")
    rect = max(rects, key=lambda r: r.width() * r.height())
    w, h = rect.width(), rect.height()
    cx, cy = rect.left() + w / 2, rect.top() + h / 2 - 0.1 * h  # the head sits above the box centre
    ax, ay = 1.0 * w, 1.3 * h  # ellipse semi-axes: hair, ears, chin, some neck
    left, top = max(0, round(cx - ax)), max(0, round(cy - ay))
    right, bottom = min(image.width, round(cx + ax)), min(image.height, round(cy + ay))
    head = image.crop((left, top, right, bottom))
    mask = Image.new("L", head.size, 0)
    shrink = 0.92  # draw inside the ellipse so the blur fades out before its edge
    ImageDraw.Draw(mask).ellipse(
        (cx - shrink * ax - left, cy - shrink * ay - top, cx + shrink * ax - left, cy + shrink * ay - top),
        fill=255,
    )
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.06 * w)))
    return Crop(source, head, mask, (rect.left() - left, rect.top() - top, w, h))


@dataclass(frozen=True, slots=True)
class PastedFace:
    identity: str
    picture: str
    box: Box  # the face box in frame pixels (the source HOG box, scaled and moved)
    region: Box  # the whole pasted head

    @property
    def width(self) -> int:
        return self.box[2]

    def scaled(self, factor: float) -> Box:
        """The face box in a resized copy of the frame (``factor`` = new / old width)."""
        left, top, w, h = self.box
        return (round(left * factor), round(top * factor), round(w * factor), round(h * factor))


@dataclass(frozen=True)
class Frame:
    image: Image.Image
    faces: list[PastedFace]
    seed: int


def proxy_factor(size: tuple[int, int] = FRAME_SIZE, long_edge: int = PROXY_LONG_EDGE) -> float:
    """How much ``make_proxy`` shrinks a frame of ``size`` (1.0 when it already fits)."""
    return min(1.0, long_edge / max(size))


def background(size: tuple[int, int], seed: int) -> Image.Image:
    """An out-of-focus venue: a light gradient, soft colour blobs and shapes, sensor grain.
    Built at 1/8 scale and enlarged once, so a 24 MP background costs well under a second."""
    rnd = random.Random(seed)
    width, height = size
    small = (max(2, width // 8), max(2, height // 8))
    top_colour = tuple(rnd.randrange(60, 230) for _ in range(3))
    bottom_colour = tuple(rnd.randrange(20, 160) for _ in range(3))
    column = np.linspace(0.0, 1.0, small[1])[:, None, None]
    gradient = (1 - column) * np.array(top_colour) + column * np.array(bottom_colour)
    base = Image.fromarray(np.broadcast_to(gradient, (small[1], small[0], 3)).astype(np.uint8))
    blob_grid = (max(1, small[0] // 40), max(1, small[1] // 40))
    blobs = Image.frombytes("RGB", blob_grid, rnd.randbytes(blob_grid[0] * blob_grid[1] * 3))
    base = Image.blend(base, blobs.resize(small, Image.Resampling.BICUBIC), 0.35)
    draw = ImageDraw.Draw(base)
    for _ in range(rnd.randrange(8, 20)):  # tables, doors, lamps, people's clothes
        x0, y0 = rnd.randrange(small[0]), rnd.randrange(small[1])
        x1, y1 = x0 + rnd.randrange(10, small[0] // 3), y0 + rnd.randrange(10, small[1] // 3)
        fill = tuple(rnd.randrange(256) for _ in range(3))
        (draw.rectangle if rnd.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=fill)
    base = base.filter(ImageFilter.GaussianBlur(3))
    full = base.resize(size, Image.Resampling.BICUBIC)
    return ImageChops.add(full, _grain(size, seed), scale=1.0, offset=-128)


def _grain(size: tuple[int, int], seed: int) -> Image.Image:
    """Grey grain centred on 128, a seeded 512 px tile repeated (a fifth of the cost of
    ``Image.effect_noise`` at 24 MP, and deterministic, which the C generator is not)."""
    rng = np.random.default_rng(seed)
    tile_px = 512
    noise = rng.normal(128.0, GRAIN_SIGMA, (tile_px, tile_px)).clip(0, 255).astype(np.uint8)
    tile = Image.fromarray(noise, "L").convert("RGB")
    grain = Image.new("RGB", size)
    for y in range(0, size[1], tile_px):
        for x in range(0, size[0], tile_px):
            grain.paste(tile, (x, y))
    return grain


def _place(
    rnd: random.Random, size: tuple[int, int], region: tuple[int, int], taken: list[Box]
) -> tuple[int, int] | None:
    width, height = size
    if region[0] > width or region[1] > height:
        return None
    for _ in range(300):
        x, y = rnd.randrange(width - region[0] + 1), rnd.randrange(height - region[1] + 1)
        if all(
            x + region[0] + GAP <= tx or tx + tw + GAP <= x or y + region[1] + GAP <= ty or ty + th + GAP <= y
            for tx, ty, tw, th in taken
        ):
            return x, y
    return None


def compose(
    seed: int,
    faces: Sequence[tuple[str, int]],
    *,
    size: tuple[int, int] = FRAME_SIZE,
    jitter: bool = True,
    folder: Path = FACES_DIR,
) -> Frame:
    """A frame with ``faces`` (photograph name, face width in frame pixels) pasted onto a
    background. Larger heads are placed first; a head that finds no free place after many
    tries is shrunk by 15% until it fits (the ground truth records the width it got).
    ``jitter`` varies each paste a little (mirror, brightness 0.8-1.2, rotation up to 6
    degrees about the face centre) so two pastes of one picture are not the same pixels."""
    rnd = random.Random(seed)
    frame = background(size, seed)
    taken: list[Box] = []
    pasted: list[PastedFace] = []
    for name, face_width in sorted(faces, key=lambda item: -item[1]):
        head = crop(name, folder)
        fl, ft, fw, fh = head.face
        target = float(face_width)
        while True:
            factor = target / fw
            region = (max(1, round(head.image.width * factor)), max(1, round(head.image.height * factor)))
            spot = _place(rnd, size, region, taken)
            if spot is not None:
                break
            target *= 0.85
            if target < 8:
                raise ValueError(f"no room left for a face in a {size[0]}x{size[1]} frame")
        method = Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC
        pixels, mask = head.image.resize(region, method), head.mask.resize(region, method)
        box = (round(fl * factor), round(ft * factor), round(fw * factor), round(fh * factor))
        if jitter:
            if rnd.random() < 0.5:
                pixels, mask = ImageOps.mirror(pixels), ImageOps.mirror(mask)
                box = (region[0] - box[0] - box[2], *box[1:])
            pixels = ImageEnhance.Brightness(pixels).enhance(rnd.uniform(0.8, 1.2))
            angle = rnd.uniform(-6.0, 6.0)
            centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
            pixels = pixels.rotate(angle, Image.Resampling.BICUBIC, center=centre)
            mask = mask.rotate(angle, Image.Resampling.BICUBIC, center=centre)
        frame.paste(pixels, spot, mask)
        taken.append((*spot, *region))
        face_box = (spot[0] + box[0], spot[1] + box[1], box[2], box[3])
        pasted.append(
            PastedFace(head.source.identity, head.source.picture, face_box, (*spot, *region)),
        )
    return Frame(frame, pasted, seed)


def _exif(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "shutterbox-bench"  # Make
    exif[0x0110] = "synthetic faces"  # Model
    exif[0x0132] = "2025:06:14 18:30:00"  # DateTime
    exif.get_ifd(0x8769)[0x9003] = "2025:06:14 18:30:00"  # DateTimeOriginal
    exif[0xA420] = f"{seed:032x}"  # ImageUniqueID
    return exif.tobytes()


def encode(frame: Frame, quality: int = JPEG_QUALITY) -> bytes:
    """A frame as a camera-like JPEG (EXIF with make, model, date and a unique id)."""
    out = io.BytesIO()
    frame.image.save(out, "JPEG", quality=quality, exif=_exif(frame.seed))
    return out.getvalue()


def write_frame(
    path: Path,
    n_faces: int,
    *,
    seed: int,
    pool: Sequence[str] = DEFAULT_POOL,
    widths: Sequence[int] = (150, 240, 300, 450),
    size: tuple[int, int] = FRAME_SIZE,
    quality: int = JPEG_QUALITY,
    folder: Path = FACES_DIR,
) -> list[PastedFace]:
    """Write a 24 MP JPEG with ``n_faces`` (0-30) faces drawn from ``pool`` (photograph names)
    at widths drawn from ``widths``; return the ground truth. Same seed, same bytes."""
    if not 0 <= n_faces <= 30:
        raise ValueError("n_faces must be 0-30")
    rnd = random.Random(seed ^ 0x5EED)
    faces = [(rnd.choice(pool), rnd.choice(widths)) for _ in range(n_faces)]
    frame = compose(seed, faces, size=size, folder=folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(frame, quality))
    return frame.faces


@dataclass(frozen=True, slots=True)
class SelfieUpload:
    data: bytes  # what the guest uploads
    face: Box  # the sitter's face box in the upright picture those bytes show
    size: tuple[int, int]  # that upright picture's width and height


def sitter(name: str, folder: Path = FACES_DIR) -> tuple[Box, tuple[int, int]]:
    """The largest face HOG finds (upsample 0) in a file, upright, and the upright size."""
    return _sitter(picture(name).file, folder)


@functools.cache
def _sitter(file: str, folder: Path) -> tuple[Box, tuple[int, int]]:
    image = open_oriented(folder / file)
    rects = list(_detector()(np.asarray(image), 0))
    if not rects:
        raise ValueError(f"no face found in {file}")
    rect = max(rects, key=lambda r: r.width() * r.height())
    return (rect.left(), rect.top(), rect.width(), rect.height()), image.size


def selfie(name: str, variant: str = "original", folder: Path = FACES_DIR) -> SelfieUpload:
    """A guest's upload made from a real file, and where the sitter's face is on it.
    ``"original"`` is the file's own bytes; the other ``SELFIE_VARIANTS`` are the upright
    picture mirrored, darkened (x0.6), brightened (x1.35), recompressed at JPEG quality 25 or
    rotated by 8 degrees either way (the face box follows the same transform)."""
    source = picture(name)
    face, size = _sitter(source.file, folder)
    if variant == "original":
        return SelfieUpload((folder / source.file).read_bytes(), face, size)
    image = open_oriented(folder / source.file)
    marker = Image.new("L", image.size, 0)
    ImageDraw.Draw(marker).rectangle(
        (face[0], face[1], face[0] + face[2] - 1, face[1] + face[3] - 1), fill=255
    )
    quality = 92
    if variant == "flip":
        image, marker = ImageOps.mirror(image), ImageOps.mirror(marker)
    elif variant == "dark":
        image = ImageEnhance.Brightness(image).enhance(0.6)
    elif variant == "bright":
        image = ImageEnhance.Brightness(image).enhance(1.35)
    elif variant == "jpeg-q25":
        quality = 25
    elif variant in ("rotate+8", "rotate-8"):
        angle = 8.0 if variant == "rotate+8" else -8.0
        image = image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
        marker = marker.rotate(angle, Image.Resampling.NEAREST, expand=True)
    else:
        raise ValueError(f"unknown selfie variant {variant!r}")
    left, top, right, bottom = marker.getbbox() or (0, 0, 0, 0)  # rotated: the box around it
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return SelfieUpload(out.getvalue(), (left, top, right - left, bottom - top), image.size)


def selfie_bytes(name: str, variant: str = "original", folder: Path = FACES_DIR) -> bytes:
    """Only the bytes of ``selfie(name, variant)``: a photograph name or file name, as uploaded."""
    return selfie(name, variant, folder).data


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0
