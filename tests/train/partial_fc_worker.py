"""One worker of the Partial FC multi-worker test (run by tests/train/test_partial_fc_train.py, not collected).

``python -m tests.train.partial_fc_worker DIR INDEX PORT0,PORT1`` trains the model of DIR/spec.json
from DIR/init.npz with a sharded head under MultiWorkerMirroredStrategy (one shard per worker);
both workers gather the shards at the end (GatherHeadShards), then worker 0 writes the backbone,
the full head and the losses to DIR/result.npz and a checkpoint to DIR/chief.weights.h5.
"""

import json
import os
import sys


def main(directory, index, ports):
    from tests.train.distributed_worker import join_cluster

    strategy = join_cluster(index, ports)
    import keras
    import numpy as np

    from pocketnet_tf.layers.partial_fc import PartialFCHead
    from pocketnet_tf.train.head_sharding import GatherHeadShards
    from tests.train.test_partial_fc_train import CLASSES, build, set_initial_weights, train_data

    with open(os.path.join(directory, "spec.json")) as f:
        spec = json.load(f)
    with strategy.scope():
        model = build(spec, os.path.join(directory, "teacher"), PartialFCHead(CLASSES))
    assert model.head.num_shards == 2 and len(model.head.kernel.value.values) == 1
    set_initial_weights(model, dict(np.load(os.path.join(directory, "init.npz"))))
    saved = {}

    class SaveOnChief(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if int(index) == 0 and epoch + 1 == spec["epochs"]:
                model.save_weights(os.path.join(directory, "chief.weights.h5"))
                saved["kernel"] = model.head.full_value(model.head.kernel)
                saved["momentum"] = model.head.full_value(model.head.momentum)

    history = model.fit(train_data(spec), epochs=spec["epochs"], verbose=0,
                        callbacks=[GatherHeadShards(), SaveOnChief()])
    if int(index) == 0:
        backbone = {f"backbone_{i}": np.array(w) for i, w in enumerate(model.backbone.weights)}
        np.savez(os.path.join(directory, "result.npz"), **backbone, **saved,
                 loss=np.array(history.history["loss"]).reshape(-1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
