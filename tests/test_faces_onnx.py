"""dlib's face-recognition ResNet run by onnxruntime: the same embedding as dlib's own
``compute_face_descriptor`` on every face of the public-domain photos in ../shared/faces, the
converted model cached by the ``.dat``'s SHA-256, and damaged ``.dat`` files refused plainly.

Detection uses upsample 1 so the small Solvay faces count too (38 faces; dlib's descriptor costs
~100 ms each). The model is converted once per module into a temporary cache directory.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image, ImageOps

from appliance.faces.dlibnet import DlibModelError, ensure_model
from appliance.faces.engine import FaceModel, load_rgb, models_dir
from appliance.faces.netspec import sha256_of
from appliance.faces.onnxembed import EmbedderError, OnnxEmbedder, chips

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
DAT = models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
TOLERANCE = 1e-5  # max element difference from dlib's descriptor (measured ~3e-7)

needs_photos = pytest.mark.skipif(
    not FACES.is_dir(),
    reason=f"the public-domain face photos are not at {FACES} (see shared/faces/README.md)",
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_model(DAT, tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="module", params=[False, True], ids=["selfie-session", "indexing-session"])
def embedder(model_path: Path, request: pytest.FixtureRequest) -> OnnxEmbedder:
    """Both sessions the box runs: basic graph optimisation (selfies) and full (indexing)."""
    return OnnxEmbedder(model_path, fast=request.param)


def photos() -> list[Path]:
    return sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@dataclass(frozen=True)
class Reference:
    photo: str
    image: np.ndarray
    shapes: list[dlib.full_object_detection]
    descriptors: np.ndarray  # dlib's own, one row per shape


@pytest.fixture(scope="module")
def dlib_reference() -> list[Reference]:
    """dlib's own descriptor of every face in shared/faces (computed once for both sessions:
    dlib-bin's embedder costs ~100 ms a face)."""
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(str(models_dir() / "shape_predictor_5_face_landmarks.dat"))
    recogniser = dlib.face_recognition_model_v1(str(DAT))
    found = []
    for photo in photos():
        with Image.open(photo) as opened:
            image = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        shapes = [landmarks(image, rect) for rect in detector(image, 1)]
        theirs = [np.asarray(recogniser.compute_face_descriptor(image, shape, 0)) for shape in shapes]
        found.append(Reference(photo.name, image, shapes, np.array(theirs).reshape(len(shapes), 128)))
    return found


@needs_photos
def test_same_embedding_as_dlib_on_every_face(
    embedder: OnnxEmbedder, dlib_reference: list[Reference]
) -> None:
    worst: dict[str, float] = {}
    faceless = []
    for ref in dlib_reference:
        if not ref.shapes:
            faceless.append(ref.photo)
            continue
        ours = embedder.embed(chips(ref.image, ref.shapes))
        assert ours.shape == (len(ref.shapes), 128)
        assert ours.dtype == np.float32
        for embedding, theirs in zip(ours, ref.descriptors, strict=True):
            difference = float(np.abs(embedding - theirs).max())
            assert difference <= TOLERANCE, f"{ref.photo}: differs from dlib by {difference}"
            worst[ref.photo] = max(worst.get(ref.photo, 0.0), difference)
        one_by_one = np.concatenate([embedder.embed(chip[None]) for chip in chips(ref.image, ref.shapes)])
        np.testing.assert_allclose(one_by_one, ours, rtol=0, atol=1e-6)
    assert not faceless, f"no face found in {faceless}"
    assert worst


