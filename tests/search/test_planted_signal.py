"""A planted signal: on a task only max pooling can solve, the search's alpha picks max pooling.

One search edge (a real :class:`MixedOp` with all eight primitives) between the input and a
linear classifier. The label says whether the maximum of a 3x3 window of channel 0 exceeds the
median of such maxima. Max pooling hands the (linear) classifier that maximum directly; average
pooling, the identity and 'none' cannot express it, the depthwise convolutions (linear maps
after one PReLU) only roughly. The bi-level search (the real SearchModel, architect and optimisers)
must therefore move alpha towards max_pool_3x3.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.search.mixed_op import MixedOp
from tests.factory import compiled_search_model

SIZE, CHANNELS, STEPS, BATCH = 6, 2, 100, 32
THRESHOLD = 1.45  # median of the max of 9 N(0, 1) draws: Phi(1.45)^9 ~ 0.5


class OneEdgeSupernet(keras.Model):
    """input -> MixedOp -> flatten -> Dense(2); one alpha row (the network interface the
    architect and SearchModel use: ``alphas``, ``network_weights``)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.edge = MixedOp(CHANNELS, name="edge")
        self.flatten = keras.layers.Flatten()
        self.classifier = keras.layers.Dense(2, name="classifier")
        self.edge.build((None, SIZE, SIZE, CHANNELS))
        self.flatten.build((None, SIZE, SIZE, CHANNELS))
        self.classifier.build((None, SIZE * SIZE * CHANNELS))
        self.alpha = self.add_weight(shape=(1, len(PRIMITIVES)), name="alpha",
                                     initializer=keras.initializers.RandomNormal(stddev=1e-3))
        self.built = True

    @property
    def alphas(self):
        return [self.alpha]

    @property
    def network_weights(self):
        return [v for v in self.trainable_variables if v is not self.alpha]

    def call(self, inputs, training=None):
        weights = tf.nn.softmax(self.alpha)[0]
        return self.classifier(self.flatten(self.edge(inputs, weights, training=training)))


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SIZE, SIZE, CHANNELS)).astype(np.float32)
    y = (x[:, 1:4, 1:4, 0].max(axis=(1, 2)) > THRESHOLD).astype(np.int32)
    return x, y


@pytest.mark.parametrize("second_order", [True, False])
def test_search_finds_the_planted_operation(second_order):
    keras.utils.set_random_seed(0)
    net = OneEdgeSupernet()
    model = compiled_search_model(net, second_order=second_order, lr=0.05, alpha_lr=0.01)
    (xt, yt), (xv, yv) = _data(STEPS * BATCH, 1), _data(STEPS * BATCH, 2)
    assert 0.45 < yt.mean() < 0.55  # balanced classes
    start = tf.nn.softmax(net.alpha)[0].numpy()
    assert start.max() - start.min() < 0.01  # no op is favoured at the start
    model.fit(tf.data.Dataset.from_tensor_slices(((xt, yt), (xv, yv))).batch(BATCH), epochs=1, verbose=0)
    weights = tf.nn.softmax(net.alpha)[0].numpy()
    ranked = sorted(zip(weights, PRIMITIVES), reverse=True)
    assert ranked[0][1] == "max_pool_3x3", ranked
    assert ranked[0][0] > 2 * ranked[1][0], ranked
