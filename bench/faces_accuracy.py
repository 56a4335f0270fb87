"""Face-search accuracy of the local engine: detection by face size, true and false matches by
distance threshold, and the threshold and ``min_face_px`` this evidence supports.

What it does
    * Synthetic event photos (``_synthetic.py``): real faces from ../shared/faces pasted onto
      6000x4000 (24 MP) backgrounds at face widths of 150, 200, 240, 300, 450 and 700 px in the
      original frame (51, 68, 82, 102, 154 and 239 px in the 2048 px proxy, x1/2.93). Every
      (photograph, width) pair appears ``--reps`` times, six faces to a frame, plus a few
      frames without faces. Each frame is written as a camera-like JPEG, turned into a proxy
      by ``appliance.proxy.make_proxy`` (as the box does) and indexed by
      ``FaceModel(min_face_px=1).faces`` twice: upsample 0 (the box's setting) and upsample 1
      (which also finds faces below ~70 px). Every detected face gets an embedding; the
      ``min_face_px`` policies are applied afterwards, on the detected box size. As in the
      box's face worker, faces under ``DETAIL_BELOW`` px are cut from the original decoded at
      the decoder's scale the proxy came from (1/2 here) rather than from the proxy
      (``--no-detail``: from the proxy, as before 2026-12-06). The embedding runs on
      onnxruntime from the converted model, as in the box (``--dlib``: dlib's own embedder).
    * The real photos of ../shared/faces, indexed the same way (the upright Curie file is left
      out: it is the same picture as the EXIF-rotated one, which is indexed).
    * Selfies: every real photo, as uploaded and in augmented variants (mirrored, darker,
      brighter, JPEG quality 25, rotated +-8 degrees), through ``decode_selfie`` and
      ``FaceModel.largest``; a selfie face under 80 px is refused, as the box does.
    * Each selfie against every indexed face: a pair is *genuine* when both show the same
      person on different photographs, *impostor* when they show different people (or the
      indexed "face" is a false detection). A face pasted from the selfie's own photograph is
      neither: such pairs only show how far size and processing move one picture's embedding
      ("drift"). A photo is *wrongly returned* to a guest when one of its faces matches and
      the guest is not in it.

How to reproduce
    .venv/bin/python bench/faces_accuracy.py            # 2-4 min on 2 cores
    .venv/bin/python bench/faces_accuracy.py --quick    # ~1 min: one repetition, 3 variants
    Deterministic: the same flags print the same figures (timings aside). Progress goes to
    stderr, the tables to stdout. The script prints figures; it asserts nothing about them.

Runs in the main thread; the work is spread over ``--workers`` spawned processes (dlib holds
the GIL and computes on one core), each loading its own models.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repo root, for appliance.*

import _synthetic as synth
from PIL import Image

from appliance.faces.dlibnet import ensure_model
from appliance.faces.engine import (
    DETAIL_BELOW,
    RESNET_DAT,
    FaceModel,
    ImageRejected,
    decode_selfie,
    load_rgb,
    models_dir,
)
from appliance.faces.regions import ensure_proposer
from appliance.proxy import decode, make_proxy

SIZES = (150, 200, 240, 300, 450, 700)  # face width in the 6000 px original
FACES_PER_FRAME = 6
THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60)
BUCKETS = ((0, 60, "<60"), (60, 80, "60-80"), (80, 120, "80-120"), (120, 1 << 20, ">=120"))
MIN_FACE_CANDIDATES = (1, 60, 80, 100, 120)
SELFIE_MIN_PX = 80  # the box refuses a selfie whose largest face is smaller ("face_too_small")
SAFETY_MARGIN = 0.05  # the nearest impostor must lie at least this far above the threshold
PASSES = (0, 1)  # HOG upsample settings compared
IOU_MATCH = 0.4
SELFIE_FILES = (
    "obama-1.jpg",
    "obama-2.jpg",
    "obama-3.jpg",
    "obama-partial-1.jpg",
    "biden-1.jpg",
    "hopper-1.jpg",
    "collins-astronaut.png",
    "curie-couple.jpg",
)
REAL_PHOTOS = (
    "obama-1.jpg",
    "obama-2.jpg",
    "obama-3.jpg",
    "obama-partial-1.jpg",
    "biden-1.jpg",
    "hopper-1.jpg",
    "collins-astronaut.png",
    "curie-couple-exif-orientation-6.jpg",
    "solvay-1927-group.jpg",
)
SOLVAY_FACES = 29


# --------------------------------------------------------------------------------------------
# Work done in the worker processes


Box = tuple[int, int, int, int]
Truth = tuple[str, str | None, Box | None]  # identity, photograph, face box (None: not known)


@dataclass
class IndexedFace:
    box: Box
    size: int
    embedding: np.ndarray
    identity: str | None = None  # None: a detection that matches nobody (background)
    picture: str | None = None


@dataclass
class IndexedPhoto:
    name: str
    kind: str  # "synthetic" or "real"
    truth: list[Truth]
    faces: dict[int, list[IndexedFace]]  # by upsample
    seconds: dict[int, float]  # faces() time per upsample (detection + every embedding)
    nominal: list[int] = field(default_factory=list)  # synthetic: frame width of each truth face


@dataclass
class Selfie:
    file: str
    variant: str
    identity: str
    picture: str
    embedding: np.ndarray | None
    size: int
    error: str | None


_models: dict[int, FaceModel] = {}  # photos, with the indexing process's session
_selfie_model: FaceModel | None = None  # selfies, with the selfie process's session
_workdir: Path | None = None
_detail = True


def _init(workdir: str, onnx_model: str | None, detail: bool, proposer: str | None) -> None:
    global _workdir, _detail, _selfie_model  # per-process state: models loaded once
    _workdir = Path(workdir)
    _detail = detail
    model = Path(onnx_model) if onnx_model else None
    proposals = Path(proposer) if proposer else None  # used at upsample 0 only, as in the box
    for upsample in PASSES:
        _models[upsample] = FaceModel(
            min_face_px=1, upsample=upsample, onnx_model=model, fast=True, proposer=proposals
        )
    _selfie_model = FaceModel(min_face_px=1, upsample=0, onnx_model=model, proposer=proposals)


def _decoded(original: Path) -> Image.Image | None:
    """The original as the face worker holds it while making the proxy: decoded at the JPEG
    decoder's scale for the proxy's size, oriented."""
    if not _detail:
        return None
    return decode(original, synth.PROXY_LONG_EDGE).upright()


def _index(
    proxy: Path, detail: Image.Image | None = None
) -> tuple[dict[int, list[IndexedFace]], dict[int, float]]:
    image = load_rgb(proxy)
    found: dict[int, list[IndexedFace]] = {}
    seconds: dict[int, float] = {}
    for upsample, model in _models.items():
        start = time.perf_counter()
        faces = model.faces(image, (lambda: detail) if detail is not None else None)
        seconds[upsample] = time.perf_counter() - start
        found[upsample] = [
            IndexedFace((f.left, f.top, f.width, f.height), f.size, f.embedding)
            for f in faces
            if f.embedding is not None
        ]
    return found, seconds


def index_frame(seed: int, faces: list[tuple[str, int]]) -> IndexedPhoto:
    assert _workdir is not None
    frame = synth.compose(seed, faces)
    original = _workdir / f"frame-{seed}.jpg"
    original.write_bytes(synth.encode(frame))
    proxy = make_proxy(original, _workdir / f"frame-{seed}.proxy.jpg")
    detail = _decoded(original)
    original.unlink()
    factor = proxy.width / frame.image.width
    found, seconds = _index(proxy.path, detail)
    proxy.path.unlink()
    truth: list[Truth] = [(f.identity, f.picture, f.scaled(factor)) for f in frame.faces]
    nominal = [_nominal(f.width) for f in frame.faces]
    for detected in found.values():
        _label(detected, truth)
    return IndexedPhoto(f"synthetic-{seed}", "synthetic", truth, found, seconds, nominal)


def _nominal(width: int) -> int:
    """The planned width of a pasted face (the ground truth may be a few px off, or shrunk)."""
    return min(SIZES, key=lambda s: abs(s - width))


def _label(detected: list[IndexedFace], truth: list[Truth]) -> None:
    """Give each detection the identity of the ground-truth face it overlaps best."""
    taken: set[int] = set()
    pairs = sorted(
        (
            (synth.iou(face.box, box), i, j)
            for i, face in enumerate(detected)
            for j, (_, _, box) in enumerate(truth)
            if box is not None
        ),
        reverse=True,
    )
    done: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < IOU_MATCH:
            break
        if i in done or j in taken:
            continue
        detected[i].identity, detected[i].picture = truth[j][0], truth[j][1]
        done.add(i)
        taken.add(j)


def index_real(file: str) -> IndexedPhoto:
    """A shared photo as the box would index it; its faces are labelled by their boxes."""
    assert _workdir is not None
    proxy = make_proxy(synth.FACES_DIR / file, _workdir / f"real-{file}.proxy.jpg")
    found, seconds = _index(proxy.path)
    proxy.path.unlink()
    if file == synth.SOLVAY:  # shown at its own size: the proxy does not enlarge
        truth: list[Truth] = [("marie-curie", "solvay-1927-group", synth.SOLVAY_MARIE_CURIE)]
        truth += [("solvay", "solvay-1927-group", None)] * (SOLVAY_FACES - 1)
        unknown = "solvay"  # 28 people who are in no other file
    else:
        source = synth.picture(file)
        face, size = synth.sitter(file)
        factor = proxy.width / size[0]
        left, top, width, height = (round(v * factor) for v in face)
        truth = [(source.identity, source.picture, (left, top, width, height))]
        if source.picture == "curie-couple":
            truth.append(("pierre-curie", source.picture, None))  # in profile: HOG misses him
        unknown = None  # anything else is a false detection (the mission patch on Collins's suit)
    for detected in found.values():
        for indexed in detected:
            indexed.identity, indexed.picture = unknown, truth[0][1]
        _label(detected, truth)
    return IndexedPhoto(file, "real", truth, found, seconds)


def embed_selfie(file: str, variant: str) -> Selfie:
    """As the box does it (``decode_selfie``, then the largest face), and checked: the face
    used must be the sitter's (a false detection larger than the face is refused here)."""
    source = synth.picture(file)
    upload = synth.selfie(file, variant)

    def refused(error: str, size: int = 0) -> Selfie:
        return Selfie(file, variant, source.identity, source.picture, None, size, error)

    try:
        image, _ = decode_selfie(upload.data)
    except ImageRejected as exc:
        return refused(exc.code)
    assert _selfie_model is not None
    face, _ = _selfie_model.largest(image)
    if face is None:
        return refused("no_face")
    if face.size < SELFIE_MIN_PX or face.embedding is None:
        return refused("face_too_small", face.size)
    scale = image.shape[1] / upload.size[0]
    left, top, width, height = (round(v * scale) for v in upload.face)
    if synth.iou((face.left, face.top, face.width, face.height), (left, top, width, height)) < 0.3:
        return refused("largest_is_not_the_face", face.size)
    return Selfie(file, variant, source.identity, source.picture, face.embedding, face.size, None)


