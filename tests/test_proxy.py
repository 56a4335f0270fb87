"""The searchable proxy: orientation applied, long edge capped, under 5 MB, bytes kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from appliance.proxy import ProxyError, make_proxy
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
