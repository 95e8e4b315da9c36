"""The compiled search step with shared, recomputing edge functions (``edge_execution="recompute"``)
against every edge traced inline and against eager execution: same step, same variables."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.fitting.shape_groups import ShapeGroups
from pocketnet_tf.search.search_network import SearchNetwork
from tests.factory import compiled_search_model, labelled_images, weight_values

#: Four cells (reductions at 1, 2, 3), 2 nodes: every kind of edge, small enough for a unit test.
CONFIG = dict(num_classes=5, channels=2, num_cells=4, num_nodes=2, input_size=32, head_width=16, gdc_groups=4,
              embedding_size=8)


def _network(mode):
    keras.utils.set_random_seed(0)
    net = SearchNetwork(**CONFIG, seed=0)
    rng = np.random.default_rng(3)
    for a in net.alphas:
        a.assign(rng.normal(scale=0.5, size=a.shape).astype("float32"))
    if mode != "eager":
        net.set_edge_execution(mode)
    return net


def _batches():
    return tuple(tuple(tf.constant(t) for t in labelled_images(4, seed=s, size=32, classes=5)) for s in (1, 2))


def _two_steps(mode, original):
    net = _network(mode)
    model = compiled_search_model(net, original=original)
    step = model.train_step if mode == "eager" else tf.function(model.train_step)
    data = _batches()
    for _ in range(2):  # the second step uses the momentum buffers of the first
        step(data)
    return net, model


@pytest.mark.parametrize("original", [False, True], ids=["textbook", "original_ordering"])
def test_compiled_steps_equal_eager_and_inline(original):
    results = {mode: _two_steps(mode, original) for mode in ("eager", "inline", "recompute")}
    eager_net, eager_model = results["eager"]
    reference = weight_values(eager_net.variables) + weight_values(eager_model.optimizer.momentums)
    moved = [not np.allclose(a, b) for a, b in zip(reference, weight_values(_network("eager").variables))]
    assert sum(moved) > 0.9 * len(eager_net.variables)  # weights, alphas and BN statistics all moved
    for mode in ("inline", "recompute"):
        net, model = results[mode]
        values = weight_values(net.variables) + weight_values(model.optimizer.momentums)
        for v, a, b in zip(net.variables + model.optimizer.momentums, values, reference):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6, err_msg=f"{mode}: {v.path}")


def _alpha_and_weight_gradients(net, constant):
    x, y = _batches()[0]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = net.alphas + net.network_weights

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            with net.constant_weights() if constant else contextlib.nullcontext():
                loss = loss_fn(y, net(x, training=True))
        return [tf.zeros(v.shape) if g is None else g for v, g in zip(variables, tape.gradient(loss, variables))]

    grads = [np.asarray(g) for g in gradients()]
    return grads[: len(net.alphas)], grads[len(net.alphas):]


def test_constant_weights_skips_only_the_edge_weight_gradients():
    net = _network("recompute")
    edge_ids = {id(v) for cell in net.cells for op in cell.mixed_ops for v in op.trainable_variables}
    alpha_full, weight_full = _alpha_and_weight_gradients(net, constant=False)
    net.set_edge_execution("recompute")  # a fresh set of functions, traced inside constant_weights()
    alpha_const, weight_const = _alpha_and_weight_gradients(net, constant=True)
    for a, b in zip(alpha_const, alpha_full):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
        assert np.abs(b).max() > 0
    for v, full, const in zip(net.network_weights, weight_full, weight_const):
        if id(v) in edge_ids:
            assert not const.any(), v.path
        else:  # stem, pre-processing, tail: untouched by the context
            np.testing.assert_allclose(const, full, rtol=1e-5, atol=1e-8)
    assert any(np.abs(g).max() > 0 for v, g in zip(net.network_weights, weight_full) if id(v) in edge_ids)


def _step_graph(mode):
    net = _network(mode)
    model = compiled_search_model(net)
    return tf.function(model.train_step).get_concrete_function(_batches()).graph


def test_step_graph_holds_one_noinline_function_set_per_distinct_edge():
    graph = _step_graph("recompute")
    library = graph.as_graph_def().library.function
    # (XLA-compiled functions -- the PReLU kernels -- are non-inlined too: not counted.)
    noinline = [f for f in library if "_noinline" in f.attr and f.attr["_noinline"].b and "_XlaMustCompile" not in f.attr]
    net = _network("recompute")
    distinct = {(op.filters, op.strides) for cell in net.cells for op in cell.mixed_ops}
    # Per distinct edge: one forward, and a backward with and one without weight gradients (w+/w-).
    assert len(noinline) == 3 * len(distinct), sorted(f.signature.name for f in noinline)
    # Everything traced: the step graph and the function bodies it calls (every network pass is a
    # call of the architect's function, so the difference is inside the functions).
    def traced_nodes(g):
        definition = g.as_graph_def()
        return len(definition.node) + sum(len(f.node_def) for f in definition.library.function)

    assert traced_nodes(graph) < traced_nodes(_step_graph("inline")) / 2


def test_per_weight_arithmetic_is_traced_once_per_shape():
    """The virtual step, the w+/w- perturbation, the finite-difference norm and the optimiser's
    clipping and decay run on the weights stacked by shape, not once per weight (the paper
    network: 1,532 weights, 46 shapes; 53,393 -> 25,572 ops in its step graph)."""
    net = _network("recompute")
    model = compiled_search_model(net, original=False)
    graph = tf.function(model.train_step).get_concrete_function(_batches()).graph
    weights = len(net.network_weights)
    shapes = len(ShapeGroups(net.network_weights))
    assert shapes < weights / 8  # 40 shapes, 344 weights
    # Arithmetic outside the network's own layers: the architect's (top-level names) and the
    # weight optimiser's. Per weight it was about 18 ops (6,000 here); per shape it is 17.
    arithmetic = [op for op in graph.get_operations()
                  if op.type in ("Mul", "AddV2", "Sub", "Square", "L2Loss", "Sum")
                  and not op.name.startswith(("search_network", "gradient_tape", "torch_adam"))]
    assert len(arithmetic) < 20 * shapes, len(arithmetic)
    types = [op.type for op in graph.get_operations()]
    assert types.count("ResourceApplyMomentum") == weights  # one fused update per weight remains


@pytest.mark.parametrize("mode", ["recompute", "inline"])
def test_every_network_pass_of_the_step_goes_through_one_traced_function(mode):
    """The weight step reuses the architect's traced loss (virtual step, unrolled validation,
    w+, w-, weight step: five calls of its two variants), so the step graph itself traces no
    network: no layer of the network is built in it outside those calls."""
    net = _network(mode)
    model = compiled_search_model(net, original=False)
    graph = tf.function(model.train_step).get_concrete_function(_batches()).graph
    calls = [op for op in graph.get_operations() if op.type in ("PartitionedCall", "StatefulPartitionedCall")
             and "stateless_loss_impl" in op.get_attr("f").name and "backward" not in op.get_attr("f").name]
    assert len(calls) == 5, [op.get_attr("f").name for op in calls]
    network_ops = [op.name for op in graph.get_operations() if op.name.startswith("search_network")]
    assert not network_ops, network_ops[:10]
