"""The export graph computes what the Keras model computes (fp32, before any conversion)."""

import keras
import numpy as np
import pytest

from pocketnet_tf.data.preprocess import normalize
from pocketnet_tf.export import rewrite
from pocketnet_tf.layers import common
from tests import factory

# The rewrites reorder float32 arithmetic (A*x + B*|x| instead of relu(x) - alpha*relu(-x);
# kernels pre-multiplied by A and B): differences are rounding, ~1e-7 relative per op and a few
# ulps after ~20 layers. 1e-5 of the output scale is far below any real error (a wrong slope or
# a dropped half moves outputs by O(1) of their scale).
RTOL_OF_SCALE = 1e-5


def _close(out, ref):
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out, ref, rtol=0, atol=RTOL_OF_SCALE * scale)


@pytest.mark.parametrize("how", ["decompose", "fold"])
@pytest.mark.parametrize("builder", [factory.tiny_pocketnet, factory.tiny_plain])
def test_prelu_rewrite_equals_original_in_fp32(builder, how):
    model = builder()
    types_before = [type(layer) for layer in model._flatten_layers()]
    x = normalize(factory.pixels(3, seed=1))
    # Inputs reach both signs of every PReLU (so both slopes are exercised).
    ref = np.asarray(model(x, training=False))
    export, info = rewrite.build_export_model(model, prelu=how, batch_size=None)
    # Every PReLU is either folded into its primitive or decomposed; none is left as PRELU.
    assert info["prelu_counts"]["kept"] == 0
    assert info["prelu_counts"]["folded"] + info["prelu_counts"]["decomposed"] == rewrite.count_prelus(model)
    _close(np.asarray(export(x)), ref)
    # The trained model is untouched: the same layer classes, same outputs.
    assert [type(layer) for layer in model._flatten_layers()] == types_before
    assert any(t in (keras.layers.PReLU, common.PReLU) for t in types_before)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), ref)


def export_layer(model, info, name):
    return next(layer for layer in info["export_model"]._flatten_layers() if layer.name == name)


def test_fold_covers_every_pocketnet_primitive_and_the_head_conv():
    model = factory.tiny_pocketnet()
    export, info = rewrite.build_export_model(model, prelu="fold")
    info = dict(info, export_model=export)
    # Every PReLU inside a DWConv/StdConv/FactorizedReduce is folded, and so is the head's first
    # PReLU (its consumer is the 1x1 tail conv); only the one before the global depthwise conv is
    # decomposed.
    assert info["prelu_counts"]["decomposed"] == 1
    assert info["prelu_counts"]["folded"] + 1 == rewrite.count_prelus(model)
    assert type(export_layer(model, info, "tail_1_conv")).__name__ == "_FoldedConv2D"
    _, info = rewrite.build_export_model(model, prelu="decompose")
    assert info["prelu_counts"] == {"folded": 0, "decomposed": rewrite.count_prelus(model), "kept": 0}


def test_a_wrong_slope_is_detected():
    """Negative control: the comparison above has teeth."""
    model = factory.tiny_plain()
    x = normalize(factory.pixels(2, seed=1))
    ref = np.asarray(model(x))
    export, _ = rewrite.build_export_model(model, prelu="decompose", batch_size=None)
    prelu = next(layer for layer in export._flatten_layers() if isinstance(layer, keras.layers.PReLU))
    prelu.alpha.assign(prelu.alpha.numpy() + 0.05)
    with pytest.raises(AssertionError):
        _close(np.asarray(export(x)), ref)


def test_raw_input_folding_equals_normalise_then_model():
    model = factory.tiny_pocketnet()
    pixels = factory.pixels(3, seed=2)
    ref = np.asarray(model(normalize(pixels), training=False))
    export, info = rewrite.build_export_model(model, raw_input=True, batch_size=None)
    assert info["raw_input"]
    _close(np.asarray(export(pixels.astype(np.float32))), ref)


def test_l2_output_and_static_batch():
    model = factory.tiny_plain()
    x = normalize(factory.pixels(1, seed=4))
    export, _ = rewrite.build_export_model(model, l2_normalize=True)
    assert tuple(export.inputs[0].shape) == (1, factory.EXPORT_SIZE, factory.EXPORT_SIZE, 3)
    ref = np.asarray(model(x))
    np.testing.assert_allclose(np.asarray(export(x)), ref / np.linalg.norm(ref), rtol=0, atol=1e-6)


def test_bad_rewrite_name_and_bad_input_shape():
    model = factory.tiny_plain()
    with pytest.raises(ValueError, match="prelu rewrite"):
        rewrite.build_export_model(model, prelu="relu")
    inp = keras.Input((None, None, 3))
    flat = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(inp))
    with pytest.raises(ValueError, match="static H and W"):
        rewrite.build_export_model(flat)