# --------------------------------------------------------------------------------------------
# Plan


def plan_frames(reps: int, empty: int, seed: int = 2025) -> list[tuple[int, list[tuple[str, int]]]]:
    """Every (photograph, width) pair ``reps`` times, shuffled into frames of six faces."""
    rnd = random.Random(seed)
    frames: list[tuple[int, list[tuple[str, int]]]] = []
    for rep in range(reps):
        combos = [(p.picture, size) for p in synth.PICTURES for size in SIZES]
        rnd.shuffle(combos)
        for start in range(0, len(combos), FACES_PER_FRAME):
            frames.append((seed + 1000 * rep + start, combos[start : start + FACES_PER_FRAME]))
    frames.extend((seed + 500_000 + i, []) for i in range(empty))
    return frames


def run(args: argparse.Namespace) -> tuple[list[IndexedPhoto], list[Selfie], float]:
    frames = plan_frames(args.reps, args.empty)
    variants = ("original", "flip", "jpeg-q25") if args.quick else synth.SELFIE_VARIANTS
    selfie_jobs = [(file, v) for file in SELFIE_FILES for v in variants]
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="faces-accuracy-") as tmp,
        ctx.Pool(
            args.workers,
            initializer=_init,
            initargs=(tmp, _model(args, tmp), args.detail, _proposer(args, tmp)),
        ) as pool,
    ):
        frame_results = pool.starmap_async(index_frame, frames, chunksize=1)
        real_results = pool.map_async(index_real, REAL_PHOTOS, chunksize=1)
        selfie_results = pool.starmap_async(embed_selfie, selfie_jobs, chunksize=4)
        _progress(
            f"{len(frames)} synthetic frames, {len(REAL_PHOTOS)} real photos, "
            f"{len(selfie_jobs)} selfies on {args.workers} workers"
        )
        photos = frame_results.get() + real_results.get()
        selfies = selfie_results.get()
    return photos, selfies, time.perf_counter() - start


