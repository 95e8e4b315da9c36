"""layers/gdc.py: the grouped global convolution and the GDC embedding tail of both networks."""

from pathlib import Path

import keras
import numpy as np
import pytest

from pocketnet_tf.layers.gdc import GroupedGlobalConv, embedding_tail
from tests import factory, helpers

DATA = Path(__file__).parent / "data"
TAIL_NAMES = ["tail_0_prelu", "tail_1_conv", "tail_2_bn", "tail_3_prelu", "tail_4_gdc", "tail_5_bn", "tail_6_conv",
              "tail_7_bn", "embedding"]


def test_grouped_global_conv_harness_and_value_against_a_grouped_conv2d(tmp_path):
    x = factory.random_images(2, 3, channels=8)
    helpers.run_layer_test(lambda: GroupedGlobalConv(6, 2, name="gdc"), x, tmp_path, expected_output_shape=(2, 1, 1, 6),
                           expected_num_trainable_weights=1, expected_num_non_trainable_weights=0)
    layer = GroupedGlobalConv(6, 2)
    layer.build(x.shape)
    layer.kernel.assign(np.random.default_rng(4).normal(size=(3, 3, 4, 6)).astype(np.float32))
    reference = keras.layers.Conv2D(6, 3, groups=2, use_bias=False)
    reference.build(x.shape)
    reference.kernel.assign(np.asarray(layer.kernel))
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(reference(x)), rtol=1e-5, atol=1e-5)


def test_keras_file_saved_when_the_layer_lived_in_search_still_loads():
    """``grouped_gdc_v1.keras`` was written by ``pocketnet_tf.search.grouped_gdc.GroupedGlobalConv``
    (module path stored in the file); the registered name ``pocketnet_tf>GroupedGlobalConv`` is
    what loading resolves, so the moved class reads it with the same outputs."""
    assert keras.saving.get_registered_name(GroupedGlobalConv) == "pocketnet_tf>GroupedGlobalConv"
    loaded = keras.saving.load_model(DATA / "grouped_gdc_v1.keras")
    assert type(loaded.get_layer("tail_4_gdc")) is GroupedGlobalConv
    x = np.linspace(-1, 1, 2 * 2 * 2 * 4, dtype=np.float32).reshape(2, 2, 2, 4)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.load(DATA / "grouped_gdc_v1_out.npy"), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs, gdc_type", [({"map_size": (2, 2)}, keras.layers.DepthwiseConv2D),
                                              ({"groups": 2}, GroupedGlobalConv)], ids=["derived", "search"])
def test_embedding_tail_names_order_and_shapes(kwargs, gdc_type):
    tail = embedding_tail(8, 5, **kwargs)
    assert [layer.name for layer in tail] == TAIL_NAMES
    assert isinstance(tail[4], gdc_type)
    x = keras.ops.convert_to_tensor(factory.random_images(2, 2, channels=3))
    for layer in tail:
        x = layer(x)
    assert tuple(x.shape) == (2, 5)
    # PReLU 0.25 slopes, 1x1 convs without bias, BN with PyTorch's epsilon/momentum.
    assert np.all(np.asarray(tail[0].alpha) == 0.25) and tail[1].use_bias is False
    assert (tail[2].epsilon, tail[2].momentum) == (1e-5, 0.9)


def test_embedding_tail_needs_exactly_one_gdc_kind():
    with pytest.raises(ValueError, match="exactly one of map_size and groups"):
        embedding_tail(8, 5)
    with pytest.raises(ValueError, match="exactly one of map_size and groups"):
        embedding_tail(8, 5, map_size=(2, 2), groups=2)
