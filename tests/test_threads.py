"""``pocketnet_tf.threads``: the pools are set before TensorFlow starts, and a late call says so
instead of failing or pretending; the Grappler passes reach the functions first called in the block."""

import json
import os
import subprocess
import sys

import pytest

from pocketnet_tf.threads import configure_threads, graph_optimizer_passes

SCRIPT = """
import json, logging
from absl import logging as absl_logging
import tensorflow as tf
from pocketnet_tf.threads import configure_threads
messages = []
class Keep(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())
absl_logging.get_absl_logger().addHandler(Keep())
first = configure_threads(3, 1)
tf.reduce_sum(tf.ones((4, 4))).numpy()  # the runtime starts with the pools above
late = configure_threads(2, 2)
print(json.dumps({"first": first, "late": late,
                  "in_use": [tf.config.threading.get_inter_op_parallelism_threads(),
                             tf.config.threading.get_intra_op_parallelism_threads()],
                  "messages": messages}))
"""


def test_pools_set_before_the_runtime_starts_and_kept_after():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["first"] == {"inter_op": 3, "intra_op": 1}
    # Too late to change: the sizes in use are reported, with a warning for each one asked to change.
    assert result["late"] == {"inter_op": 3, "intra_op": 1} and result["in_use"] == [3, 1]
    assert len(result["messages"]) == 2
    assert all("already running" in m for m in result["messages"])
    assert "inter_op threads stay 3 (asked for 2)" in result["messages"][0]


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_bad_sizes_are_refused(value):
    with pytest.raises(ValueError, match="non-negative int"):
        configure_threads(value, 1)
    with pytest.raises(ValueError, match="intra_op threads must be"):
        configure_threads(0, value)


# Grappler logs each round of its meta-optimizer (model_pruner is the first pass of every round)
# under its item's name: f is first called inside the block, g after it.
PASSES_SCRIPT = """
import sys
import tensorflow as tf
from pocketnet_tf.threads import graph_optimizer_passes

@tf.function
def f(x):
    return tf.reduce_sum(tf.nn.relu(x * 2.0 + 1.0))

@tf.function
def g(x):
    return tf.reduce_sum(tf.nn.relu(x * 2.0 + 1.0))

with graph_optimizer_passes(int(sys.argv[1])) as passes:
    inside = float(f(tf.ones((4, 4))))
after = float(g(tf.ones((4, 4))))
print("RESULT", passes, inside, after, flush=True)
"""


def _rounds_per_function(log: str) -> dict:
    rounds, item = {}, None
    for line in log.splitlines():
        if "Starting optimization for grappler item: " in line:
            item = line.rsplit(": ", 1)[1].strip()
            rounds[item] = 0
        elif item and "] model_pruner: " in line:
            rounds[item] += 1
        elif "Optimized main graph" in line:
            item = None
    return {name.split("_")[-2]: n for name, n in rounds.items()}  # __inference_f_16 -> f


@pytest.mark.parametrize("passes, expected_f", [(1, 1), (2, 2), (0, 2)])
def test_graph_optimizer_passes_reach_grappler_inside_the_block_only(passes, expected_f):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "meta_optimizer=1"}
    out = subprocess.run([sys.executable, "-c", PASSES_SCRIPT, str(passes)], capture_output=True, text=True,
                         timeout=300, check=False, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")][0].split()
    assert result[1:] == [str(passes), "48.0", "48.0"]  # same arithmetic: 16 x relu(3)
    # f: the rounds asked for (0 = TensorFlow's default, two); g, called after the block: the default again.
    assert _rounds_per_function(out.stderr) == {"f": expected_f, "g": 2}, out.stderr[-3000:]


def test_graph_optimizer_passes_restore_the_threads_options_even_on_error():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    before = ctx.function_call_options.config_proto_serialized
    with pytest.raises(RuntimeError, match="inside"):
        with graph_optimizer_passes(1) as passes:
            assert passes == 1
            inside = config_pb2.ConfigProto.FromString(ctx.function_call_options.as_attrs()["config_proto"])
            raise RuntimeError("inside")
    assert inside.graph_options.rewrite_options.meta_optimizer_iterations == 1  # ONE
    # Everything else of the thread's options is kept (e.g. soft placement, which functions default to).
    expected = config_pb2.ConfigProto.FromString(before)
    assert expected.allow_soft_placement
    expected.graph_options.rewrite_options.meta_optimizer_iterations = 1
    assert inside == expected
    assert ctx.function_call_options.config_proto_serialized == before


@pytest.mark.parametrize("value", [-1, 3, 1.5, True, "1"])
def test_bad_graph_optimizer_passes_are_refused(value):
    with pytest.raises(ValueError, match=r"graph optimizer passes must be one of \(0, 1, 2\)"):
        with graph_optimizer_passes(value):
            pass