def _model(args: argparse.Namespace, folder: str) -> str | None:
    """The ONNX form of dlib's ResNet, converted as the box does (None: dlib's own embedder)."""
    return None if args.dlib else str(ensure_model(models_dir() / RESNET_DAT, Path(folder) / "models"))


def _proposer(args: argparse.Namespace, folder: str) -> str | None:
    """The face proposal model HOG scans around (``faces.scan``, the box's default ``regions``;
    photos and selfies), derived as the box does; None for ``--scan full``."""
    return str(ensure_proposer(Path(folder) / "models")) if args.scan == "regions" else None


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Analysis


@dataclass
class Pairs:
    """Every selfie against every indexed face of one upsample pass."""

    dist: np.ndarray  # selfies x faces
    kind: np.ndarray  # 1 genuine, -1 impostor, 0 same photograph
    size: np.ndarray  # detected box size of each face
    photo: np.ndarray  # photo index of each face
    guest_in: np.ndarray  # selfies x photos: 1 guest in photo (other photograph), 0 not, -1 only own
    photos: list[IndexedPhoto]


def pairs_for(photos: list[IndexedPhoto], selfies: list[Selfie], upsample: int) -> Pairs:
    faces = [(i, f) for i, p in enumerate(photos) for f in p.faces[upsample]]
    emb_f = np.stack([f.embedding for _, f in faces])
    emb_s = np.stack([s.embedding for s in selfies if s.embedding is not None])
    usable = [s for s in selfies if s.embedding is not None]
    dist = np.linalg.norm(emb_s[:, None, :] - emb_f[None, :, :], axis=2)
    kind = np.zeros(dist.shape, dtype=np.int8)
    for a, s in enumerate(usable):
        for b, (_, f) in enumerate(faces):
            if f.picture is not None and f.picture == s.picture:
                kind[a, b] = 0
            elif f.identity == s.identity:
                kind[a, b] = 1
            else:
                kind[a, b] = -1
    guest_in = np.zeros((len(usable), len(photos)), dtype=np.int8)
    for a, s in enumerate(usable):
        for b, p in enumerate(photos):
            mine = [pic for ident, pic, _ in p.truth if ident == s.identity]
            if any(pic != s.picture for pic in mine):
                guest_in[a, b] = 1
            elif mine:
                guest_in[a, b] = -1
    size = np.array([f.size for _, f in faces])
    photo = np.array([i for i, _ in faces])
    return Pairs(dist, kind, size, photo, guest_in, photos)


