"""Serialisable Keras layers of pocketnet_tf."""

from pocketnet_tf.layers.common import DepthwiseUniform, batch_norm, conv1x1, depthwise, prelu
from pocketnet_tf.layers.gdc import GroupedGlobalConv, embedding_tail
from pocketnet_tf.layers.primitives import DWConv, FactorizedReduce, PoolBN, StdConv, Zero

__all__ = [
    "DWConv", "FactorizedReduce", "GroupedGlobalConv", "PoolBN", "StdConv", "Zero", "DepthwiseUniform",
    "batch_norm", "conv1x1", "depthwise", "embedding_tail", "prelu",
]
