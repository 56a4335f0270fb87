"""HOG scanned only around proposed faces (``appliance/faces/regions.py``) gives dlib's own boxes
and scores: scanned in overlapping tiles, every detection equals the full scan's; scanned around
CenterFace's proposals, every face of 60 px or more the full scan finds in ``shared/faces`` and
in synthetic event frames is found with the very same box and score, and nothing else is.
A dlib upgrade that changes the detector's serialised layout or its pyramid fails here.
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image

from appliance.faces.engine import FaceModel, decode_selfie, load_rgb
from appliance.faces.regions import (
    Proposer,
    RegionHog,
    RegionsUnavailable,
    ensure_proposer,
    parts_for,
    read_detector,
)
from appliance.proxy import make_proxy_image
from tests.conftest import FACES, bench_synthetic

MIN_FACE_PX = 60  # the box's faces.min_face_px: smaller boxes are never searched

needs_photos = pytest.mark.skipif(
    not FACES.is_dir(),
    reason=f"the public-domain face photos are not at {FACES} (see shared/faces/README.md)",
)

Key = tuple[int, int, int, int, float]


def keyed(detections: list[tuple[dlib.rectangle, float]]) -> set[Key]:
    return {(r.left(), r.top(), r.right(), r.bottom(), round(s, 6)) for r, s in detections}


def full_scan(image: np.ndarray) -> set[Key]:
    rects, scores, _ = dlib.get_frontal_face_detector().run(image, 0, 0.0)
    return keyed(list(zip(rects, scores, strict=True)))


@pytest.fixture(scope="module")
def scanner() -> RegionHog:
    return RegionHog()


@pytest.fixture(scope="module")
def proposer(tmp_path_factory: pytest.TempPathFactory) -> Proposer:
    return Proposer(ensure_proposer(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Every photo of shared/faces and two synthetic 24 MP event frames (9 faces, 51-154 px),
    as the face worker detects in them: the 2048 px proxy's pixels."""
    folder = tmp_path_factory.mktemp("proxies")
    sources = sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    synth = bench_synthetic()
    for seed in (3, 11):
        frame = synth.compose(
            seed, [(name, width) for name in ("obama-3", "biden-1", "hopper-1") for width in (150, 300, 450)]
        )
        path = folder / f"frame-{seed}.jpg"
        path.write_bytes(synth.encode(frame))
        sources.append(path)
    out = {}
    for source in sources:
        _, pixels, _ = make_proxy_image(source, folder / f"{source.stem}-proxy.jpg")
        out[source.name] = np.asarray(pixels)
    return out


@needs_photos
def test_tiles_give_exactly_the_full_scan(scanner: RegionHog, pictures: dict[str, np.ndarray]) -> None:
    """Each level cut in four overlapping tiles: every box and score (weak ones included, down
    to the detector's threshold) is the full scan's, none more, none fewer."""

    def tiles(_level: int, height: int, width: int) -> list[tuple[int, int, int, int]]:
        x, y, o = width // 2, height // 2, 100
        return [
            (0, 0, x + o, y + o),
            (x - o, 0, width, y + o),
            (0, y - o, x + o, height),
            (x - o, y - o, width, height),
        ]

    total = 0
    for name, image in pictures.items():
        expected = full_scan(image)
        assert keyed(scanner.detect(image, tiles)) == expected, name
        total += len(expected)
    assert total >= 20  # the comparison covered real detections


@needs_photos
def test_proposals_find_every_face_with_the_full_scans_box(
    scanner: RegionHog, proposer: Proposer, pictures: dict[str, np.ndarray]
) -> None:
    faces = 0
    for name, image in pictures.items():
        expected = full_scan(image)
        found = keyed(scanner.detect(image, parts_for(proposer.propose(image), scanner.config.window[0])))
        searchable = {k for k in expected if min(k[2] - k[0], k[3] - k[1]) + 1 >= MIN_FACE_PX}
        assert searchable <= found, f"{name}: not found {searchable - found}"
        assert found <= expected, f"{name}: boxes the full scan does not give {found - expected}"
        faces += len(searchable)
    assert faces >= 20


