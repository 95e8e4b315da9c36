"""One worker of the multi-worker test (run by tests/train/test_distribute.py, not collected).

``python -m tests.train.distributed_worker DIR INDEX PORT0,PORT1`` sets TF_CONFIG for a
two-worker cluster on 127.0.0.1, trains the model described in DIR/spec.json from DIR/init.weights.h5
under MultiWorkerMirroredStrategy, and (worker 0) writes the final weights to DIR/result.npz.
"""

import json
import os
import sys


def join_cluster(index, ports):
    """Sets TF_CONFIG for worker ``index`` of a cluster on 127.0.0.1 ``ports`` and returns its
    MultiWorkerMirroredStrategy (call before any other TF op)."""
    os.environ["TF_CONFIG"] = json.dumps({
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports.split(",")]},
        "task": {"type": "worker", "index": int(index)},
    })
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def main(directory, index, ports):
    strategy = join_cluster(index, ports)
    import numpy as np

    from tests.train.test_distribute import build, train_data

    with open(os.path.join(directory, "spec.json")) as f:
        spec = json.load(f)
    with strategy.scope():
        model = build(spec, teacher=os.path.join(directory, "teacher"))
    model.load_weights(os.path.join(directory, "init.weights.h5"))
    history = model.fit(train_data(spec), epochs=spec["epochs"], verbose=0)
    if int(index) == 0:
        np.savez(os.path.join(directory, "result.npz"), *[np.array(w) for w in model.weights],
                 loss=np.array(history.history["loss"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