def _per_photo(pairs: Pairs, hits: np.ndarray) -> np.ndarray:
    """selfies x faces -> selfies x photos: any of the photo's faces is a hit."""
    out = np.zeros(pairs.guest_in.shape, dtype=bool)
    for b in range(pairs.guest_in.shape[1]):
        cols = pairs.photo == b
        if cols.any():
            out[:, b] = hits[:, cols].any(axis=1)
    return out


def _matched_photos(pairs: Pairs, face_mask: np.ndarray, threshold: float) -> np.ndarray:
    """Some face in ``face_mask`` (not from the selfie's own photograph) matches."""
    return _per_photo(pairs, (pairs.dist < threshold) & (pairs.kind != 0) & face_mask[None, :])


def _genuine_in_photo(pairs: Pairs, face_mask: np.ndarray) -> np.ndarray:
    """The photo has a detected face of the selfie's person (another photograph) in ``face_mask``."""
    return _per_photo(pairs, (pairs.kind == 1) & face_mask[None, :])


def _genuine_hit(pairs: Pairs, face_mask: np.ndarray, threshold: float) -> np.ndarray:
    """One of those genuine faces matches."""
    return _per_photo(pairs, (pairs.kind == 1) & face_mask[None, :] & (pairs.dist < threshold))


def _has_faces(pairs: Pairs, face_mask: np.ndarray) -> np.ndarray:
    return np.array([(face_mask & (pairs.photo == b)).any() for b in range(pairs.guest_in.shape[1])])


