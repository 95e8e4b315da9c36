"""ShapeGroups: element-wise arithmetic over many tensors, one op per shape."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from pocketnet_tf.fitting.shape_groups import ShapeGroups

SHAPES = st.lists(st.sampled_from([(3,), (2, 2), (1, 1, 4), (), (2, 2)]), min_size=1, max_size=9)


def _tensors(shapes, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [tf.constant(rng.normal(size=s).astype(dtype)) for s in shapes]


@settings(max_examples=25, deadline=None)
@given(shapes=SHAPES, seed=st.integers(0, 1000))
def test_map_is_the_per_tensor_arithmetic_bit_for_bit(shapes, seed):
    a, b = _tensors(shapes, seed), _tensors(shapes, seed + 1)
    groups = ShapeGroups(a)
    assert len(groups) == len(set(shapes))
    assert sorted(i for g in groups.groups for i in g) == list(range(len(shapes)))
    out = groups.map(lambda x, y: x - 0.3 * (y + 1e-3 * x), a, b)
    for x, y, o in zip(a, b, out):
        assert o.shape == x.shape
        np.testing.assert_array_equal(o.numpy(), (x - 0.3 * (y + 1e-3 * x)).numpy())
    # stack / unstack round trip keeps every tensor in its place
    for x, r in zip(a, groups.unstack(groups.stack(a))):
        np.testing.assert_array_equal(x.numpy(), r.numpy())
    expected = sum(float(np.sum(np.square(x.numpy().astype(np.float64)))) for x in a)
    np.testing.assert_allclose(float(groups.sum_of_squares(a)), expected, rtol=1e-5)


def test_dtypes_are_grouped_apart_and_kept():
    a = [tf.zeros((2,), tf.float32), tf.zeros((2,), tf.float64), tf.ones((2,), tf.float32)]
    groups = ShapeGroups(a)
    assert groups.groups == [[0, 2], [1]]
    out = groups.map(lambda x: x + 1, a)
    assert [t.dtype for t in out] == [tf.float32, tf.float64, tf.float32]
    np.testing.assert_array_equal(out[2].numpy(), [2.0, 2.0])
    assert float(groups.sum_of_squares(a, tf.float64)) == pytest.approx(2.0)


def test_traced_arithmetic_is_one_op_per_shape():
    shapes = [(3, 4)] * 20 + [(5,)] * 10
    groups = ShapeGroups(_tensors(shapes, 0))

    @tf.function
    def step(ws, gs):
        return groups.map(lambda w, g: w - 0.1 * (g + 1e-4 * w), ws, gs)

    specs = [tf.TensorSpec(s, tf.float32) for s in shapes]
    ops = [op.type for op in step.get_concrete_function(specs, specs).graph.get_operations()]
    assert ops.count("Mul") == 2 * 2 and ops.count("Sub") == 2  # two shapes, not thirty tensors
    assert ops.count("Pack") == 4 and ops.count("Unpack") == 2


def test_unknown_shapes_are_never_stacked_and_lengths_are_checked():
    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec((2,), tf.float32)])
    def f(x, y):
        groups = ShapeGroups([x, y])
        assert groups.groups == [[1], [0]]
        return groups.map(lambda a: a * 2, [x, y])

    out = f(tf.constant([1.0, 2.0, 3.0]), tf.constant([4.0, 5.0]))
    np.testing.assert_array_equal(out[0].numpy(), [2, 4, 6])
    np.testing.assert_array_equal(out[1].numpy(), [8, 10])
    with pytest.raises(ValueError, match="expected 2 tensors, received 1"):
        ShapeGroups([tf.zeros(2), tf.zeros(3)]).stack([tf.zeros(2)])