@needs_photos
def test_the_indexer_finds_what_the_full_scan_finds(tmp_path: Path, pictures: dict[str, np.ndarray]) -> None:
    """FaceModel with the proposal model (the indexing process's) against without (a full scan):
    the same searchable faces, boxes and embeddings, in the same order."""
    proposer = ensure_proposer(tmp_path)
    regions, full = FaceModel(proposer=proposer), FaceModel()
    for name in ("frame-3.jpg", "obama-1.jpg", "curie-couple.jpg"):
        image = pictures[name]
        ours = [f for f in regions.faces(image) if f.searchable]
        theirs = [f for f in full.faces(image) if f.searchable]
        assert [(f.left, f.top, f.width, f.height) for f in ours] == [
            (f.left, f.top, f.width, f.height) for f in theirs
        ], name
        for a, b in zip(ours, theirs, strict=True):
            assert a.embedding is not None and b.embedding is not None
            assert np.array_equal(a.embedding, b.embedding)
        assert ours, name


@needs_photos
def test_a_selfie_gives_the_full_scans_face(tmp_path: Path) -> None:
    """Selfies are scanned around the proposals of a 320 px copy: for every photo of
    shared/faces read as a selfie, the same largest face, face count and embedding."""
    regions, full = FaceModel(proposer=ensure_proposer(tmp_path)), FaceModel()
    compared = 0
    for photo in sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".jpg", ".png")):
        image, _ = decode_selfie(photo.read_bytes())
        (ours, count), (theirs, expected) = regions.largest(image), full.largest(image)
        if theirs is None or not theirs.searchable:
            continue  # the group photo: no face as large as a selfie's
        assert ours is not None and (ours.left, ours.top, ours.width) == (
            theirs.left,
            theirs.top,
            theirs.width,
        )
        assert ours.embedding is not None and theirs.embedding is not None
        assert np.array_equal(ours.embedding, theirs.embedding), photo.name
        assert count <= expected, photo.name  # a false detection elsewhere may not be proposed
        compared += 1
    assert compared >= 8


def test_a_picture_without_faces_proposes_nothing(proposer: Proposer, scanner: RegionHog) -> None:
    grey = np.full((1365, 2048, 3), 128, dtype=np.uint8)
    assert proposer.propose(grey) == []
    assert scanner.detect(grey, parts_for([], scanner.config.window[0])) == []


def test_the_detector_layout_is_checked() -> None:
    data = dlib.get_frontal_face_detector().__getstate__()[0]
    config = read_detector(data)
    assert config.window == (80, 80) and 0 < config.iou < 1 and 0 < config.covered <= 1
    with pytest.raises(ValueError, match="layout"):
        read_detector(b"\x01\x03" + data[2:])  # another object_detector version


def test_a_missing_or_damaged_proposal_model_is_said_plainly(tmp_path: Path) -> None:
    damaged = tmp_path / "centerface.onnx"
    damaged.write_bytes(b"not a model")
    with pytest.raises(RegionsUnavailable, match="cannot be loaded"):
        Proposer(damaged)


@needs_photos
def test_the_proxy_on_disk_and_its_pixels_give_the_same_faces(tmp_path: Path) -> None:
    """The worker detects in the pixels it encoded, or in the proxy file when one exists; with
    proposals the boxes of both are the full scan's of each."""
    source = FACES / "obama-2.jpg"
    proxy, pixels, _ = make_proxy_image(source, tmp_path / "proxy.jpg")
    model = FaceModel(proposer=ensure_proposer(tmp_path))
    as_worker = model.faces(np.asarray(pixels), proposals=model.propose(pixels))  # index_photo's way
    assert [(f.left, f.top, f.width, f.height) for f in as_worker] == [
        (f.left, f.top, f.width, f.height) for f in model.faces(np.asarray(pixels))
    ]
    for image in (np.asarray(pixels), load_rgb(proxy.path)):
        faces = [f for f in model.faces(image) if f.searchable]
        assert len(faces) == 1
        found = {(f.left, f.top, f.left + f.width - 1, f.top + f.height - 1) for f in faces}
        assert found <= {k[:4] for k in full_scan(image)}
    with Image.open(proxy.path) as written:
        assert written.size == pixels.size


@needs_photos
def test_a_picture_proposes_what_its_array_proposes(proposer: Proposer) -> None:
    """The worker hands the proxy to the proposal model as the Pillow picture it encoded (no
    copy into an array and back): the same proposals as from its pixels as an array."""
    for name in ("solvay-1927-group.jpg", "obama-1.jpg"):
        with Image.open(FACES / name) as opened:
            picture = opened.convert("RGB")
        proposals = proposer.propose(picture)
        assert proposals, name
        assert proposals == proposer.propose(np.asarray(picture)), name
