"""The local face engine on real photographs, without mocks: who matches whom, EXIF orientation,
faces too small to search, a synthetic event photo with known faces, and the uploads
``decode_selfie`` refuses.

The photographs are the public-domain ones in ../shared/faces (see its README); tests that need
them skip when the folder is absent. The synthetic photo comes from ``bench/_synthetic.py``,
loaded by path. One ``FaceModel`` (the box's defaults: min_face_px 80, upsample 0) serves the
whole module.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from appliance.faces.engine import Face, FaceModel, ImageRejected, decode_selfie, load_rgb
from appliance.proxy import make_proxy, make_proxy_image
from tests.conftest import bench_synthetic

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
SAME_PERSON = 0.5  # the same person lies below this ...
OTHER_PERSON = 0.6  # ... and a different one above this

needs_photos = pytest.mark.skipif(
    not FACES.is_dir(),
    reason=f"the public-domain face photos are not at {FACES} (see shared/faces/README.md)",
)


def distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    assert a is not None
    assert b is not None
    return float(np.linalg.norm(a - b))


def box(face: Face) -> tuple[int, int, int, int]:
    return (face.left, face.top, face.width, face.height)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Proxies of the real photos, made as the box makes them (oriented, long edge <= 2048)."""
    if not FACES.is_dir():
        pytest.skip(f"the public-domain face photos are not at {FACES}")
    folder = tmp_path_factory.mktemp("proxies")
    return {p.name: make_proxy(p, folder / f"{p.stem}.jpg").path for p in sorted(FACES.glob("*.*g"))}


@pytest.fixture(scope="module")
def indexed(model: FaceModel, proxies: dict[str, Path]) -> dict[str, list[Face]]:
    return {name: model.faces(load_rgb(path)) for name, path in proxies.items()}


@pytest.fixture(scope="module")
def obama_selfie(model: FaceModel) -> np.ndarray:
    """The guest's selfie: obama-2, through the same path as an upload."""
    if not FACES.is_dir():
        pytest.skip(f"the public-domain face photos are not at {FACES}")
    image, _ = decode_selfie((FACES / "obama-2.jpg").read_bytes())
    face, count = model.largest(image)
    assert face is not None
    assert count == 1
    assert face.embedding is not None
    return face.embedding


@pytest.fixture(scope="module")
def synth() -> ModuleType:
    """bench/_synthetic.py (the bench folder is not a package)."""
    return bench_synthetic()


# --------------------------------------------------------------------------------------------
# Matching real photographs


@needs_photos
@pytest.mark.parametrize("photo", ["obama-1.jpg", "obama-3.jpg", "obama-partial-1.jpg"])
def test_the_same_person_on_other_photos_matches(
    indexed: dict[str, list[Face]], obama_selfie: np.ndarray, photo: str
) -> None:
    faces = indexed[photo]
    assert len(faces) == 1
    assert faces[0].searchable
    assert distance(obama_selfie, faces[0].embedding) < SAME_PERSON


@needs_photos
@pytest.mark.parametrize(
    "photo", ["biden-1.jpg", "hopper-1.jpg", "collins-astronaut.png", "curie-couple.jpg"]
)
def test_other_people_do_not_match(
    indexed: dict[str, list[Face]], obama_selfie: np.ndarray, photo: str
) -> None:
    searchable = [f for f in indexed[photo] if f.searchable]
    assert searchable, f"no searchable face in {photo}"
    for face in searchable:  # collins-astronaut also has a mission patch that HOG takes for a face
        assert distance(obama_selfie, face.embedding) > OTHER_PERSON


@needs_photos
def test_a_truncated_face_at_the_edge_is_clipped_to_the_picture(indexed: dict[str, list[Face]]) -> None:
    (face,) = indexed["obama-partial-1.jpg"]  # the face runs off the left edge
    assert face.left == 0
    assert face.width < face.height


# --------------------------------------------------------------------------------------------
# Orientation


