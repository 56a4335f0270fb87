"""What runs inside a face worker process. Started with the ``spawn`` method (the box has
threads, so ``fork`` is unsafe); the initializer loads the models once and lowers the process's
CPU priority, so FTP and the guest pages stay responsive while indexing catches up.

Everything crossing the process boundary is plain data: paths, bytes, tuples, NumPy arrays.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PIL import _imaging as pil_core  # Pillow's block cache (PILLOW_BLOCKS_MAX, set per process)

from appliance import process
from appliance.faces.engine import Face, FaceModel, ImageRejected, decode_selfie, load_rgb
from appliance.proxy import Decoded, Proxy, ProxyError, decode, make_proxy_image

_model: FaceModel | None = None
PILLOW_BLOCKS = 4


def init(
    min_face_px: int,
    upsample: int,
    nice: int,
    onnx_model: str | None = None,
    threads: int = 1,
    fast: bool = False,
    proposer: str | None = None,
) -> None:
    global _model
    if nice:
        os.nice(nice)
    process.release_memory_promptly()  # a 20 MB selfie's buffers go back when it is done
    # ... but Pillow keeps a few freed image blocks (up to 16 MB each) for the next photo: each
    # new block mapped and zeroed by the kernel cost ~20 ms of a 24 MP photo (docs/faces.md)
    pil_core.set_blocks_max(PILLOW_BLOCKS)
    model = Path(onnx_model) if onnx_model else None
    _model = FaceModel(
        min_face_px=min_face_px,
        upsample=upsample,
        onnx_model=model,
        threads=threads,
        fast=fast,
        proposer=Path(proposer) if proposer else None,
    )
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A box killed with SIGKILL cannot stop its workers, and they would run on under PID 1
    holding ~100 MB each (the soak found them piling up): leave as soon as the parent is gone."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _the_model() -> FaceModel:
    if _model is None:
        raise RuntimeError("face worker used before init()")
    return _model


@dataclass(frozen=True, slots=True)
class Indexed:
    proxy: Proxy | None  # set when this worker made the proxy
    faces: list[Face]
    error: str | None = None  # the photo cannot be decoded: recorded, never retried


def index_photo(source: str, proxy_path: str, long_edge: int, proxy_exists: bool) -> Indexed:
    """Find and embed every face of one photo, from its proxy (made here when missing, so the
    original is decoded once for both the proxy and the faces). Small faces are cut from the
    original as decoded for the proxy (1/2 scale for a 24 MP JPEG), which holds twice their
    pixels: kept from making the proxy, or decoded again only when such a face is found."""
    made = None
    dest = Path(proxy_path)
    decoded: Decoded | None = None
    proposals = None
    try:
        if not proxy_exists or not dest.exists():
            made, pixels, decoded = make_proxy_image(
                Path(source), dest, long_edge=long_edge, keep_decoded=True
            )
            image = np.asarray(pixels)
            proposals = _the_model().propose(pixels)
            del pixels  # 11 MB not held while the faces are found (the box's peak is summed)
        else:
            image = load_rgb(dest)
    except (ProxyError, OSError) as exc:
        return Indexed(None, [], str(exc))

    def detail() -> Image.Image | None:
        try:
            return (decoded or decode(Path(source), long_edge)).upright()
        except (ProxyError, OSError):
            return None  # the chips come from the proxy, as for any photo without a larger copy

    return Indexed(made, _the_model().faces(image, detail, proposals=proposals))


@dataclass(frozen=True, slots=True)
class Selfie:
    embedding: np.ndarray | None
    faces: int  # faces seen in the selfie (the largest is used)
    jpeg: bytes  # normalised picture for a cloud search
    error: str | None = None  # "not_an_image", "too_large", "no_face", "face_too_small"


_selfies_lock = threading.Lock()
_selfies_running = 0


def embed_selfie(data: bytes) -> Selfie:
    """The selfie's largest face and its embedding. Several run at once on the selfie process's
    threads, each in a malloc arena of its own: the last one of a burst hands the freed memory
    back (a 20 MB selfie decodes to ~100 MB of buffers), or each thread's arena would keep it,
    and so do Pillow's kept blocks (the photo indexed beside makes its own again)."""
    global _selfies_running
    with _selfies_lock:
        _selfies_running += 1
    try:
        return _embed_selfie(data)
    finally:
        with _selfies_lock:
            _selfies_running -= 1
            last = _selfies_running == 0
        if last:
            pil_core.clear_cache()  # the image blocks Pillow kept: a PNG selfie's reach 64 MB
            process.trim()


def _embed_selfie(data: bytes) -> Selfie:
    try:
        image, jpeg = decode_selfie(data)
    except ImageRejected as exc:
        return Selfie(None, 0, b"", exc.code)
    face, count = _the_model().largest(image)
    if face is None:
        return Selfie(None, 0, jpeg, "no_face")
    if face.embedding is None:
        return Selfie(None, count, jpeg, "face_too_small")
    return Selfie(face.embedding, count, jpeg)


def convert_model(dat: str, cache: str) -> str:
    """The ONNX form of dlib's ResNet (converted at most once); run in a process of its own, so
    the box's process never imports onnx nor holds the conversion's memory."""
    from appliance.faces.dlibnet import ensure_model

    return str(ensure_model(Path(dat), Path(cache)))


def convert_proposer(cache: str) -> str:
    """The face proposal model derived from the packaged CenterFace (at most once), as
    ``convert_model``. Raises RegionsUnavailable when it is not installed."""
    from appliance.faces.regions import ensure_proposer

    return str(ensure_proposer(Path(cache)))


def warm() -> int:
    """A no-op call that proves the worker is up (and its models loaded)."""
    return os.getpid()