@needs_photos
def test_the_engine_finds_the_same_faces_and_embeddings_with_either_embedder(model_path: Path) -> None:
    """The box's FaceModel on onnxruntime against the same model on dlib's own embedder: the same
    boxes, the same searchable faces, embeddings within the tolerance, the photo's faces in one batch."""
    on_onnx = FaceModel(onnx_model=model_path, upsample=1, min_face_px=20)
    on_dlib = FaceModel(upsample=1, min_face_px=20)
    compared = 0
    for photo in photos():
        with Image.open(photo) as opened:
            image = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        ours, theirs = on_onnx.faces(image), on_dlib.faces(image)
        assert [(f.left, f.top, f.width, f.height, f.searchable) for f in ours] == [
            (f.left, f.top, f.width, f.height, f.searchable) for f in theirs
        ], photo.name
        for a, b in zip(ours, theirs, strict=True):
            if a.embedding is not None and b.embedding is not None:
                assert float(np.abs(a.embedding - b.embedding).max()) <= TOLERANCE, photo.name
                compared += 1
        face, count = on_onnx.largest(image)
        expected, expected_count = on_dlib.largest(image)
        assert count == expected_count
        if face is not None and face.embedding is not None:
            assert expected is not None and expected.embedding is not None
            assert float(np.abs(face.embedding - expected.embedding).max()) <= TOLERANCE
    assert compared >= 30, compared


def test_model_is_cached_under_the_dat_hash(model_path: Path) -> None:
    digest = sha256_of(DAT)
    assert digest in model_path.name
    before = model_path.stat()
    listing = sorted(model_path.parent.iterdir())
    again = ensure_model(DAT, model_path.parent)
    after = again.stat()
    assert again == model_path
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert sorted(model_path.parent.iterdir()) == listing  # no temporary file left behind


def test_another_dat_gets_its_own_model(tmp_path: Path, model_path: Path) -> None:
    data = bytearray(DAT.read_bytes())
    data[len(data) // 2] ^= 0x01  # the low bit of one weight: still a valid network
    other = tmp_path / DAT.name
    other.write_bytes(bytes(data))
    converted = ensure_model(other, tmp_path / "cache")
    assert converted.name != model_path.name
    assert sha256_of(other) in converted.name
    assert [p.name for p in converted.parent.iterdir()] == [converted.name]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("empty", "ends inside"),
        ("truncated", "ends inside"),
        ("garbage", "not dlib's face-recognition network"),
        ("trailing", "bytes after the end of the network"),
    ],
)
def test_damaged_dat_is_refused_plainly(tmp_path: Path, damage: str, message: str) -> None:
    data = DAT.read_bytes()
    broken = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "garbage": b"\x01\x01\x01\x0dloss_metric_3" + data[17:],
        "trailing": data + b"\x00",
    }[damage]
    bad = tmp_path / "bad.dat"
    bad.write_bytes(broken)
    cache = tmp_path / "cache"
    with pytest.raises(DlibModelError, match=message) as caught:
        ensure_model(bad, cache)
    assert isinstance(caught.value, ValueError)
    assert not cache.exists() or not list(cache.iterdir())  # nothing half-written


def test_embed_refuses_wrong_input(embedder: OnnxEmbedder, tmp_path: Path) -> None:
    assert embedder.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(np.zeros((1, 150, 150, 3), np.float32))
    with pytest.raises(ValueError, match="150"):
        embedder.embed(np.zeros((1, 100, 100, 3), np.uint8))
    not_a_model = tmp_path / "x.onnx"
    not_a_model.write_bytes(b"not a model")
    with pytest.raises(EmbedderError, match="cannot load"):
        OnnxEmbedder(not_a_model)


def test_one_model_shared_by_threads_gives_each_photo_its_own_faces(model_path: Path) -> None:
    """The indexing process runs several photos at once on one FaceModel. dlib's HOG detector
    keeps its scan state inside itself: shared between threads, it handed one photo's boxes to
    another (found by the kill -9 test as a selfie missing its match)."""
    model = FaceModel(onnx_model=model_path)
    images = [load_rgb(p) for p in photos() if p.suffix.lower() == ".jpg"][:6]
    alone = [model.faces(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            together = list(pool.map(model.faces, images * 2))
            for want, got in zip(alone * 2, together, strict=True):
                assert [(f.left, f.top, f.width, f.height) for f in got] == [
                    (f.left, f.top, f.width, f.height) for f in want
                ]
                for a, b in zip(want, got, strict=True):
                    assert (a.embedding is None) == (b.embedding is None)
                    if a.embedding is not None and b.embedding is not None:
                        assert np.abs(a.embedding - b.embedding).max() < 1e-5