@needs_photos
def test_exif_orientation_is_applied_before_detection(
    indexed: dict[str, list[Face]], proxies: dict[str, Path]
) -> None:
    upright = indexed["curie-couple.jpg"]
    rotated = indexed["curie-couple-exif-orientation-6.jpg"]
    with Image.open(proxies["curie-couple-exif-orientation-6.jpg"]) as proxy:
        assert proxy.size == (840, 700)  # stored as 700x840, Orientation=6
        assert proxy.getexif().get(0x0112, 1) == 1
    assert len(rotated) == len(upright) >= 1
    for a, b in zip(upright, rotated, strict=True):
        assert np.allclose(box(a), box(b), atol=2), (box(a), box(b))
        assert a.searchable == b.searchable
        if a.searchable:
            assert distance(a.embedding, b.embedding) < 0.06  # two re-encodings apart, no more


# --------------------------------------------------------------------------------------------
# Faces too small to search


@needs_photos
def test_tiny_faces_are_never_searchable(model: FaceModel, proxies: dict[str, Path]) -> None:
    image = load_rgb(proxies["solvay-1927-group.jpg"])  # 29 faces of about 37 px
    assert not [f for f in model.faces(image) if f.searchable]
    # Upsampled, HOG does find them: they are detected, but kept without an embedding.
    found = FaceModel(min_face_px=80, upsample=1).faces(image)
    assert len(found) >= 25
    assert all(not f.searchable and f.embedding is None and f.size < 80 for f in found)


# --------------------------------------------------------------------------------------------
# A synthetic event photo with known faces


@needs_photos
@pytest.mark.slow
def test_a_synthetic_event_photo_finds_the_pasted_people(
    synth: ModuleType, model: FaceModel, obama_selfie: np.ndarray, tmp_path: Path
) -> None:
    # Face widths in the 6000 px frame; the proxy is 2048 px (x0.341): 51, 102, 154, 239 px.
    pasted = [("obama-3", 450), ("biden-1", 300), ("hopper-1", 700), ("curie-couple", 300), ("obama-1", 150)]
    frame = synth.compose(7, pasted)
    original = tmp_path / "frame.jpg"
    original.write_bytes(synth.encode(frame))
    proxy, _pixels, decoded = make_proxy_image(original, tmp_path / "proxy.jpg", keep_decoded=True)
    assert decoded is not None and decoded.image.width == 3000  # the decoder's 1/2 scale
    factor = proxy.width / frame.image.width
    # as the face worker does: small faces cut from the original as decoded for the proxy
    faces = model.faces(load_rgb(proxy.path), decoded.upright)

    for truth in frame.faces:
        here = [f for f in faces if synth.iou(box(f), truth.scaled(factor)) >= 0.4]
        if truth.width < 200 and not here:  # 51 px in the proxy: HOG at upsample 0 finds few
            continue
        assert len(here) == 1, f"{truth.picture} not found at {truth.scaled(factor)}: {faces}"
        (face,) = here
        assert face.searchable
        gap = distance(obama_selfie, face.embedding)
        if truth.identity == "obama":
            assert gap < SAME_PERSON
        else:
            assert gap > OTHER_PERSON, truth.identity
    matched = [f for f in faces if any(synth.iou(box(f), t.scaled(factor)) >= 0.4 for t in frame.faces)]
    assert matched == faces, "a face was found where nobody was pasted"


@needs_photos
def test_largest_picks_the_largest_of_several_faces(synth: ModuleType, model: FaceModel) -> None:
    frame = synth.compose(11, [("biden-1", 110), ("hopper-1", 240), ("obama-1", 160)], size=(1600, 1000))
    image = np.asarray(frame.image)
    face, count = model.largest(image)
    assert count == 3
    assert face is not None
    hopper = next(t for t in frame.faces if t.identity == "hopper")
    assert synth.iou(box(face), hopper.box) >= 0.5
    assert face.searchable
    every = model.faces(image)
    assert np.allclose(box(every[0]), box(face), atol=1)  # faces() measures boxes 1 px narrower
    assert distance(every[0].embedding, face.embedding) < 1e-6