def _rate(k: int, n: int) -> str:
    return f"{100 * k / n:5.1f}% ({k}/{n})" if n else "    -"


def table_detection(photos: list[IndexedPhoto], factor: float) -> list[str]:
    lines = [
        "(a) Detection by face size: synthetic frames (a face counts as found when a HOG box overlaps",
        f"    its pasted box with IoU >= {IOU_MATCH}; box = the detector's box, not the head)",
        "",
        f"  {'width in 6000 px':>16}  {'in proxy':>8}  {'faces':>5}  {'found, upsample 0':>18}  "
        f"{'found, upsample 1':>18}  {'box px (up 0)':>13}",
    ]
    synthetic = [p for p in photos if p.kind == "synthetic"]
    for size in SIZES:
        total = 0
        found = dict.fromkeys(PASSES, 0)
        boxes: list[int] = []
        for p in synthetic:
            for j, nominal in enumerate(p.nominal):
                if nominal != size:
                    continue
                total += 1
                for up in PASSES:
                    match = [f for f in p.faces[up] if _overlaps(f.box, p.truth[j][2])]
                    if match:
                        found[up] += 1
                        if up == 0:
                            boxes.append(match[0].size)
        box_text = f"{min(boxes)}-{max(boxes)}" if boxes else "-"
        lines.append(
            f"  {size:>16}  {round(size * factor):>8}  {total:>5}  {_rate(found[0], total):>18}  "
            f"{_rate(found[1], total):>18}  {box_text:>13}"
        )
    for up in PASSES:
        spurious = sum(1 for p in synthetic for f in p.faces[up] if f.identity is None)
        lines.append(
            f"  false detections (no pasted face there), upsample {up}: {spurious} in {len(synthetic)} frames"
        )
    lines += ["", "    Real photos (the proxy as the box makes it):", ""]
    lines.append(f"  {'file':<38} {'faces':>5} {'found up 0':>10} {'found up 1':>10}  boxes px (up 0 / up 1)")
    for p in photos:
        if p.kind != "real":
            continue
        sizes = {up: sorted((f.size for f in p.faces[up]), reverse=True) for up in PASSES}
        lines.append(
            f"  {p.name:<38} {len(p.truth):>5} {len(p.faces[0]):>10} {len(p.faces[1]):>10}  "
            f"{_short(sizes[0])} / {_short(sizes[1])}"
        )
    return lines


def _short(values: list[int]) -> str:
    if not values:
        return "-"
    if len(values) <= 3:
        return ",".join(map(str, values))
    return f"{min(values)}-{max(values)}"


def _overlaps(a: Box, b: Box | None) -> bool:
    return b is not None and synth.iou(a, b) >= IOU_MATCH


