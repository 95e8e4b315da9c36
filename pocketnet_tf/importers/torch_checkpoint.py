"""PyTorch state_dict <-> Keras weights for PocketNet and iResNet (spec §4, §6.7).

:func:`weight_map` walks a built Keras model and lists, for every PyTorch state_dict key the
original module tree produces, the Keras variable it feeds, the PyTorch shape and the two layout
conversions. Layer names mirror the PyTorch module tree (see ``models/pocketnet.py`` and
``models/iresnet.py``), so the map follows any genotype, width, depth or embedding size:

==================================  ==========================================================
PyTorch module                      Keras layer
==================================  ==========================================================
``stem.0`` / ``stem.1``             ``stem_0_conv`` / ``stem_1_bn``
``cells.i.preproc0`` (StdConv)      ``cell{i}_preproc0`` ``net.0..3`` = prelu, depthwise,
                                    pointwise, bn
``cells.i.preproc0`` (FactorizedR.) ``relu, conv11, conv12, conv21, conv22, bn`` = prelu,
                                    depthwise_a, pointwise_a, depthwise_b, pointwise_b, bn
``cells.i.dag.n.e``                 ``cell{i}_node{n}_edge{e}_{primitive}`` (DWConv ``net.*``,
                                    PoolBN ``bn``, stride-2 skip = FactorizedReduce, identity
                                    has no tensors)
``tail.k``                          ``tail_{k}_*``
iResNet ``a.b.c``                   ``a_b_c`` (``layer3.12.conv2`` = ``layer3_12_conv2``)
==================================  ==========================================================

Layout rules (spec §4.2): Conv2d ``[O, I/g, kh, kw]`` -> Conv2D ``[kh, kw, I/g, O]``
(transpose 2,3,1,0); depthwise ``[C, 1, kh, kw]`` -> DepthwiseConv2D ``[kh, kw, C, 1]``
(transpose 2,3,0,1); PReLU ``[C]`` -> alpha ``[1, 1, C]``; Linear ``[out, in]`` -> Dense
``[in, out]``; BN weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance,
``num_batches_tracked`` dropped. iResNet flattens NCHW before ``fc``: its rows are permuted from
(c, h, w) to the Keras flatten order (h, w, c). iResNet's ``features`` BatchNorm1d keeps its scale
frozen at 1; the Keras layer has no scale, so the checkpoint's ``features.weight`` must be all ones.

:func:`assign_state_dict` checks the whole checkpoint first (missing, unexpected, mis-shaped,
non-float or non-finite tensors, a ``features.weight`` that is not ones) and raises one
:class:`StateDictMismatchError` listing every problem; only a clean checkpoint is assigned.
:func:`export_state_dict` is the reverse (Keras -> PyTorch layout).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import keras
import numpy as np

from pocketnet_tf.layers.primitives import DWConv, FactorizedReduce, PoolBN
from pocketnet_tf.models.iresnet import IResNet
from pocketnet_tf.models.pocketnet import PocketNet

PROBLEM_KINDS = ("missing", "unexpected", "wrong shape", "wrong dtype", "bad values")

#: Tolerance for iResNet's frozen ``features.weight`` (stored as exact ones by the original).
FROZEN_SCALE_ATOL = 1e-6


class StateDictMismatchError(ValueError):
    """The checkpoint does not match the model; the message lists every offending key."""


@dataclasses.dataclass(frozen=True)
class TensorMapping:
    """One PyTorch tensor and where it goes in Keras.

    Attributes:
      key: the state_dict key.
      torch_shape: its expected shape.
      variable: the Keras variable it is assigned to, or ``None`` for a tensor that must hold
        ``constant`` everywhere (iResNet's frozen ``features.weight``).
      to_keras / to_torch: layout conversions between the two shapes.
      constant: the required value when ``variable`` is ``None``.
    """

    key: str
    torch_shape: tuple[int, ...]
    variable: keras.Variable | None
    to_keras: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]
    constant: float | None = None


@dataclasses.dataclass(frozen=True)
class WeightMap:
    """Every tensor of the model's PyTorch state_dict.

    ``tensors`` must all be present; ``optional`` keys (BN ``num_batches_tracked`` counters, with
    their shape) may be present and are dropped.
    """

    model_description: str
    tensors: tuple[TensorMapping, ...]
    optional: dict[str, tuple[int, ...]]
    embedding_key: str | None = None

    def keys(self) -> list[str]:
        return [t.key for t in self.tensors]


@dataclasses.dataclass(frozen=True)
class ImportReport:
    assigned: int
    dropped: int
    parameters: int


# ---------------------------------------------------------------------------------------------
# Layout conversions


def _conv_to_keras(w):
    return np.transpose(w, (2, 3, 1, 0))


def _conv_to_torch(k):
    return np.transpose(k, (3, 2, 0, 1))


def _depthwise_to_keras(w):
    return np.transpose(w, (2, 3, 0, 1))


def _depthwise_to_torch(k):
    return np.transpose(k, (2, 3, 0, 1))


def _identity(x):
    return x


def _shape(variable) -> tuple[int, ...]:
    return tuple(int(d) for d in variable.shape)


class _Builder:
    def __init__(self):
        self.tensors: list[TensorMapping] = []
        self.optional: dict[str, tuple[int, ...]] = {}

    def add(self, key, variable, torch_shape, to_keras, to_torch):
        self.tensors.append(TensorMapping(key, tuple(torch_shape), variable, to_keras, to_torch))

    def conv(self, key, layer: keras.layers.Conv2D):
        kh, kw, cin, cout = _shape(layer.kernel)
        self.add(f"{key}.weight", layer.kernel, (cout, cin, kh, kw), _conv_to_keras, _conv_to_torch)
        if layer.use_bias:
            self.add(f"{key}.bias", layer.bias, _shape(layer.bias), _identity, _identity)

    def depthwise(self, key, layer: keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = _shape(layer.kernel)
        if multiplier != 1:
            raise ValueError(f"{layer.name}: depth_multiplier {multiplier} has no PyTorch mapping here (expected 1)")
        self.add(f"{key}.weight", layer.kernel, (channels, 1, kh, kw), _depthwise_to_keras, _depthwise_to_torch)
        if layer.use_bias:
            self.add(f"{key}.bias", layer.bias, _shape(layer.bias), _identity, _identity)

    def prelu(self, key, layer: keras.layers.PReLU):
        shape = _shape(layer.alpha)
        if shape[:-1] != (1,) * (len(shape) - 1):
            raise ValueError(f"{layer.name}: only per-channel PReLU maps to PyTorch, alpha shape {shape}")
        self.add(
            f"{key}.weight", layer.alpha, (shape[-1],),
            lambda w, shape=shape: np.reshape(w, shape), lambda a: np.reshape(a, (-1,)),
        )

    def batch_norm(self, key, layer: keras.layers.BatchNormalization, frozen_scale: bool = False):
        channels = int(layer.moving_mean.shape[0])
        if layer.scale:
            self.add(f"{key}.weight", layer.gamma, (channels,), _identity, _identity)
        elif frozen_scale:
            self.tensors.append(
                TensorMapping(f"{key}.weight", (channels,), None, _identity, _identity, constant=1.0)
            )
        if layer.center:
            self.add(f"{key}.bias", layer.beta, (channels,), _identity, _identity)
        self.add(f"{key}.running_mean", layer.moving_mean, (channels,), _identity, _identity)
        self.add(f"{key}.running_var", layer.moving_variance, (channels,), _identity, _identity)
        self.optional[f"{key}.num_batches_tracked"] = ()

    def dense(self, key, layer: keras.layers.Dense, chw: tuple[int, int, int] | None = None):
        fan_in, units = _shape(layer.kernel)
        if chw is None:
            self.add(f"{key}.weight", layer.kernel, (units, fan_in), np.transpose, np.transpose)
        else:
            c, h, w = chw
            if c * h * w != fan_in:
                raise ValueError(f"{layer.name}: flatten input {chw} does not match kernel rows {fan_in}")

            def to_keras(weight):  # rows of the PyTorch weight are (c, h, w); Keras flattens (h, w, c)
                return weight.reshape(units, c, h, w).transpose(2, 3, 1, 0).reshape(fan_in, units)

            def to_torch(kernel):
                return kernel.reshape(h, w, c, units).transpose(3, 2, 0, 1).reshape(units, fan_in)

            self.add(f"{key}.weight", layer.kernel, (units, fan_in), to_keras, to_torch)
        if layer.use_bias:
            self.add(f"{key}.bias", layer.bias, (units,), _identity, _identity)

    def leaf(self, key, layer):
        """A plain Keras layer (conv, depthwise, PReLU, BN, dense)."""
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            self.depthwise(key, layer)
        elif isinstance(layer, keras.layers.Conv2D):
            self.conv(key, layer)
        elif isinstance(layer, keras.layers.PReLU):
            self.prelu(key, layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            self.batch_norm(key, layer)
        elif isinstance(layer, keras.layers.Dense):
            self.dense(key, layer)
        else:
            raise ValueError(f"no PyTorch mapping for layer {layer.name!r} ({type(layer).__name__})")


# ---------------------------------------------------------------------------------------------
# PocketNet (AugmentCNN)

_POCKETNET_NAMES = (
    (re.compile(r"^stem_(\d+)_[a-z]+$"), "stem.{0}"),
    (re.compile(r"^tail_(\d+)_[a-z]+$"), "tail.{0}"),
    (re.compile(r"^cell(\d+)_preproc([01])$"), "cells.{0}.preproc{1}"),
    (re.compile(r"^cell(\d+)_node(\d+)_edge(\d+)_[a-z0-9_]+$"), "cells.{0}.dag.{1}.{2}"),
)


def _pocketnet_prefix(layer_name: str) -> str | None:
    for pattern, template in _POCKETNET_NAMES:
        match = pattern.match(layer_name)
        if match:
            return template.format(*match.groups())
    return None


def _cell_op(builder: _Builder, key: str, layer) -> None:
    if isinstance(layer, DWConv):  # also StdConv
        for index, sub in enumerate((layer.prelu, layer.depthwise, layer.pointwise, layer.bn)):
            builder.leaf(f"{key}.net.{index}", sub)
    elif isinstance(layer, FactorizedReduce):
        for name, sub in (
            ("relu", layer.prelu), ("conv11", layer.depthwise_a), ("conv12", layer.pointwise_a),
            ("conv21", layer.depthwise_b), ("conv22", layer.pointwise_b), ("bn", layer.bn),
        ):
            builder.leaf(f"{key}.{name}", sub)
    elif isinstance(layer, PoolBN):
        builder.leaf(f"{key}.bn", layer.bn)
    else:
        builder.leaf(key, layer)


def _pocketnet_map(model: PocketNet) -> WeightMap:
    builder = _Builder()
    for layer in model.layers:
        if not layer.weights:
            continue
        key = _pocketnet_prefix(layer.name)
        if key is None:
            raise ValueError(f"PocketNet layer {layer.name!r} has weights but no PyTorch name")
        _cell_op(builder, key, layer)
    description = (
        f"PocketNet(channels={model.channels}, num_cells={model.num_cells}, "
        f"embedding_size={model.embedding_size}, head_width={model.head_width})"
    )
    return WeightMap(description, tuple(builder.tensors), builder.optional, "tail.7.running_mean")


# ---------------------------------------------------------------------------------------------
# iResNet (insightface)


def _iresnet_map(model: IResNet) -> WeightMap:
    builder = _Builder()
    for layer in model.layers:
        if not layer.weights:
            continue
        key = layer.name.replace("_", ".")
        if layer.name == "fc":
            _, h, w, c = model.get_layer("bn2").output.shape
            builder.dense(key, layer, chw=(int(c), int(h), int(w)))
        elif layer.name == "features":
            builder.batch_norm(key, layer, frozen_scale=True)
        else:
            builder.leaf(key, layer)
    description = f"iresnet{model.depth}(embedding_size={model.embedding_size}, input_size={model.input_size})"
    return WeightMap(description, tuple(builder.tensors), builder.optional, "features.running_mean")


def weight_map(model) -> WeightMap:
    """The PyTorch state_dict layout of a built ``PocketNet`` or ``IResNet``."""
    if isinstance(model, PocketNet):
        return _pocketnet_map(model)
    if isinstance(model, IResNet):
        return _iresnet_map(model)
    raise ValueError(
        f"no PyTorch checkpoint layout for {type(model).__name__} {model.name!r}; "
        "expected a PocketNet or an IResNet"
    )


# ---------------------------------------------------------------------------------------------
# Checking and assigning


def _fmt(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def check_state_dict(wmap: WeightMap, state_dict: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    """All problems of ``state_dict`` against ``wmap`` as ``(kind, line)`` pairs (empty: it matches).

    Kinds: ``missing``, ``unexpected``, ``wrong shape``, ``wrong dtype``, ``bad values``.
    """
    problems: dict[str, list[str]] = {k: [] for k in PROBLEM_KINDS}
    expected = {t.key: t for t in wmap.tensors}
    for t in wmap.tensors:
        if t.key not in state_dict:
            problems["missing"].append(f"{t.key}  expected {_fmt(t.torch_shape)}")
    for key, array in state_dict.items():
        array = np.asarray(array)
        if key in expected:
            t = expected[key]
            if array.shape != t.torch_shape:
                problems["wrong shape"].append(f"{key}  expected {_fmt(t.torch_shape)}, found {_fmt(array.shape)}")
            elif not np.issubdtype(array.dtype, np.floating):
                problems["wrong dtype"].append(f"{key}  expected a floating-point tensor, found {array.dtype}")
            elif not np.all(np.isfinite(array)):
                problems["bad values"].append(f"{key}  contains NaN or infinity")
            elif t.variable is None and not np.allclose(array, t.constant, rtol=0, atol=FROZEN_SCALE_ATOL):
                worst = float(np.max(np.abs(array - t.constant)))
                problems["bad values"].append(
                    f"{key}  must be all {t.constant:g} (frozen in the original; the Keras layer has "
                    f"no such weight), max deviation {worst:.3g}"
                )
        elif key in wmap.optional:
            if array.shape != wmap.optional[key]:
                problems["wrong shape"].append(
                    f"{key}  expected {_fmt(wmap.optional[key])}, found {_fmt(array.shape)}"
                )
        else:
            problems["unexpected"].append(f"{key}  found {_fmt(array.shape)}")
    return [(kind, line) for kind, lines in problems.items() for line in lines]


def _format_problems(problems: list[tuple[str, str]]) -> tuple[str, str]:
    counts: dict[str, int] = {}
    for kind, _ in problems:
        counts[kind] = counts.get(kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    listing = "\n".join(f"  {kind:<12} {line}" for kind, line in problems)
    return summary, listing


def _embedding_hint(wmap: WeightMap, state_dict, expected_size: int) -> str:
    if wmap.embedding_key is None or wmap.embedding_key not in state_dict:
        return ""
    found = tuple(np.shape(state_dict[wmap.embedding_key]))
    if len(found) == 1 and found[0] != expected_size:
        return (
            f"\nhint: the checkpoint's embedding size is {found[0]}, the model's {expected_size} "
            f"(--embedding_size={found[0]})"
        )
    return ""


def assign_state_dict(model, state_dict: dict[str, np.ndarray], source: str = "state_dict") -> ImportReport:
    """Checks ``state_dict`` against ``model`` and copies every tensor into it.

    Args:
      model: a built ``PocketNet`` or ``IResNet``.
      state_dict: ``{key: array}`` in PyTorch layout (see :func:`state_dict_file.load_state_dict`).
      source: named in error messages (the checkpoint path).

    Raises:
      StateDictMismatchError: listing every missing, unexpected, mis-shaped or invalid tensor
        (key, expected shape, found shape). Nothing is assigned in that case.
    """
    wmap = weight_map(model)
    problems = check_state_dict(wmap, state_dict)
    if problems:
        hint = _embedding_hint(wmap, state_dict, int(getattr(model, "embedding_size", 0)))
        summary, listing = _format_problems(problems)
        raise StateDictMismatchError(
            f"{source}: checkpoint does not match {wmap.model_description}: {summary}\n{listing}{hint}"
        )
    converted = []
    for t in wmap.tensors:
        if t.variable is not None:
            value = t.to_keras(np.asarray(state_dict[t.key], dtype=np.float32))
            converted.append((t.variable, value.astype(t.variable.dtype)))
    for variable, value in converted:
        variable.assign(value)
    dropped = sum(1 for key in state_dict if key in wmap.optional)
    return ImportReport(
        assigned=len(converted), dropped=dropped, parameters=int(sum(v.size for _, v in converted))
    )


def export_state_dict(model, include_counters: bool = True) -> dict[str, np.ndarray]:
    """The model's weights as a PyTorch-layout state_dict (float32 numpy arrays).

    ``num_batches_tracked`` counters are written as int64 zeros when ``include_counters``.
    """
    wmap = weight_map(model)
    out: dict[str, np.ndarray] = {}
    for t in wmap.tensors:
        if t.variable is None:
            out[t.key] = np.full(t.torch_shape, t.constant, np.float32)
        else:
            out[t.key] = np.ascontiguousarray(t.to_torch(np.asarray(t.variable.numpy(), np.float32)))
    if include_counters:
        for key, shape in wmap.optional.items():
            out[key] = np.zeros(shape, np.int64)
    return out
