"""SearchNetwork: PocketNet's supernet for the differentiable architecture search (spec §2.2, §2.3)."""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
from keras import ops

from pocketnet_tf import genotypes as genotypes_lib
from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.layers.common import batch_norm
from pocketnet_tf.layers.gdc import GroupedGlobalConv, embedding_tail
from pocketnet_tf.models.pocketnet import reduction_indices
from pocketnet_tf.search.config import EDGE_EXECUTION
from pocketnet_tf.search.mixed_op import SharedEdgeFunctions
from pocketnet_tf.search.search_cell import SearchCell, edge_count

ALPHA_INIT_SCALE = 1e-3


def _positive_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"SearchNetwork: {name} must be an int >= {low}, received {value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class SearchNetwork(keras.Model):
    """The PocketNet search network (the original ``SearchCNN``; spec §2.2-§2.3, §1.4).

    stem (3x3 conv, stride 2, ``stem_multiplier * channels`` outputs, affine BN) ->
    ``num_cells`` :class:`SearchCell` s with reductions at {L//3, 2L//3, L-1} (the width doubles at
    each) -> tail (PReLU, 1x1 conv to ``head_width``, BN, PReLU, *grouped* conv with
    ``gdc_groups`` groups over the whole final map, BN, 1x1 conv to ``embedding_size``, BN,
    flatten) -> linear classifier with bias -> logits. Paper settings: C=16, 8 cells, multiplier 3,
    112x112 input, 512-wide tail with 128 groups, 128-d embedding, 10,572 CASIA identities:
    4,156,316 weight parameters + 224 alphas.

    The architecture parameters live here and only here: ``alpha_normal`` and ``alpha_reduce``,
    each a list of ``num_nodes`` matrices of shape ``(i + 2, len(PRIMITIVES))`` initialised as
    1e-3 * N(0, 1). Every forward pass takes the row-wise softmax once and hands the mixing
    weights to the cells as call arguments. ``alphas`` and ``network_weights`` are two disjoint
    lists that together are ``trainable_variables``.

    The GDC kernel covers the final feature map (7x7 for 112 input), so smaller inputs work too
    (the original's 32x32 branch crashed there, spec §9 item 13). Weights start from PyTorch's
    default initialisation (U(+-1/sqrt(fan_in)) for every conv and linear kernel and the
    classifier bias), as the original search net does not re-initialise anything.

    Args:
      num_classes: identities of the classifier.
      channels: initial cell width C.
      num_cells: number of cells L; the reduction cells are the distinct values of
        {L//3, 2L//3, L-1}.
      num_nodes: intermediate nodes per cell.
      stem_multiplier: stem width = stem_multiplier * channels.
      embedding_size: width of the embedding before the classifier.
      head_width: width of the tail's 1x1 conv and GDC.
      gdc_groups: groups of the tail's GDC convolution (must divide ``head_width``).
      input_size: square input side; must be divisible by 2 ** (1 + number of reductions).
      seed: seed of the weight and alpha initialisation (``None``: drawn from numpy's global RNG,
        which ``keras.utils.set_random_seed`` seeds).

    Call: ``(batch, input_size, input_size, 3)`` images in [-1, 1] -> ``(batch, num_classes)`` logits.
    """

    def __init__(
        self,
        num_classes,
        channels=16,
        num_cells=8,
        num_nodes=4,
        stem_multiplier=3,
        embedding_size=128,
        head_width=512,
        gdc_groups=128,
        input_size=112,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("name", "search_network")
        super().__init__(**kwargs)
        self.num_classes = _positive_int("num_classes", num_classes)
        self.channels = _positive_int("channels", channels)
        self.num_cells = _positive_int("num_cells", num_cells)
        self.num_nodes = _positive_int("num_nodes", num_nodes)
        self.stem_multiplier = _positive_int("stem_multiplier", stem_multiplier)
        self.embedding_size = _positive_int("embedding_size", embedding_size)
        self.head_width = _positive_int("head_width", head_width)
        self.gdc_groups = _positive_int("gdc_groups", gdc_groups)
        self.input_size = _positive_int("input_size", input_size)
        self.seed = None if seed is None else int(seed)
        if self.head_width % self.gdc_groups:
            raise ValueError(
                f"SearchNetwork: gdc_groups ({gdc_groups}) must divide head_width ({head_width})"
            )
        self.reductions = reduction_indices(self.num_cells)
        factor = 2 ** (1 + len(self.reductions))
        if self.input_size % factor:
            raise ValueError(
                f"SearchNetwork: input_size {input_size} must be divisible by {factor} "
                f"(stem stride 2 and {len(self.reductions)} reduction cells, each needing an even input)"
            )
        self.final_size = self.input_size // factor

        self.stem_pad = keras.layers.ZeroPadding2D(1, name="stem_pad")
        self.stem_conv = keras.layers.Conv2D(
            self.stem_multiplier * self.channels, 3, strides=2, padding="valid", use_bias=False, name="stem_0_conv"
        )
        self.stem_bn = batch_norm("stem_1_bn")
        self.cells = []
        width = self.channels
        reduction_prev = False
        for i in range(self.num_cells):
            reduction = i in self.reductions
            if reduction:
                width *= 2
            self.cells.append(
                SearchCell(width, reduction=reduction, reduction_prev=reduction_prev,
                           num_nodes=self.num_nodes, name=f"cell{i}")
            )
            reduction_prev = reduction
        self.tail = embedding_tail(self.head_width, self.embedding_size, groups=self.gdc_groups)
        self.classifier = keras.layers.Dense(self.num_classes, use_bias=True, name="classifier")
        self.build((None, self.input_size, self.input_size, 3))

    # ------------------------------------------------------------------------------------------
    def build(self, input_shape):
        if self.built:
            return
        rng = np.random.default_rng(self.seed if self.seed is not None else np.random.randint(2**31 - 1))
        shape = tuple(input_shape)
        self.stem_pad.build(shape)
        shape = self.stem_pad.compute_output_shape(shape)
        self.stem_conv.build(shape)
        shape = self.stem_conv.compute_output_shape(shape)
        self.stem_bn.build(shape)
        s0 = s1 = shape
        for cell in self.cells:
            cell.build(s0, s1)
            s0, s1 = s1, cell.compute_output_shape(s0, s1)
        shape = s1
        for layer in self.tail:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.classifier.build(shape)

        def alpha_list(kind):
            return [
                self.add_weight(
                    shape=(i + 2, len(PRIMITIVES)),
                    initializer=keras.initializers.Constant(
                        ALPHA_INIT_SCALE * rng.standard_normal((i + 2, len(PRIMITIVES))).astype("float32")
                    ),
                    trainable=True,
                    name=f"alpha_{kind}_{i}",
                )
                for i in range(self.num_nodes)
            ]

        self.alpha_normal = alpha_list("normal")
        self.alpha_reduce = alpha_list("reduce")
        self._pytorch_default_init(rng)
        self.set_edge_execution("recompute")
        self.built = True

    def set_edge_execution(self, mode: str = "recompute") -> None:
        """How the mixed edges run inside a ``tf.function`` (the arithmetic is the same):

        - ``"recompute"`` (default): one traced, non-inlined function per distinct edge shape,
          whose backward pass recomputes the edge
          (:class:`~pocketnet_tf.search.mixed_op.SharedEdgeFunctions`): a small step graph
          (fast first step) and only the edges' inputs kept for the backward pass (low memory),
          for one more forward pass of each edge per backward pass.
        - ``"inline"``: every edge traced inline, a copy per forward and backward pass, with all
          of its activations kept for the backward pass.

        A step function traced before the change keeps the mode it was traced with.
        """
        if mode not in EDGE_EXECUTION:
            raise ValueError(f"SearchNetwork: edge execution must be one of {EDGE_EXECUTION}, received {mode!r}")
        self.edge_execution = mode
        self._edge_functions = SharedEdgeFunctions() if mode == "recompute" else None
        for cell in self.cells:
            for op in cell.mixed_ops:
                op._shared_edge_functions = self._edge_functions

    def constant_weights(self):
        """Context manager: forward passes traced inside it give the mixed edges' weights no
        gradient (the architect's w+/w- passes, which need the alpha gradient only). A no-op
        without shared edge functions, where Grappler prunes the unused gradients itself."""
        if self._edge_functions is None:
            return contextlib.nullcontext()
        return self._edge_functions.constant_weights()

    def _pytorch_default_init(self, rng):
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every conv/linear kernel and the linear bias
        (PyTorch's ``kaiming_uniform_(a=sqrt(5))`` default)."""
        for layer in self._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                kernel = layer.kernel
                fan_in = kernel.shape[0] * kernel.shape[1]
            elif isinstance(layer, (keras.layers.Conv2D, GroupedGlobalConv)):
                kernel = layer.kernel
                fan_in = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
            elif isinstance(layer, keras.layers.Dense):
                kernel = layer.kernel
                fan_in = kernel.shape[0]
            else:
                continue
            bound = 1.0 / math.sqrt(fan_in)
            kernel.assign(rng.uniform(-bound, bound, tuple(kernel.shape)).astype(kernel.dtype))
            if getattr(layer, "bias", None) is not None:
                layer.bias.assign(rng.uniform(-bound, bound, tuple(layer.bias.shape)).astype(layer.bias.dtype))

    # ------------------------------------------------------------------------------------------
    @property
    def alphas(self) -> list:
        """The architecture parameters: ``alpha_normal + alpha_reduce``."""
        return list(self.alpha_normal) + list(self.alpha_reduce)

    @property
    def network_weights(self) -> list:
        """Every trainable variable except the alphas (the original's ``net.weights()``)."""
        alpha_ids = {id(a) for a in self.alphas}
        return [v for v in self.trainable_variables if id(v) not in alpha_ids]

    def mixing_weights(self, alphas=None):
        """Row-wise softmax of the alphas: ``(normal, reduce)`` lists of per-node matrices."""
        alphas = self.alphas if alphas is None else list(alphas)
        n = self.num_nodes
        weights = [ops.softmax(ops.convert_to_tensor(a), axis=-1) for a in alphas]
        return weights[:n], weights[n:]

    def call(self, inputs, training=None):
        weights_normal, weights_reduce = self.mixing_weights()
        x = self.stem_conv(self.stem_pad(inputs))
        s0 = s1 = self.stem_bn(x, training=training)
        for cell in self.cells:
            weights = weights_reduce if cell.reduction else weights_normal
            s0, s1 = s1, cell(s0, s1, weights, training=training)
        x = s1
        for layer in self.tail:
            x = layer(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    # ------------------------------------------------------------------------------------------
    def alpha_values(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Current ``(alpha_normal, alpha_reduce)`` as numpy arrays."""
        return (
            [np.asarray(keras.ops.convert_to_numpy(a)) for a in self.alpha_normal],
            [np.asarray(keras.ops.convert_to_numpy(a)) for a in self.alpha_reduce],
        )

    def genotype(self, rank_by: str = "softmax") -> genotypes_lib.Genotype:
        """The discrete genotype of the current alphas (spec §2.6; ``rank_by`` as in
        :func:`pocketnet_tf.genotypes.derive`)."""
        normal, reduce = self.alpha_values()
        return genotypes_lib.derive(normal, reduce, k=2, rank_by=rank_by)

    @property
    def num_edges(self) -> int:
        return edge_count(self.num_nodes)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "num_cells": self.num_cells,
            "num_nodes": self.num_nodes,
            "stem_multiplier": self.stem_multiplier,
            "embedding_size": self.embedding_size,
            "head_width": self.head_width,
            "gdc_groups": self.gdc_groups,
            "input_size": self.input_size,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
