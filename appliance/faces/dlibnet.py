"""dlib's face-recognition ResNet as an ONNX model, derived from the packaged ``.dat``.

Owns two things: a reader of dlib's DNN serialisation for exactly the network of
``dlib_face_recognition_resnet_model_v1.dat`` (the ``anet_type`` of dlib's
``examples/dnn_face_recognition_ex.cpp``), and a writer of the equivalent ONNX graph, which
onnxruntime runs 12-20x faster than the ``dlib-bin`` AVX1 build (FIELD-NOTES section 8). Nothing is
downloaded: the ONNX file is made from the ``.dat`` the ``face-recognition-models`` wheel ships,
once, and cached under a name carrying the ``.dat``'s SHA-256 (``ensure_model``).

Runs in a face worker process, once when it starts (converting takes ~0.2 s and ~160 MB at its
peak); pure numpy and onnx, no dlib.

The format, as dlib's own source writes it (dlib/serialize.h, dlib/cuda/tensor.h, dlib/dnn/*.h):

- an integer is a control byte (low nibble: how many little-endian bytes follow; 0x80: negative)
  and its bytes; a bool is the ASCII byte ``'0'`` or ``'1'``; a string is its length and bytes;
  a float is its mantissa (int64) then its exponent (int16): mantissa * 2**exponent (the
  code's order; the comment in serialize.h says the reverse);
- a tensor is version 2, four sizes (samples, k, rows, columns), then little-endian float32s;
  an alias tensor (a view into a layer's ``params``) is version 1 and four sizes;
- a network is written from the loss layer inwards, each layer's version *before* its subnetwork
  and its details *after* it: every header outermost first, the input layer, then every
  layer's details innermost first.

Numerically the graph is dlib's: convolutions and pools without padding where dlib has none
(stride 2), "same" padding at stride 1; the residual add of two tensors of different shape
zero-pads both to the larger (``tt::add``: channels on the skip path, a bottom row and right
column on the main path at 8 -> 3/4 and 4 -> 1/2 pixels); each ``affine`` layer (the trained
batch-norm) folds into the convolution before it. The input is dlib's: NCHW float32,
``(pixel - mean colour) / 256``, with the mean colour from the ``.dat`` kept in the model's
metadata (``input_mean``) for ``appliance.faces.onnxembed``.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from appliance.faces.netspec import (
    CHIP_SIZE,
    CONVERTER_VERSION,
    EMBEDDING_DIM,
    MEAN_KEY,
    model_path,
)

OPSET = 17
INPUT_NAME = "chips"  # float32 [N, 3, 150, 150], already normalised as dlib's input layer does
OUTPUT_NAME = "embedding"  # float32 [N, 128]

F32 = npt.NDArray[np.float32]


class DlibModelError(ValueError):
    """The ``.dat`` is not the face-recognition network this module reads (truncated, corrupt,
    or another network); the message says what was found where."""


# --- the file's primitives ------------------------------------------------------------------


class _Reader:
    """A cursor over the file's bytes, reading dlib's primitive encodings."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, message: str) -> DlibModelError:
        return DlibModelError(f"not dlib's face-recognition network: {message} at byte {self.pos}")

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise self.fail(f"the file ends inside {what} (needs {size} bytes)")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def integer(self, what: str) -> int:
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte {control:#04x} in {what}")
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def version(self, expected: int | tuple[int, ...], what: str) -> int:
        allowed = (expected,) if isinstance(expected, int) else expected
        found = self.integer(f"the version of {what}")
        if found not in allowed:
            raise self.fail(f"{what} has version {found}, expected {allowed}")
        return found

    def boolean(self, what: str) -> bool:
        byte = self.take(1, what)
        if byte not in (b"0", b"1"):
            raise self.fail(f"bad bool {byte!r} in {what}")
        return byte == b"1"

    def real(self, what: str) -> float:
        mantissa = self.integer(what)
        exponent = self.integer(what)
        specials = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent in specials:
            return specials[exponent]
        if not -(2**15) <= exponent < 2**15 or not -(2**63) <= mantissa < 2**63:
            raise self.fail(f"a float out of range in {what}")
        try:
            return math.ldexp(mantissa, exponent)
        except OverflowError:
            raise self.fail(f"a float out of range in {what}") from None

    def string(self, what: str) -> str:
        size = self.integer(f"the length of {what}")
        if size > 256:
            raise self.fail(f"a string of {size} bytes where {what} should be")
        raw = self.take(size, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"non-ASCII bytes where {what} should be") from None

    def tag(self, allowed: tuple[str, ...], what: str) -> str:
        found = self.string(f"the name of {what}")
        if found not in allowed:
            raise self.fail(f"found {found!r} where {what} ({' or '.join(allowed)}) should be")
        return found

    def dims(self, what: str) -> tuple[int, int, int, int]:
        n, k, nr, nc = (self.integer(what) for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise self.fail(f"a negative size in {what}")
        return n, k, nr, nc

    def tensor(self, what: str) -> F32:
        self.version(2, f"the tensor {what}")
        shape = self.dims(what)
        count = math.prod(shape)
        if count * 4 > len(self.data) - self.pos:
            raise self.fail(f"the file ends inside the tensor {what} of {shape}")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos += count * 4
        return values.astype(np.float32, copy=False).reshape(shape)  # read-only: never written

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.version(1, f"the alias tensor {what}")
        return self.dims(what)


# --- the network ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """One node of the expected network, outermost first: ``kind`` is ``con``, ``affine``,
    ``relu``, ``add_prev``, ``avg_pool``, ``max_pool``, ``fc``, ``tag`` or ``skip``."""

    kind: str
    filters: int = 0  # con, fc: outputs
    size: int = 0  # con, pools: window (0: the whole input)
    stride: int = 1
    tag_id: int = 0  # tag, skip, add_prev

    @property
    def padding(self) -> int:
        """dlib's default: none at stride 2, ``size // 2`` ("same") at stride 1."""
        return self.size // 2 if self.stride == 1 else 0


def _ares(n: int) -> list[Spec]:
    """``relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>``, outermost first."""
    return [
        Spec("relu"),
        Spec("add_prev", tag_id=1),
        Spec("affine"),
        Spec("con", filters=n, size=3),
        Spec("relu"),
        Spec("affine"),
        Spec("con", filters=n, size=3),
        Spec("tag", tag_id=1),
    ]


def _ares_down(n: int) -> list[Spec]:
    """``relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>``."""
    return [
        Spec("relu"),
        Spec("add_prev", tag_id=2),
        Spec("avg_pool", size=2, stride=2),
        Spec("skip", tag_id=1),
        Spec("tag", tag_id=2),
        Spec("affine"),
        Spec("con", filters=n, size=3),
        Spec("relu"),
        Spec("affine"),
        Spec("con", filters=n, size=3, stride=2),
        Spec("tag", tag_id=1),
    ]


def network() -> list[Spec]:
    """dlib's ``anet_type`` below the loss layer, outermost first (the input layer not listed)."""
    blocks = [
        *[_ares_down(256)],  # alevel0
        *[_ares(256), _ares(256), _ares_down(256)],  # alevel1
        *[_ares(128), _ares(128), _ares_down(128)],  # alevel2
        *[_ares(64), _ares(64), _ares(64), _ares_down(64)],  # alevel3
        *[_ares(32), _ares(32), _ares(32)],  # alevel4
    ]
    specs = [Spec("fc", filters=EMBEDDING_DIM), Spec("avg_pool", size=0, stride=1)]
    for block in blocks:
        specs += block
    specs += [Spec("max_pool", size=3, stride=2), Spec("relu"), Spec("affine")]
    specs += [Spec("con", filters=32, size=7, stride=2)]
    return specs


@dataclass(slots=True)
class Layer:
    """One node as read from the file: ``weights`` (con: OIHW, fc: [in, out], affine: gamma),
    ``bias`` (con: biases or None, affine: beta), ``active`` False for a disabled relu/affine."""

    spec: Spec
    weights: F32 | None = None
    bias: F32 | None = None
    active: bool = True
    relu: bool = False  # con_6 can fuse a relu into the convolution


@dataclass(slots=True)
class Network:
    """The whole file: its layers, the input layer's mean colour and the loss layer's values."""

    layers: list[Layer]  # outermost first, as ``network()`` lists them
    mean: tuple[float, float, float]  # the input layer's average colour (R, G, B)
    weight_count: int = 0
    extra: dict[str, float] = field(default_factory=dict)  # the loss layer's margin, threshold


def _layer_details(r: _Reader, layer: Layer) -> None:
    spec = layer.spec
    what = f"a {spec.kind} layer"
    if spec.kind == "con":
        version = r.tag(("con_4", "con_5", "con_6"), what)
        params = r.tensor("con params")
        filters = r.integer("con filters")
        nr, nc, stride_y, stride_x = (r.integer("con geometry") for _ in range(4))
        pad_y, pad_x = r.integer("con padding"), r.integer("con padding")
        expected = (spec.filters, spec.size, spec.size, spec.stride, spec.stride, spec.padding)
        if (filters, nr, nc, stride_y, stride_x, pad_y) != expected or pad_x != pad_y:
            raise r.fail(f"a convolution {filters}x{nr}x{nc}/{stride_y} pad {pad_y}, expected {expected}")
        shape = r.alias("con filters")
        bias_shape = r.alias("con biases")
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.real("con multipliers")
        use_bias = r.boolean("con use_bias") if version in ("con_5", "con_6") else True
        layer.relu = r.boolean("con use_relu") if version == "con_6" else False
        weights_size = math.prod(shape)
        bias_size = math.prod(bias_shape) if use_bias else 0
        if shape[0] != filters or params.size != weights_size + bias_size:
            raise r.fail(f"convolution params of {params.size} for filters {shape}")
        if use_bias and bias_size != filters:
            raise r.fail(f"convolution biases {bias_shape} for {filters} filters")
        flat = params.reshape(-1)
        layer.weights = flat[:weights_size].reshape(shape)
        layer.bias = flat[weights_size:].copy() if use_bias else None
    elif spec.kind == "affine":
        version = r.tag(("affine_", "affine_2"), what)
        params = r.tensor("affine params")
        gamma, beta = r.alias("affine gamma"), r.alias("affine beta")
        mode = r.integer("affine mode")
        layer.active = not r.boolean("affine disabled") if version == "affine_2" else True
        channels = math.prod(gamma)
        if mode != 0 or gamma != beta or params.size != 2 * channels:  # 0: CONV_MODE
            raise r.fail(f"an affine layer in mode {mode} with gamma {gamma}, beta {beta}")
        flat = params.reshape(-1)
        layer.weights, layer.bias = flat[:channels].copy(), flat[channels:].copy()
    elif spec.kind == "relu":
        version = r.tag(("relu_", "relu_2"), what)
        layer.active = not r.boolean("relu disabled") if version == "relu_2" else True
    elif spec.kind == "add_prev":
        r.tag(("add_prev_",), what)
    elif spec.kind in ("avg_pool", "max_pool"):
        r.tag((f"{spec.kind}_2",), what)
        nr, nc, stride_y, stride_x = (r.integer("pool geometry") for _ in range(4))
        pad_y, pad_x = r.integer("pool padding"), r.integer("pool padding")
        expected = (spec.size, spec.size, spec.stride, spec.stride, spec.padding, spec.padding)
        found = (nr, nc, stride_y, stride_x, pad_y, pad_x)
        if spec.size == 0:
            expected = (0, 0, 1, 1, 0, 0)
        if found != expected:
            raise r.fail(f"a {spec.kind} of {found}, expected {expected}")
    elif spec.kind == "fc":
        version = r.tag(("fc_2", "fc_3"), what)
        outputs, inputs = r.integer("fc outputs"), r.integer("fc inputs")
        params = r.tensor("fc params")
        weights, biases = r.alias("fc weights"), r.alias("fc biases")
        bias_mode = r.integer("fc bias mode")
        for _ in range(4):
            r.real("fc multipliers")
        use_bias = r.boolean("fc use_bias") if version == "fc_3" else True
        if outputs != spec.filters or bias_mode != 1 or weights[:2] != (inputs, outputs):  # 1: FC_NO_BIAS
            raise r.fail(f"an fc layer {inputs}->{outputs} (bias mode {bias_mode}), weights {weights}")
        if params.size != inputs * outputs:
            raise r.fail(f"fc params of {params.size} for {inputs}x{outputs}")
        del biases, use_bias  # no bias in fc_no_bias, whatever the flag says
        layer.weights = params.reshape(inputs, outputs)
    else:
        raise AssertionError(spec.kind)


def _layer_trailer(r: _Reader, version: int, *, over_input: bool) -> None:
    """What ``add_layer`` writes after a layer's details: three bools and its cached tensors."""
    for name in ("this_layer_setup_called", "gradient_input_is_stale", "output_disabled"):
        r.boolean(name)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if over_input:  # add_layer<LAYER, INPUT_LAYER>: grad_final, then (v3) sample expansion
        r.tensor("grad_final")
        if version >= 3:
            r.integer("sample_expansion_factor")
    elif version == 2:
        r.tensor("params_grad")


def read(data: bytes) -> Network:
    """Every byte of a ``dlib_face_recognition_resnet_model_v1.dat`` read and checked; raises
    ``DlibModelError`` when anything is not where this network keeps it."""
    r = _Reader(data)
    specs = network()
    extra: dict[str, float] = {}
    r.version(1, "add_loss_layer")
    loss = r.tag(("loss_metric_", "loss_metric_2"), "the loss layer")
    if loss == "loss_metric_2":
        extra["margin"] = r.real("loss margin")
        extra["distance_threshold"] = r.real("loss threshold")
    layers = [Layer(spec) for spec in specs]
    versions: list[int] = []
    for i, spec in enumerate(specs):  # headers, outermost first
        if spec.kind in ("tag", "skip"):
            versions.append(r.version(1, f"add_{spec.kind}_layer"))
        else:
            over_input = i == len(specs) - 1
            versions.append(r.version((2, 3) if over_input else (1, 2), "add_layer"))
    r.tag(("input_rgb_image_sized",), "the input layer")
    mean = (r.real("input mean"), r.real("input mean"), r.real("input mean"))
    rows, cols = r.integer("input rows"), r.integer("input columns")
    if (rows, cols) != (CHIP_SIZE, CHIP_SIZE):
        raise r.fail(f"an input of {rows}x{cols}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    for i in reversed(range(len(specs))):  # details, innermost first
        if specs[i].kind in ("tag", "skip"):
            continue
        _layer_details(r, layers[i])
        _layer_trailer(r, versions[i], over_input=i == len(specs) - 1)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes after the end of the network")
    count = sum(
        (0 if layer.weights is None else layer.weights.size) + (0 if layer.bias is None else layer.bias.size)
        for layer in layers
    )
    return Network(layers, mean, count, extra)


# --- the ONNX graph -------------------------------------------------------------------------


Shape = tuple[int, int, int]  # channels, rows, columns (one sample)


class _Graph:
    """Builds the ONNX nodes while tracking each value's static (channels, rows, cols)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def constant(self, stem: str, value: npt.NDArray[np.generic]) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def pad_to(self, value: str, shape: Shape, target: Shape) -> str:
        """dlib's ``tt::add`` treats cells outside a tensor as zero: pad at the end of each axis."""
        if shape == target:
            return value
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.op("Pad", [value, self.constant("pads", pads)], mode="constant")


def _out(shape: Shape, channels: int, window: int, stride: int, padding: int) -> Shape:
    """dlib's (and ONNX's) output size of a convolution or pooling window."""
    rows, cols = (1 + (side + 2 * padding - window) // stride for side in shape[1:])
    return channels, rows, cols


def build_onnx(net: Network, *, source_sha256: str = "") -> onnx.ModelProto:
    """The ONNX graph computing what dlib's network computes from its input tensor."""
    g = _Graph()
    layers = net.layers
    outputs: list[tuple[str, Shape]] = [("", (0, 0, 0))] * len(layers)
    value, shape = INPUT_NAME, (3, CHIP_SIZE, CHIP_SIZE)

    def tagged(index: int, tag_id: int) -> tuple[str, Shape]:
        """``layer<tagN>(sub)``: the nearest tag with that id inside node ``index``."""
        for j in range(index + 1, len(layers)):
            if layers[j].spec.kind == "tag" and layers[j].spec.tag_id == tag_id:
                return outputs[j]
        raise DlibModelError(f"no tag{tag_id} below layer {index}")

    for i in reversed(range(len(layers))):
        layer, spec = layers[i], layers[i].spec
        if spec.kind == "con":
            assert layer.weights is not None
            weights = layer.weights
            bias = layer.bias if layer.bias is not None else np.zeros(spec.filters, np.float32)
            above = layers[i - 1]
            if above.spec.kind == "affine" and above.active:  # fold: (w*x + b)*gamma + beta
                assert above.weights is not None
                assert above.bias is not None
                gamma, beta = above.weights, above.bias
                weights = (weights * gamma[:, None, None, None]).astype(np.float32)
                bias = (bias * gamma + beta).astype(np.float32)
            pad = spec.padding
            value = g.op(
                "Conv",
                [value, g.constant("w", weights), g.constant("b", bias)],
                kernel_shape=[spec.size, spec.size],
                strides=[spec.stride, spec.stride],
                pads=[pad, pad, pad, pad],
            )
            shape = _out(shape, spec.filters, spec.size, spec.stride, pad)
            if layer.relu:
                value = g.op("Relu", [value])
        elif spec.kind == "affine":
            if layers[i + 1].spec.kind != "con":
                raise DlibModelError(f"affine layer {i} does not follow a convolution")
        elif spec.kind == "relu":
            if layer.active:
                value = g.op("Relu", [value])
        elif spec.kind == "tag":
            pass  # its output is its subnetwork's
        elif spec.kind == "skip":
            value, shape = tagged(i, spec.tag_id)
        elif spec.kind == "add_prev":
            other, other_shape = tagged(i, spec.tag_id)
            target: Shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            a = g.pad_to(value, shape, target)
            b = g.pad_to(other, other_shape, target)
            value, shape = g.op("Add", [a, b]), target
        elif spec.kind == "max_pool":
            value = g.op("MaxPool", [value], kernel_shape=[spec.size] * 2, strides=[spec.stride] * 2)
            shape = _out(shape, shape[0], spec.size, spec.stride, 0)
        elif spec.kind == "avg_pool":
            if spec.size == 0:
                value, shape = g.op("GlobalAveragePool", [value]), (shape[0], 1, 1)
            else:
                value = g.op("AveragePool", [value], kernel_shape=[spec.size] * 2, strides=[spec.stride] * 2)
                shape = _out(shape, shape[0], spec.size, spec.stride, 0)
        elif spec.kind == "fc":
            assert layer.weights is not None
            flat = g.op("Flatten", [value], axis=1)
            if layer.weights.shape[0] != math.prod(shape):
                raise DlibModelError(f"fc takes {layer.weights.shape[0]} inputs, gets {shape}")
            value = g.op("MatMul", [flat, g.constant("fc", layer.weights)])
        outputs[i] = (value, shape)

    last = g.nodes[-1]
    last.output[0] = OUTPUT_NAME
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, CHIP_SIZE, CHIP_SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", EMBEDDING_DIM])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="shutterbox.dlibnet"
    )
    model.ir_version = 8  # what onnxruntime releases of the last years all read
    metadata = {
        MEAN_KEY: ",".join(repr(float(np.float32(m))) for m in net.mean),
        "source": "dlib_face_recognition_resnet_model_v1.dat",
        "source_sha256": source_sha256,
        "converter_version": str(CONVERTER_VERSION),
    }
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


# --- files ----------------------------------------------------------------------------------


def _write_atomically(target: Path, payload: bytes) -> None:
    """Write to a temporary file beside ``target``, fsync, rename over it: a reader sees the
    whole file or none (two workers converting at once both write the same bytes)."""
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def convert(dat_path: Path, onnx_path: Path) -> None:
    """Read ``dat_path`` (dlib's face-recognition ResNet) and write the ONNX model to
    ``onnx_path`` atomically. Raises ``DlibModelError`` for a file that is not that network."""
    data = dat_path.read_bytes()
    net = read(data)
    model = build_onnx(net, source_sha256=hashlib.sha256(data).hexdigest())
    _write_atomically(onnx_path, model.SerializeToString())


def ensure_model(dat_path: Path, cache_dir: Path) -> Path:
    """The ONNX model of ``dat_path`` in ``cache_dir``, converted the first time only: the
    file's name carries the ``.dat``'s SHA-256 (a different ``.dat`` gets its own model) and
    ``CONVERTER_VERSION``. Never downloads anything."""
    target = model_path(dat_path, cache_dir)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    convert(dat_path, target)
    return target