def table_matches(pairs: Pairs, upsample: int) -> list[str]:
    lines = [
        f"(b) Matches, upsample {upsample}: selfie vs indexed face, by the indexed face's box in proxy px",
        "    true = genuine pairs (same person, other photograph) below the threshold;",
        "    false = impostor pairs below it; wrong photo = (selfie, photo without the guest) pairs",
        "    where a face of that bucket matches; photo found = the guest's photo found through a",
        "    face of that bucket",
        "",
        f"  {'bucket':>7} {'thr':>5}  {'true (pairs)':>20}  {'false (pairs)':>20}  "
        f"{'photo found':>20}  {'wrong photo':>20}",
    ]
    for low, high, label in BUCKETS:
        mask = (pairs.size >= low) & (pairs.size < high)
        genuine = (pairs.kind == 1) & mask[None, :]
        impostor = (pairs.kind == -1) & mask[None, :]
        if not mask.any():
            lines.append(f"  {label:>7}  no face of this size was found")
            continue
        in_photo = _genuine_in_photo(pairs, mask)
        absent = (pairs.guest_in == 0) & _has_faces(pairs, mask)[None, :]
        for t in THRESHOLDS:
            below = pairs.dist < t
            matched = _matched_photos(pairs, mask, t)
            found = _genuine_hit(pairs, mask, t)
            lines.append(
                f"  {label:>7} {t:5.2f}  {_rate(int((genuine & below).sum()), int(genuine.sum())):>20}  "
                f"{_rate(int((impostor & below).sum()), int(impostor.sum())):>20}  "
                f"{_rate(int((found & in_photo).sum()), int(in_photo.sum())):>20}  "
                f"{_rate(int((matched & absent).sum()), int(absent.sum())):>20}"
            )
        gen_d, imp_d = pairs.dist[genuine], pairs.dist[impostor]
        lines.append(
            f"  {label:>7} distances: genuine median {_stat(gen_d, np.median)}, max {_stat(gen_d, np.max)};"
            f" impostor min {_stat(imp_d, np.min)}, 1st pct {_stat(imp_d, lambda d: np.percentile(d, 1))};"
            f" same-photograph drift median {_stat(pairs.dist[(pairs.kind == 0) & mask[None, :]], np.median)}"
        )
    return lines


SIZE_BINS = (0, 44, 52, 60, 72, 80, 90, 105, 125, 160, 1 << 20)


def table_sizes(pairs: Pairs, upsample: int) -> list[str]:
    lines = [
        f"(d) Distances by box size, upsample {upsample} (finer bins; the same pairs as (b))",
        "",
        f"  {'box px':>9}  {'genuine':>7} {'max':>6}  {'impostor':>8} {'min':>6} {'<0.50':>5} {'<0.55':>5}"
        f"  {'same-photo drift median':>23}",
    ]
    for low, high in itertools.pairwise(SIZE_BINS):
        mask = (pairs.size >= low) & (pairs.size < high)
        genuine = pairs.dist[(pairs.kind == 1) & mask[None, :]]
        impostor = pairs.dist[(pairs.kind == -1) & mask[None, :]]
        drift = pairs.dist[(pairs.kind == 0) & mask[None, :]]
        if not (genuine.size or impostor.size):
            continue
        label = f"{low}-{high - 1}" if high < 1 << 20 else f">={low}"
        lines.append(
            f"  {label:>9}  {genuine.size:>7} {_stat(genuine, np.max):>6}  {impostor.size:>8} "
            f"{_stat(impostor, np.min):>6} {int((impostor < 0.5).sum()):>5} {int((impostor < 0.55).sum()):>5}"
            f"  {_stat(drift, np.median):>23}"
        )
    return lines


def small_against_small(photos: list[IndexedPhoto], upsample: int) -> list[str]:
    """The Solvay faces against each other: tiny against tiny, which a search never does (a
    selfie's face is large), but which is where the field notes saw false matches."""
    solvay = next((p for p in photos if p.name == synth.SOLVAY), None)
    if solvay is None or len(solvay.faces[upsample]) < 2:
        return []
    emb = np.stack([f.embedding for f in solvay.faces[upsample]])
    sizes = _short([f.size for f in solvay.faces[upsample]])
    dist = np.linalg.norm(emb[:, None, :] - emb[None, :, :], axis=2)[np.triu_indices(len(emb), 1)]
    return [
        "",
        f"  for comparison, the {len(emb)} Solvay faces ({sizes} px,"
        f" {len(emb) - 1} different people and Marie Curie) against each other: {dist.size} pairs,",
        f"  min {dist.min():.3f}, {int((dist < 0.5).sum())} below 0.50, {int((dist < 0.6).sum())} below 0.60"
        " (tiny against tiny; a search always has a large selfie face on one side)",
    ]