# --------------------------------------------------------------------------------------------
# Uploads decode_selfie refuses or accepts


def jpeg(width: int = 800, height: int = 600, *, orientation: int | None = None) -> bytes:
    image = Image.effect_noise((width, height), 40).convert("RGB")
    out = io.BytesIO()
    if orientation is None:
        image.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and carries almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def rejection(data: bytes) -> str:
    with pytest.raises(ImageRejected) as caught:
        decode_selfie(data)
    return caught.value.code


def test_random_bytes_are_not_an_image() -> None:
    assert rejection(random.Random(0).randbytes(8192)) == "not_an_image"


@pytest.mark.parametrize("keep", [0.5, 0.9, 300])
def test_a_truncated_jpeg_is_not_an_image(keep: float) -> None:
    data = jpeg()
    cut = int(len(data) * keep) if keep < 1 else int(keep)
    assert rejection(data[:cut]) == "not_an_image"


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (30_000, 30_000),  # Pillow's own bomb limit (2 x 89 MP) trips first
        (8_000, 8_000),  # 64 MP: over the engine's 50 MP, under Pillow's warning
        (25_000, 100),  # a small area, but a side over 20,000 px
    ],
)
def test_a_picture_declaring_too_many_pixels_is_too_large(width: int, height: int) -> None:
    assert rejection(png_header_only(width, height)) == "too_large"


CAPPED_DECODE = """
import re, resource, sys
from PIL import Image
from appliance.faces.engine import ImageRejected, decode_selfie
status = open("/proc/self/status").read()
used = int(re.search(r"VmSize:\\s+(\\d+) kB", status).group(1)) * 1024
cap = used + (1 << 30)  # 1 GiB more; the declared picture would need 2.7 GB or more
resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    Image.new("RGB", (30000, 30000))
    print("control: allocated")
except MemoryError:
    print("control: MemoryError")
try:
    decode_selfie(sys.stdin.buffer.read())
    print("decoded")
except ImageRejected as exc:
    print("rejected:", exc.code)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the memory cap")
def test_a_decompression_bomb_is_refused_without_allocating_it() -> None:
    """In a child process whose address space is capped 1 GiB above what it uses: allocating
    the declared 30000x30000 picture fails there (the control), refusing it does not."""
    result = subprocess.run(
        [sys.executable, "-c", CAPPED_DECODE],
        input=png_header_only(30_000, 30_000),
        capture_output=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "control: MemoryError" in out
    assert "rejected: too_large" in out


def test_exif_orientation_is_applied_to_a_selfie() -> None:
    image, data = decode_selfie(jpeg(640, 480, orientation=6))
    assert image.shape == (640, 480, 3)  # turned upright: portrait
    with Image.open(io.BytesIO(data)) as normalised:
        assert normalised.format == "JPEG"
        assert normalised.size == (480, 640)
        assert normalised.getexif().get(0x0112, 1) == 1


def test_a_large_selfie_is_shrunk_to_the_selfie_size() -> None:
    image, _ = decode_selfie(jpeg(4000, 3000))
    assert max(image.shape[:2]) == 1280


@needs_photos
def test_a_rotated_selfie_finds_the_same_face_as_the_upright_one(model: FaceModel) -> None:
    rotated, _ = decode_selfie((FACES / "curie-couple-exif-orientation-6.jpg").read_bytes())
    upright, _ = decode_selfie((FACES / "curie-couple.jpg").read_bytes())
    assert rotated.shape == upright.shape == (700, 840, 3)
    a, count_a = model.largest(rotated)
    b, count_b = model.largest(upright)
    assert a is not None
    assert b is not None
    assert count_a == count_b
    assert np.allclose(box(a), box(b), atol=2)
    assert distance(a.embedding, b.embedding) < 0.06
