"""dlib's 128-d face embedding computed by onnxruntime on the CPU.

Owns one onnxruntime ``InferenceSession`` of the model ``appliance.faces.dlibnet`` derives from
the packaged ``dlib_face_recognition_resnet_model_v1.dat``, and the two steps around it that
dlib's ``face_recognition_model_v1.compute_face_descriptor(image, shape, 0)`` does: cutting the
aligned 150 px chip (``chips``: ``dlib.get_face_chips`` with size 150 and padding 0.25, the
``get_face_chip_details`` + ``extract_image_chips`` that function uses; no jitter) and dlib's
input normalisation (``(pixel - mean colour) / 256``, NCHW; in ``embed``). Same embeddings
within ~1e-6 of dlib's, 12-20x faster than the ``dlib-bin`` AVX1 build (FIELD-NOTES section 8).

Runs in a face worker process, beside ``appliance.faces.engine`` (it calls dlib for the chips,
so like the engine it never runs in the box's own process). One session per process, shared by
its indexing threads (``run`` is thread-safe); ``threads`` sets onnxruntime's intra-op threads (1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dlib  # noqa: TID251 -- only the chip cutting; this module runs in the worker processes
import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state  # type: ignore[import-untyped]

from appliance.faces.netspec import CHIP_SIZE, EMBEDDING_DIM, MEAN_KEY

CHIP_PADDING = 0.25  # compute_face_descriptor's default padding around the 5-point landmarks

# onnxruntime's own errors (one class per status code, no common base below Exception), plus
# the RuntimeError/ValueError its Python layer raises: translated to EmbedderError where they enter.
_ORT_NAMES = "Fail InvalidArgument NoSuchFile NoModel EngineError RuntimeException InvalidProtobuf"
_ORT_NAMES += " ModelLoaded NotImplemented InvalidGraph EPFail"
_ORT_ERRORS: tuple[type[Exception], ...] = (
    RuntimeError,
    ValueError,
    *(getattr(ort_state, name) for name in _ORT_NAMES.split() if hasattr(ort_state, name)),
)


class EmbedderError(RuntimeError):
    """The ONNX model cannot be loaded or run (a missing or damaged file, a wrong model)."""


def chips(
    image: npt.NDArray[np.uint8], shapes: Sequence[dlib.full_object_detection]
) -> npt.NDArray[np.uint8]:
    """The aligned chips dlib's ``compute_face_descriptor`` embeds, one per 5-point ``shape`` of
    ``image`` (RGB uint8 [H, W, 3]): uint8 [N, 150, 150, 3]."""
    if not shapes:
        return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    found = dlib.full_object_detections()
    found.extend(shapes)
    cut = dlib.get_face_chips(image, found, size=CHIP_SIZE, padding=CHIP_PADDING)
    return np.stack([np.asarray(chip, dtype=np.uint8) for chip in cut])


class OnnxEmbedder:
    """The face-recognition ResNet in an onnxruntime session (FIELD-NOTES: ~164 MB RSS a worker)."""

    def __init__(self, model_path: Path, *, threads: int = 1, fast: bool = False) -> None:
        """``fast``: onnxruntime's full graph optimisation (on x86_64 its blocked NCHWc layout:
        3.8 against 7.3 ms a face, for ~24 MB more, measured 138 against 114 MB for a process
        holding only the session); the indexing process uses it, the selfie process (one face
        a search) keeps the smaller session. Either way the embeddings equal dlib's within 1e-5
        (tests/test_faces_onnx.py checks both)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Memory over the last millisecond otherwise (the box has a 600 MB budget): no arena,
        # basic graph optimisation and no pre-packed weight copies.
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL if fast else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        )
        options.add_session_config_entry("session.disable_prepacking", "1")
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except _ORT_ERRORS as exc:
            raise EmbedderError(f"cannot load the face model {model_path}: {exc}") from exc
        metadata: dict[str, str] = self._session.get_modelmeta().custom_metadata_map
        try:
            mean = [float(part) for part in metadata[MEAN_KEY].split(",")]
        except (KeyError, ValueError) as exc:
            raise EmbedderError(f"{model_path} has no input mean colour: not a dlibnet model") from exc
        if len(mean) != 3:
            raise EmbedderError(f"{model_path} has a mean colour of {len(mean)} values")
        self._mean = np.array(mean, dtype=np.float32)
        self._input: str = self._session.get_inputs()[0].name

    def embed(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Embeddings float32 [N, 128] of aligned chips uint8 [N, 150, 150, 3] (RGB, as
        ``chips`` cuts them); dlib's own descriptors to within ~1e-6."""
        if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be uint8 [N, 150, 150, 3], got {chips.dtype} {chips.shape}")
        if len(chips) == 0:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
        # dlib's input_rgb_image_sized: (pixel - mean) / 256 in float32, planes R, G, B
        tensor = (chips.astype(np.float32) - self._mean) / np.float32(256)
        tensor = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
        try:
            (out,) = self._session.run(None, {self._input: tensor})
        except _ORT_ERRORS as exc:
            raise EmbedderError(f"the face model failed: {exc}") from exc
        return np.asarray(out, dtype=np.float32)