def _stat(values: np.ndarray, fn: Callable[[np.ndarray], Any]) -> str:
    return f"{fn(values):.3f}" if values.size else "-"


@dataclass(frozen=True)
class Policy:
    min_face_px: int
    threshold: float
    found: int
    relevant: int
    wrong: int
    absent: int
    false_pairs: int
    nearest_impostor: float


def policies(pairs: Pairs) -> list[Policy]:
    out = []
    relevant = pairs.guest_in == 1
    absent = pairs.guest_in == 0
    for min_px in MIN_FACE_CANDIDATES:
        mask = pairs.size >= min_px
        impostor = (pairs.kind == -1) & mask[None, :]
        nearest = float(pairs.dist[impostor].min()) if impostor.any() else float("inf")
        for t in THRESHOLDS:
            matched = _matched_photos(pairs, mask, t)
            out.append(
                Policy(
                    min_px,
                    t,
                    int((matched & relevant).sum()),
                    int(relevant.sum()),
                    int((matched & absent).sum()),
                    int(absent.sum()),
                    int((impostor & (pairs.dist < t)).sum()),
                    nearest,
                )
            )
    return out


def choose(candidates: Iterable[Policy], margin: float) -> Policy | None:
    """Zero wrong photos and zero false pairs, the nearest impostor at least ``margin`` above
    the threshold; then the most photos found; then the lower threshold, the larger faces."""
    safe = [
        p
        for p in candidates
        if p.wrong == 0 and p.false_pairs == 0 and p.nearest_impostor >= p.threshold + margin
    ]
    if not safe:
        return None
    return max(safe, key=lambda p: (p.found, -p.threshold, p.min_face_px))


def table_policies(pairs: Pairs, upsample: int) -> tuple[list[str], Policy | None]:
    rows = policies(pairs)
    lines = [
        f"(c) Policies, upsample {upsample}: faces with a box under min_face_px are not searchable",
        "    photos found = (selfie, photo the guest is in on another photograph) pairs returned;",
        "    wrong photos = (selfie, photo without the guest) pairs returned",
        "",
        f"  {'min_face_px':>11} {'thr':>5}  {'photos found':>20}  {'wrong photos':>18}  "
        f"{'false pairs':>11}  {'nearest impostor':>16}",
    ]
    for p in rows:
        lines.append(
            f"  {p.min_face_px:>11} {p.threshold:5.2f}  {_rate(p.found, p.relevant):>20}  "
            f"{_rate(p.wrong, p.absent):>18}  {p.false_pairs:>11}  {p.nearest_impostor:>16.3f}"
        )
    best = choose(rows, SAFETY_MARGIN)
    plain = choose(rows, 0.0)
    lines.append("")
    if best is None:
        lines.append(f"  no policy is free of false matches with a {SAFETY_MARGIN} margin")
    else:
        lines.append(
            f"  recommended (zero wrong photos, nearest impostor >= threshold + {SAFETY_MARGIN}): "
            f"threshold {best.threshold:.2f}, min_face_px {best.min_face_px}: "
            f"{_rate(best.found, best.relevant).strip()} photos found"
        )
    if plain is not None and plain != best:
        lines.append(
            f"  without the margin: threshold {plain.threshold:.2f}, min_face_px {plain.min_face_px}: "
            f"{_rate(plain.found, plain.relevant).strip()} photos found"
        )
    return lines, best


