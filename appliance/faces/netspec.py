"""What the embedding network's two forms agree on: dlib's own (``engine`` without a model) and
the ONNX graph ``dlibnet`` writes and ``onnxembed`` runs. Constants only, so the converter and the
embedder need not import the engine (nor the engine them)."""

from __future__ import annotations

EMBEDDING_DIM = 128
CHIP_SIZE = 150  # the aligned face chip the ResNet embeds (dlib's get_face_chip size)
MEAN_KEY = "input_mean"  # ONNX metadata: the mean colour (R,G,B) subtracted before dividing by 256
