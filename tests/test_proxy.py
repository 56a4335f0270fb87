"""The searchable proxy: orientation applied, long edge capped, under 5 MB, bytes kept."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from appliance.guest.thumbs import make_thumbnail
from appliance.ingest.previews import find_preview
from appliance.proxy import ProxyError, decode, make_proxy, make_proxy_image, thumbnail_size
from appliance.rawpreview import raw_picture
from tests import camerafiles as cf
from tests.conftest import FACES, jpeg_bytes


@pytest.mark.skipif(not FACES.exists(), reason="../shared/faces is not present")
def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = make_proxy(FACES / "curie-couple.jpg", tmp_path / "a.jpg", long_edge=512)
    rotated = make_proxy(FACES / "curie-couple-exif-orientation-6.jpg", tmp_path / "b.jpg", long_edge=512)
    assert (rotated.width, rotated.height) == (upright.width, upright.height)
    assert max(upright.width, upright.height) == 512


def test_long_edge_size_limit_and_recorded_hash(tmp_path: Path) -> None:
    source = tmp_path / "big.jpg"
    source.write_bytes(jpeg_bytes(4000, 2600, seed=3, quality=95))
    proxy = make_proxy(source, tmp_path / "p" / "big.jpg")
    assert (proxy.width, proxy.height) == (2048, 1331)
    assert proxy.size < 5 * 1024 * 1024
    data = proxy.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == proxy.sha256 and len(data) == proxy.size
    with Image.open(proxy.path) as image:
        assert image.format == "JPEG"


def test_small_images_are_not_enlarged_and_non_images_refused(tmp_path: Path) -> None:
    source = tmp_path / "small.jpg"
    source.write_bytes(jpeg_bytes(640, 480, seed=4))
    assert make_proxy(source, tmp_path / "s.jpg").width == 640
    junk = tmp_path / "sidecar.xmp"
    junk.write_bytes(b"<x:xmpmeta/>")
    with pytest.raises(ProxyError):
        make_proxy(junk, tmp_path / "j.jpg")


# --- every format ----------------------------------------------------------------------------

UPRIGHT = (200, 300)  # the test picture: portrait, red top half, blue bottom half


def upright() -> Image.Image:
    picture = Image.new("RGB", UPRIGHT, (220, 30, 30))
    picture.paste((30, 30, 220), (0, UPRIGHT[1] // 2, UPRIGHT[0], UPRIGHT[1]))
    return picture


def encoded(picture: Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return out.getvalue()


def stored_as(orientation: int) -> bytes:
    """The JPEG a body stores for a frame that ``orientation`` turns upright."""
    turn = {1: 0, 6: 90, 8: 270, 3: 180}[orientation]
    return encoded(upright().rotate(turn, expand=True), quality=95)


def assert_upright(proxy_path: Path, size: tuple[int, int] = UPRIGHT) -> None:
    with Image.open(proxy_path) as image:
        assert image.format == "JPEG" and image.size == size
        rgb = image.convert("RGB")
        top, bottom = (
            rgb.getpixel((size[0] // 2, size[1] // 8)),
            rgb.getpixel((size[0] // 2, size[1] * 7 // 8)),
        )
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0], (top, bottom)


def raf_with_exif_orientation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return cf.raf(encoded(upright().rotate(90, expand=True), quality=95, exif=exif.tobytes()))


RAWS: dict[str, Callable[[], bytes]] = {
    "DSC_0001.NEF": lambda: cf.nef(stored_as(6), orientation=6),
    "DSC00001.ARW": lambda: cf.arw(stored_as(1), cf.jpeg_of_image(upright(), 60)),
    "L1000001.DNG": lambda: cf.dng(stored_as(3), orientation=3),
    "IMG_0001.CR3": lambda: cf.cr3(
        stored_as(8), cf.jpeg_of_image(upright().rotate(270, expand=True), 60), orientation=8
    ),
    "P1000001.RW2": lambda: cf.rw2(stored_as(6), orientation=6),
    "P1010001.ORF": lambda: cf.orf(stored_as(8), orientation=8),
    "DSCF0001.RAF": raf_with_exif_orientation,
}


@pytest.mark.parametrize("name", list(RAWS))
def test_raw_proxy_is_its_largest_preview_upright_and_deterministic(tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    source.write_bytes(RAWS[name]())
    first = make_proxy(source, tmp_path / "a.jpg", long_edge=2048)
    assert_upright(first.path)
    # the face worker's way, keeping the decoded picture: the same bytes as the sync's way
    again, pixels, decoded = make_proxy_image(source, tmp_path / "b.jpg", long_edge=2048, keep_decoded=True)
    assert again.path.read_bytes() == first.path.read_bytes() and again.sha256 == first.sha256
    assert pixels.size == UPRIGHT and pixels.mode == "RGB"
    assert decoded is not None and decoded.upright().size == UPRIGHT  # with the RAW's orientation
    assert decode(source, 2048).upright().tobytes() == decoded.upright().tobytes()
    make_thumbnail(source, tmp_path / "thumb.jpg", edge=150)
    assert_upright(tmp_path / "thumb.jpg", (100, 150))


def test_dng_sensor_data_as_lossless_jpeg_is_never_the_preview(tmp_path: Path) -> None:
    source = tmp_path / "L1000002.DNG"
    source.write_bytes(cf.dng(stored_as(1)))
    preview = find_preview(source)
    assert preview is not None and (preview.width, preview.height) == UPRIGHT  # not the 6000x4000 SOF3


def test_libraw_answers_where_it_knows_the_body_and_the_structure_agrees(tmp_path: Path) -> None:
    pytest.importorskip("rawpy")
    source = tmp_path / "DSC00002.ARW"
    source.write_bytes(cf.arw(stored_as(6), cf.jpeg_of_image(upright(), 60), orientation=6))
    picture = raw_picture(source)
    assert picture is not None and picture.source == "libraw" and picture.orientation == 6
    preview = find_preview(source)
    assert preview is not None and preview.orientation == 6
    assert (preview.width, preview.height) == picture.image.size == (UPRIGHT[1], UPRIGHT[0])
    # a body libraw does not know (a CR3 here: no sensor data it can read): the structure answers
    cr3 = tmp_path / "IMG_0002.CR3"
    cr3.write_bytes(cf.cr3(stored_as(1), cf.jpeg_of_image(upright(), 60)))
    fallback = raw_picture(cr3)
    assert fallback is not None and fallback.source == "structure" and fallback.image.size == UPRIGHT


def test_cr3_full_size_jpeg_of_track_1_is_larger_than_prvw(tmp_path: Path) -> None:
    full = encoded(upright().resize((400, 600)), quality=90)
    source = tmp_path / "IMG_0003.CR3"
    source.write_bytes(cf.cr3(stored_as(1), cf.jpeg_of_image(upright(), 60), full=full))
    preview = find_preview(source)
    assert preview is not None and (preview.width, preview.height) == (400, 600)
    assert source.read_bytes()[preview.offset : preview.offset + preview.length] == full
    assert_upright(make_proxy(source, tmp_path / "p.jpg").path, (400, 600))


def test_raw_without_preview_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    source = tmp_path / "blind.nef"
    source.write_bytes(cf.nef(None))
    with pytest.raises(ProxyError, match=r"^no preview: blind\.nef holds no embedded JPEG preview$"):
        make_proxy(source, tmp_path / "p.jpg")
    assert not (tmp_path / "p.jpg").exists()


def heif_bytes(picture: Image.Image) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(picture).save(out, format="HEIF", quality=95)
    return out.getvalue()


@pytest.mark.parametrize(
    "name", ["IMG_0001.HIF", "export.avif", "export.png", "export.webp", "scan.tif", "rgba.png"]
)
def test_heif_png_webp_and_tiff_are_proxied_like_jpeg(tmp_path: Path, name: str) -> None:
    data = {
        "IMG_0001.HIF": lambda: heif_bytes(upright()),
        "export.avif": lambda: encoded(upright(), "AVIF", quality=90),
        "export.png": lambda: encoded(upright(), "PNG"),
        "export.webp": lambda: encoded(upright(), "WEBP", lossless=True),
        "scan.tif": lambda: encoded(upright().rotate(90, expand=True), "TIFF", tiffinfo={0x0112: 6}),
        "rgba.png": lambda: encoded(upright().convert("RGBA"), "PNG"),
    }[name]()
    source = tmp_path / name
    source.write_bytes(data)
    proxy = make_proxy(source, tmp_path / "p.jpg")
    assert_upright(proxy.path)
    assert make_proxy(source, tmp_path / "q.jpg").sha256 == proxy.sha256


@pytest.mark.parametrize(
    ("name", "content"),
    [("C0001.MP4", cf.mp4()), ("memo.WAV", b"RIFF\x24\0\0\0WAVEfmt " + bytes(28)), ("DSC_1.XMP", b"<x/>")],
)
def test_video_and_sidecars_have_no_proxy(tmp_path: Path, name: str, content: bytes) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    with pytest.raises(ProxyError, match="is not a photo"):
        make_proxy(source, tmp_path / "p.jpg")


def test_a_jpeg_proxy_is_the_same_whoever_makes_it_and_its_decode_is_upright(tmp_path: Path) -> None:
    """The face worker keeps the decoded picture to cut small faces from; the sync does not.
    Both must write the same bytes (the proxy's SHA-256 is its identity in the cloud), and the
    decoded picture must be turned as the proxy is."""
    source = FACES / "curie-couple-exif-orientation-6.jpg"
    plain = make_proxy(source, tmp_path / "a.jpg", long_edge=512)
    kept, pixels, decoded = make_proxy_image(source, tmp_path / "b.jpg", long_edge=512, keep_decoded=True)
    assert kept.sha256 == plain.sha256 and pixels.size == (kept.width, kept.height)
    assert decoded is not None
    upright = decoded.upright()
    assert upright.width > kept.width  # the decoder's scale, larger than the proxy
    assert abs(upright.width / upright.height - kept.width / kept.height) < 0.01  # turned as the proxy
    shrunk = upright.resize(pixels.size, Image.Resampling.BILINEAR)
    gap = np.abs(np.asarray(shrunk, np.int16) - np.asarray(pixels, np.int16)).mean()
    assert gap < 4, f"the decoded picture is not the proxy's picture (mean gap {gap:.1f})"


def _noise(path: Path, width: int, height: int) -> Path:
    """A picture of pure noise: JPEG compresses it least, so its proxy is the largest."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=100)
    return path


def test_a_proxy_over_5_mb_is_encoded_again_at_a_lower_quality(tmp_path: Path) -> None:
    """The proxy is encoded straight into its file (Pillow then frees the GIL); a picture too
    busy for 5 MB at quality 85 is encoded again into the same file at 75, 65, 50."""
    source = _noise(tmp_path / "noise.jpg", 4096, 3072)
    dest = tmp_path / "proxies" / "noise.jpg"
    proxy = make_proxy(source, dest, long_edge=4096)
    data = dest.read_bytes()
    assert len(data) == proxy.size <= 5 * 1024 * 1024
    assert proxy.sha256 == hashlib.sha256(data).hexdigest()
    at_85 = io.BytesIO()
    Image.new("RGB", (16, 16)).save(at_85, "JPEG", quality=85)
    with Image.open(dest) as written, Image.open(at_85) as reference:
        assert written.size == (4096, 3072)
        assert written.quantization != reference.quantization  # a lower quality than 85
    assert make_proxy(source, tmp_path / "again.jpg", long_edge=4096).sha256 == proxy.sha256
    assert [p.name for p in dest.parent.iterdir()] == ["noise.jpg"]  # no temporary file left


def test_a_proxy_that_stays_over_5_mb_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    source = _noise(tmp_path / "noise.jpg", 4096, 4096)
    dest = tmp_path / "proxies" / "noise.jpg"
    with pytest.raises(ProxyError, match="stays over 5 MB"):
        make_proxy(source, dest, long_edge=4096)
    assert list(dest.parent.iterdir()) == []


def test_the_proxy_size_is_the_one_thumbnail_gives() -> None:
    """The face worker shrinks into a new picture (keeping the decode without a copy) to the
    size Pillow's thumbnail() gives, so its proxy is the sync's, byte for byte."""
    rng = np.random.default_rng(3)
    sizes = [(6000, 4000), (4000, 6000), (3000, 2000), (2049, 1), (1, 2049), (2048, 2048), (5, 3000)]
    sizes += [(int(w), int(h)) for w, h in rng.integers(1, 7000, (60, 2))]
    for size in sizes:
        for edge in (2048, 333):
            image = Image.new("1", size)
            image.thumbnail((edge, edge))
            expected = None if image.size == size else image.size
            assert thumbnail_size(size, edge) == expected, (size, edge)
