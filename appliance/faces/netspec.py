"""What the embedding network's two forms agree on: dlib's own (``engine`` without a model) and
the ONNX graph ``dlibnet`` writes and ``onnxembed`` runs, and the name the converted model is
cached under. Constants and the standard library only, so the converter and the embedder need
not import the engine (nor the engine them), and the box's process can look for a converted
model without importing onnx."""

from __future__ import annotations

import hashlib
from pathlib import Path

EMBEDDING_DIM = 128
CHIP_SIZE = 150  # the aligned face chip the ResNet embeds (dlib's get_face_chip size)
MEAN_KEY = "input_mean"  # ONNX metadata: the mean colour (R,G,B) subtracted before dividing by 256
CONVERTER_VERSION = 1  # part of the cached file's name: bump when the graph written changes


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_name(dat_path: Path, sha256: str) -> str:
    """The converted model's file name: the ``.dat``'s SHA-256 and ``CONVERTER_VERSION``."""
    return f"{dat_path.stem}-{sha256}-v{CONVERTER_VERSION}.onnx"


def model_path(dat_path: Path, cache_dir: Path) -> Path:
    """Where the ONNX model of ``dat_path`` is (or will be, once converted) in ``cache_dir``."""
    return cache_dir / model_name(dat_path, sha256_of(dat_path))
