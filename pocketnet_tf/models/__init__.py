"""Derived PocketNet networks, the MobileFaceNet baseline, iResNet teachers and their registry."""

from pocketnet_tf.models.flops import ModelCost, count_cost, count_params
from pocketnet_tf.models.iresnet import IResNet
from pocketnet_tf.models.mobilefacenet import MobileFaceNet
from pocketnet_tf.models.pocketnet import PocketNet, reduction_indices
from pocketnet_tf.models.registry import PRESETS, build, get_preset, list_models

__all__ = [
    "IResNet", "MobileFaceNet", "ModelCost", "PRESETS", "PocketNet", "build", "count_cost",
    "count_params", "get_preset", "list_models", "reduction_indices",
]
