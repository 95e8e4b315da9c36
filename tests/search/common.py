"""Tiny search networks and data shared by the search tests (each test file also runs alone)."""

from __future__ import annotations

import keras
import numpy as np

from pocketnet_tf.search.optimizers import TorchAdam
from pocketnet_tf.search.search_model import SearchModel
from pocketnet_tf.search.search_network import SearchNetwork
from pocketnet_tf.train.optimizer import TorchSGD

#: 3 cells (reductions at 1 and 2), one node per cell (2 mixed edges), 16x16 input -> 2x2 map.
TINY = dict(num_classes=3, channels=4, num_cells=3, num_nodes=1, input_size=16, head_width=8, gdc_groups=2,
            embedding_size=4)


def tiny_network(seed: int = 0, **overrides) -> SearchNetwork:
    keras.utils.set_random_seed(seed)
    return SearchNetwork(**{**TINY, "seed": seed, **overrides})


def compiled(network, *, second_order=True, original=False, lr=0.1, momentum=0.9, weight_decay=3e-4,
             clip_norm=5.0, alpha_lr=1.2e-3, alpha_weight_decay=1e-3) -> SearchModel:
    model = SearchModel(network, second_order=second_order, alpha_grad_includes_train_loss=original)
    model.compile(
        weight_optimizer=TorchSGD(lr, momentum=momentum, weight_decay=weight_decay, clip_norm=clip_norm),
        alpha_optimizer=TorchAdam(alpha_lr, beta_1=0.5, beta_2=0.999, coupled_weight_decay=alpha_weight_decay),
    )
    return model


def batch(n: int, seed: int, size: int = 16, classes: int = 3, dtype="float32"):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, size, size, 3)).astype(dtype)
    y = (np.arange(n) % classes).astype(np.int32)
    return x, y


def values(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