def report(
    photos: list[IndexedPhoto], selfies: list[Selfie], seconds: float, args: argparse.Namespace
) -> None:
    factor = synth.proxy_factor()
    usable = [s for s in selfies if s.embedding is not None]
    refused = [s for s in selfies if s.embedding is None]
    synthetic = [p for p in photos if p.kind == "synthetic"]
    identities = sorted({s.identity for s in usable})
    out = [
        "Face-search accuracy: shutterbox local engine (dlib HOG + 5-point + ResNet 128-d)",
        f"  run: {'--quick' if args.quick else 'full'}, reps {args.reps}, {args.workers} workers, "
        f"{seconds:.0f} s wall; embedder {'dlib' if args.dlib else 'onnxruntime'}; HOG scan "
        f"{'around proposals' if args.scan == 'regions' else 'full'} (upsample 0); "
        f"small faces (< {DETAIL_BELOW} px) cut from "
        + ("the 1/2-scale decode of the original" if args.detail else "the proxy"),
        f"  indexed: {len(synthetic)} synthetic 6000x4000 frames "
        f"({sum(len(p.truth) for p in synthetic)} pasted faces; proxy 2048 px = x{factor:.3f}), "
        f"{len(photos) - len(synthetic)} real photos",
        f"  selfies: {len(usable)} used ({len(SELFIE_FILES)} real files x "
        f"{len(selfies) // len(SELFIE_FILES)} variants), {len(refused)} refused"
        + (
            ": " + ", ".join(f"{s.file}/{s.variant} ({s.error}, {s.size} px)" for s in refused)
            if refused
            else ""
        ),
        f"  people among the selfies: {', '.join(identities)}",
    ]
    pairs = {up: pairs_for(photos, selfies, up) for up in PASSES}
    for up in PASSES:
        genuine = Counter(usable[a].identity for a, _ in np.argwhere(pairs[up].kind == 1))
        out.append(
            f"  genuine pairs (same person, another photograph), upsample {up}: "
            + ", ".join(f"{who} {n}" for who, n in sorted(genuine.items()))
        )
    for up in PASSES:
        per = [p.seconds[up] for p in synthetic]
        faces = sum(len(p.faces[up]) for p in synthetic)
        out.append(
            f"  faces() per synthetic proxy, upsample {up}: {1000 * sum(per) / len(per):.0f} ms mean "
            f"(detection + {faces / len(per):.1f} embeddings; informational, shared CPUs)"
        )
    out += ["", *table_detection(photos, factor)]
    best: dict[int, Policy | None] = {}
    for up in PASSES:
        out += ["", *table_matches(pairs[up], up)]
        lines, best[up] = table_policies(pairs[up], up)
        out += ["", *lines, "", *table_sizes(pairs[up], up), *small_against_small(photos, up)]
    out.append("")
    chosen = best.get(0)
    if chosen is None:
        out.append("RECOMMENDATION: none; no policy at upsample 0 was free of false matches")
    else:
        smallest = min((f.size for p in photos for f in p.faces[0]), default=0)
        note = (
            f" (any value up to {smallest} px, HOG's smallest box at upsample 0: every face it finds)"
            if chosen.min_face_px < smallest
            else ""
        )
        out.append(
            f"RECOMMENDATION by the rule of (c), for the box's upsample 0: threshold {chosen.threshold:.2f}, "
            f"min_face_px {chosen.min_face_px}{note}"
        )
    out.append(f"  load average at the start / end: {args.load_start} / {_load()}")
    print("\n".join(out))


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, 3 selfie variants (~1 min)")
    parser.add_argument("--reps", type=int, default=None, help="times each (photograph, size) is pasted")
    parser.add_argument("--empty", type=int, default=None, help="frames without faces")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--no-detail",
        dest="detail",
        action="store_false",
        help="cut every chip from the proxy (before 2026-12-06)",
    )
    parser.add_argument("--dlib", action="store_true", help="dlib's own embedder instead of onnxruntime")
    parser.add_argument(
        "--scan",
        choices=("regions", "full"),
        default="regions",
        help="where HOG looks in photos and selfies (faces.scan): default regions, as the box",
    )
    args = parser.parse_args(argv)

    if args.reps is None:
        args.reps = 1 if args.quick else 4
    if args.empty is None:
        args.empty = 1 if args.quick else 3
    if not synth.available():
        print(f"the shared face photos are missing: {synth.FACES_DIR}", file=sys.stderr)
        return 2
    args.load_start = _load()
    photos, selfies, seconds = run(args)
    report(photos, selfies, seconds, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
