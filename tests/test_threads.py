"""``pocketnet_tf.threads.configure_threads``: the pools are set before TensorFlow starts, and a
late call says so instead of failing or pretending."""

import json
import subprocess
import sys

import pytest

from pocketnet_tf.threads import configure_threads

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
