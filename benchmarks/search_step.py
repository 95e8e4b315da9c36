"""Step time and peak memory of the architecture search, first- vs second-order DARTS.

Usage: python benchmarks/search_step.py [--batch_size 32] [--steps 3] [--orders first,second]
                                        [--channels 16 --num_cells 8 --num_nodes 4 --input_size 112]
                                        [--num_classes 10572] [--original_ordering] [--json]

Defaults are the paper's search network (C=16, 8 cells, 4 nodes, stem x3, 112x112, 10,572
classes: 4,156,316 weights + 224 alphas) at batch 32 per half. Each order runs in its own
process (so its peak resident memory is its own): build, one untimed step (tracing and graph
optimisation, reported as "first step"), then ``--steps`` timed steps of the compiled
``SearchModel.train_step`` on random data; the median is reported. Peak memory is the process'
maximum resident set size (includes TensorFlow itself, ~0.5 GB). Figures depend on the machine
and on what else runs on it (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _measure(args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from pocketnet_tf.search.optimizers import TorchAdam
    from pocketnet_tf.search.search_model import SearchModel
    from pocketnet_tf.search.search_network import SearchNetwork
    from pocketnet_tf.train.optimizer import TorchSGD

    keras.utils.set_random_seed(0)
    started = time.time()
    net = SearchNetwork(args.num_classes, channels=args.channels, num_cells=args.num_cells, num_nodes=args.num_nodes,
                        input_size=args.input_size)
    built = time.time() - started
    model = SearchModel(net, second_order=args.order == "second",
                        alpha_grad_includes_train_loss=args.original_ordering)
    model.compile(TorchSGD(0.1, momentum=0.9, weight_decay=3e-4, clip_norm=5.0),
                  TorchAdam(1.2e-3, beta_1=0.5, beta_2=0.999, coupled_weight_decay=1e-3))
    rng = np.random.default_rng(0)

    def half():
        x = rng.uniform(-1, 1, (args.batch_size, args.input_size, args.input_size, 3)).astype(np.float32)
        y = rng.integers(0, args.num_classes, args.batch_size).astype(np.int32)
        return tf.constant(x), tf.constant(y)

    data = (half(), half())
    step = tf.function(model.train_step)
    t = time.time()
    logs = step(data)
    float(logs["loss"])
    first = time.time() - t
    times = []
    for _ in range(args.steps):
        t = time.time()
        logs = step(data)
        float(logs["loss"])
        times.append(time.time() - t)
    return {
        "order": args.order,
        "original_ordering": args.original_ordering,
        "batch_size": args.batch_size,
        "input_size": args.input_size,
        "weights": int(sum(int(np.prod(v.shape)) for v in net.network_weights)),
        "alphas": int(sum(int(np.prod(v.shape)) for v in net.alphas)),
        "build_s": round(built, 1),
        "first_step_s": round(first, 1),
        "step_s_median": round(float(np.median(times)), 3),
        "step_s_all": [round(x, 3) for x in times],
        "images_per_s": round(2 * args.batch_size / float(np.median(times)), 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--orders", default="first,second")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--num_cells", type=int, default=8)
    parser.add_argument("--num_nodes", type=int, default=4)
    parser.add_argument("--input_size", type=int, default=112)
    parser.add_argument("--num_classes", type=int, default=10572)
    parser.add_argument("--original_ordering", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--order", help=argparse.SUPPRESS)  # internal: measure one order in this process
    args = parser.parse_args()
    if args.order:
        print(json.dumps(_measure(args)))
        return
    results = []
    for order in args.orders.split(","):
        cmd = [sys.executable, __file__, f"--order={order}"] + [
            f"--{k}={getattr(args, k)}" for k in ("batch_size", "steps", "channels", "num_cells", "num_nodes",
                                                  "input_size", "num_classes")
        ] + (["--original_ordering"] if args.original_ordering else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{order}-order run failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"results": results, "load_average": load}, indent=2))
        return
    print(f"search network: {results[0]['weights']:,} weights + {results[0]['alphas']} alphas, "
          f"{args.input_size}x{args.input_size}, batch {args.batch_size} per half; load average {load[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    for r in results:
        print(f"{r['order']:>6}-order: build {r['build_s']} s, first step {r['first_step_s']} s, step "
              f"{r['step_s_median']} s (median of {len(r['step_s_all'])}: {r['step_s_all']}), "
              f"{r['images_per_s']} img/s, peak RSS {r['peak_rss_gb']} GB")


if __name__ == "__main__":
    main()
