"""Shared fixtures: real boxes on loopback, generated camera frames, and a leak check."""

from __future__ import annotations

import functools
import importlib.util
import io
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from PIL import Image

from tests.boxproc import BoxProcess, make_box
from tests.fakes.rekognition import FakeRekognition

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
SYNTHETIC = Path(__file__).resolve().parents[1] / "bench" / "_synthetic.py"
S3_BUCKET = "venue-photos"


@functools.cache
def bench_synthetic() -> ModuleType:
    """bench/_synthetic.py, the benchmarks' event frames with real faces pasted (the bench
    folder is not a package)."""
    spec = importlib.util.spec_from_file_location("shutterbox_bench_synthetic", SYNTHETIC)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BOX_FIXTURES = {"box", "fresh_box"}
STARTS_A_BOX = ("make_box(", "cloud_box(")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``box`` every test that may run a box process (its module starts one, or it asks for a
    box fixture): ``make test-fast`` leaves them out and keeps the in-process layer."""
    starts: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in starts:
            source = item.path.read_text(encoding="utf-8") if item.path.suffix == ".py" else ""
            starts[path] = any(call in source for call in STARTS_A_BOX)
        if starts[path] or BOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.box)
    # Longest first, each module's own order kept: `make test` hands whole modules to its
    # workers (--dist loadfile), and a two-minute soak taken last would leave one worker running
    # it alone at the end. Modules with a long (``slow``) test, then those that start a box
    # (seconds a test), then the in-process ones, which fill the workers' last minutes evenly.
    slow = {str(item.path) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (str(item.path) not in slow, not starts[str(item.path)]))


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's real S3 server on a free loopback port, with the test bucket made."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    s3_client(url).create_bucket(Bucket=S3_BUCKET)
    yield url
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return s3_client(s3_endpoint)


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    """One running box shared by a test module (tests use their own events and keys)."""
    running = make_box(tmp_path_factory.mktemp("box") / "data").start()
    yield running
    code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


@pytest.fixture
def fresh_box(tmp_path: Path) -> Iterator[BoxProcess]:
    """A box of the test's own (for tests that kill, restart or reconfigure it)."""
    running = make_box(tmp_path / "data")
    yield running
    running.stop()


def jpeg_bytes(
    width: int = 640, height: int = 480, *, seed: int = 0, exif: bool = False, quality: int = 85
) -> bytes:
    """A real, valid JPEG whose content depends on ``seed``."""
    image = Image.effect_noise((width, height), 40 + seed % 50).convert("RGB")
    image.putpixel((seed % width, 0), (seed % 256, (seed // 256) % 256, 7))
    out = io.BytesIO()
    if exif:
        data = Image.Exif()
        data[0x010F] = "Canon"
        data[0x0110] = "Canon EOS R5"
        data[0x0112] = 6
        ifd = data.get_ifd(0x8769)
        ifd[0x9003] = "2026:06:13 15:42:07"
        ifd[0xA431] = "012345678901"
        image.save(out, "JPEG", quality=quality, exif=data)
    else:
        image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def camera_jpeg(size: int, *, seed: int = 0) -> bytes:
    """A valid JPEG of exactly ``size`` bytes, as big as a camera's frame: a small noise image
    padded after SOI with comment segments of random bytes (incompressible, like scan data and
    the previews and maker notes a body embeds)."""
    body = jpeg_bytes(320, 240, seed=seed)
    room = size - len(body)
    if room < 4:
        raise ValueError(f"a {size}-byte JPEG is smaller than the image inside it ({len(body)} bytes)")
    rng = random.Random(seed)
    segments = []
    while room:
        payload = min(room - 4, 65533)
        if 0 < room - 4 - payload < 4:  # leave no remainder too small for a segment header
            payload -= 4
        segments.append(b"\xff\xfe" + (payload + 2).to_bytes(2, "big") + rng.randbytes(payload))
        room -= payload + 4
    return body[:2] + b"".join(segments) + body[2:]


@pytest.fixture
def rekognition(s3_endpoint: str) -> Iterator[FakeRekognition]:
    """The fake Rekognition, reading IndexFaces' S3Object images from moto as Rekognition reads
    S3. Whatever the test did, every request the box sent must fit botocore's service model."""
    with FakeRekognition(s3=s3_client(s3_endpoint)) as fake:
        yield fake
    assert fake.invalid_requests == [], fake.invalid_requests[:3]
    assert fake.crashes == []
