"""Step time and peak memory of the architecture search, first- vs second-order DARTS.

Usage: python benchmarks/search_step.py [--batch_size 32] [--steps 3] [--orders first,second]
                                        [--channels 16 --num_cells 8 --num_nodes 4 --input_size 112]
                                        [--num_classes 10572] [--original_ordering] [--json]
                                        [--compare_torch] [--edge_execution recompute|inline]
                                        [--inter_op_threads 0] [--intra_op_threads 1]
                                        [--graph_optimizer_passes 1] [--allocator auto]
                                        [--torch_allocator glibc]

Defaults are the paper's search network (C=16, 8 cells, 4 nodes, stem x3, 112x112, 10,572
classes: 4,156,316 weights + 224 alphas) at batch 32 per half. Each order runs in its own
process (so its peak resident memory is its own): build, one untimed step (tracing and graph
optimisation, reported as "first step", with its tracing alone, its system CPU time and page
faults), then ``--steps`` timed steps of the compiled
``SearchModel.train_step`` on random data; the median is reported. Peak memory is the process'
maximum resident set size (includes TensorFlow itself, ~0.5 GB). Figures depend on the machine
and on what else runs on it (the load average is printed); the process CPU time (user + system,
all threads) of the first step and of the steps is printed too: on a shared machine it varies far
less with the load than the wall time does.

``--compare_torch`` measures the second-order step twice, ours and the PyTorch reference of the
same step (``tests/torch_search_reference.py``: the original's Architect with a deep-copied
virtual network and in-place w+/w- perturbation, then the weight step; test-only torch, as many
intra-op threads as CPUs unless ``--torch_threads``), each in its own process, and prints both and the ratios ours / torch
(step time, peak RSS, first step).

``--edge_execution`` is the search's flag of the same name: ``recompute`` (default; one shared
function per distinct edge, activations recomputed in the backward pass) or ``inline`` (every
edge traced inline, activations kept: the step before issue #17's changes).
``--inter_op_threads`` / ``--intra_op_threads`` are the search's flags of the same names
(TensorFlow's thread pools; defaults 0 = one per CPU, and 1), set before TensorFlow starts;
``--graph_optimizer_passes`` too (rounds of Grappler's meta-optimizer on the step's first call;
default 1, 0 = TensorFlow's default of two); ``--allocator`` too (auto: jemalloc, else tcmalloc, if
installed, else glibc's malloc); ``--torch_allocator`` is the PyTorch reference's (default glibc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pocketnet_tf.allocator import ALLOCATORS, loaded_allocator, preload_and_reexec  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _measure(args) -> dict:
    from pocketnet_tf.threads import configure_threads, graph_optimizer_passes

    threads = configure_threads(args.inter_op_threads, args.intra_op_threads)
    with graph_optimizer_passes(args.graph_optimizer_passes) as passes:
        return {**_measure_steps(args), "threads": threads, "graph_optimizer_passes": passes}


def _measure_steps(args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from pocketnet_tf.search.optimizers import TorchAdam
    from pocketnet_tf.search.search_model import SearchModel
    from pocketnet_tf.search.search_network import SearchNetwork
    from pocketnet_tf.fitting.torch_sgd import TorchSGD

    keras.utils.set_random_seed(0)
    started = time.time()
    net = SearchNetwork(args.num_classes, channels=args.channels, num_cells=args.num_cells, num_nodes=args.num_nodes,
                        input_size=args.input_size)
    net.set_edge_execution(args.edge_execution)
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
    t, c, usage = time.time(), _cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
    step.get_concrete_function(data)  # tracing alone; the call below optimises, instantiates and runs it
    traced = time.time() - t
    logs = step(data)
    float(logs["loss"])
    first, first_cpu = time.time() - t, _cpu_seconds() - c
    after = resource.getrusage(resource.RUSAGE_SELF)
    times, cpu = [], []
    for _ in range(args.steps):
        t, c = time.time(), _cpu_seconds()
        logs = step(data)
        float(logs["loss"])
        times.append(time.time() - t)
        cpu.append(_cpu_seconds() - c)
    return {
        "order": args.order,
        "allocator": loaded_allocator(),
        "edge_execution": args.edge_execution,
        "original_ordering": args.original_ordering,
        "batch_size": args.batch_size,
        "input_size": args.input_size,
        "weights": int(sum(int(np.prod(v.shape)) for v in net.network_weights)),
        "alphas": int(sum(int(np.prod(v.shape)) for v in net.alphas)),
        "build_s": round(built, 1),
        "first_step_s": round(first, 1),
        "first_step_cpu_s": round(first_cpu, 1),
        "trace_s": round(traced, 1),
        # The kernel's share of the first step: mostly zeroing the pages the step touches for the
        # first time (its peak memory); on a virtual machine a page's first touch can cost 10x more.
        "first_step_system_cpu_s": round(after.ru_stime - usage.ru_stime, 1),
        "first_step_page_faults": after.ru_minflt - usage.ru_minflt,
        "step_s_median": round(float(np.median(times)), 3),
        "step_cpu_s_median": round(float(np.median(cpu)), 3),
        "step_s_all": [round(x, 3) for x in times],
        # What the first step costs beyond a step: tracing, graph optimisation, instantiation.
        "first_step_overhead_s": round(first - float(np.median(times)), 1),
        "images_per_s": round(2 * args.batch_size / float(np.median(times)), 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def _measure_torch(args) -> dict:
    import numpy as np
    import torch

    from tests import torch_search_reference as ref

    torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    started = time.time()
    net = ref.SearchCNN(args.num_classes, channels=args.channels, num_cells=args.num_cells,
                        num_nodes=args.num_nodes, input_size=args.input_size)
    with torch.no_grad():
        for a in net.alphas():
            a.normal_(0.0, 1e-3)
    built = time.time() - started
    architect = ref.Architect(net)
    w_optim, a_optim = ref.optimizers(net)
    gen = torch.Generator().manual_seed(0)

    def half():
        x = torch.rand((args.batch_size, 3, args.input_size, args.input_size), generator=gen) * 2 - 1
        return x, torch.randint(0, args.num_classes, (args.batch_size,), generator=gen)

    trn, val = half(), half()
    times, cpu, usage = [], [], [resource.getrusage(resource.RUSAGE_SELF)]
    for _ in range(args.steps + 1):
        t, c = time.time(), _cpu_seconds()
        float(ref.search_step(net, architect, w_optim, a_optim, trn, val))
        times.append(time.time() - t)
        cpu.append(_cpu_seconds() - c)
        usage.append(resource.getrusage(resource.RUSAGE_SELF))
    first, times = times[0], times[1:]
    first_cpu, cpu = cpu[0], cpu[1:]
    return {
        "order": "second (torch)", "allocator": loaded_allocator(), "original_ordering": False, "batch_size": args.batch_size,
        "input_size": args.input_size,
        "weights": int(sum(p.numel() for p in net.weights())), "alphas": int(sum(a.numel() for a in net.alphas())),
        "build_s": round(built, 1), "first_step_s": round(first, 1), "first_step_cpu_s": round(first_cpu, 1),
        "first_step_system_cpu_s": round(usage[1].ru_stime - usage[0].ru_stime, 1),
        "first_step_page_faults": usage[1].ru_minflt - usage[0].ru_minflt,
        "step_s_median": round(float(np.median(times)), 3), "step_cpu_s_median": round(float(np.median(cpu)), 3),
        "step_s_all": [round(x, 3) for x in times],
        "images_per_s": round(2 * args.batch_size / float(np.median(times)), 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


def _ratios(ours: dict, torch_result: dict) -> dict:
    return {key: round(ours[key] / max(torch_result[key], 1e-9), 2)
            for key in ("step_s_median", "peak_rss_gb", "first_step_s", "step_cpu_s_median", "first_step_cpu_s")}


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
    parser.add_argument("--compare_torch", action="store_true",
                        help="second order only: ours against the PyTorch reference of the same step")
    parser.add_argument("--torch_threads", type=int, default=0,
                        help="intra-op threads of the PyTorch reference (0: one per CPU; on a loaded machine "
                             "1 avoids OpenMP spin-waiting, which slowed a step ~70x here)")
    parser.add_argument("--edge_execution", choices=("recompute", "inline"), default="recompute",
                        help="how the mixed edges run in the compiled step (the search's flag of the same name)")
    parser.add_argument("--inter_op_threads", type=int, default=0,
                        help="TensorFlow inter-op threads (the search's flag of the same name; 0: one per CPU)")
    parser.add_argument("--intra_op_threads", type=int, default=1,
                        help="TensorFlow intra-op threads (the search's flag of the same name; 0: one per CPU)")
    parser.add_argument("--graph_optimizer_passes", type=int, choices=(0, 1, 2), default=1,
                        help="rounds of Grappler's meta-optimizer on the step's first call (the search's flag of "
                             "the same name; 0: TensorFlow's default, two)")
    parser.add_argument("--allocator", choices=ALLOCATORS, default="auto",
                        help="memory allocator of our process (the search's flag of the same name)")
    parser.add_argument("--torch_allocator", choices=ALLOCATORS, default="glibc",
                        help="memory allocator of the PyTorch reference's process (default glibc: PyTorch as it "
                             "runs by default; jemalloc made its step slower here, 62 -> 96 s at batch 32)")
    parser.add_argument("--order", help=argparse.SUPPRESS)  # internal: measure one order in this process
    args = parser.parse_args()
    if args.compare_torch and args.original_ordering:
        parser.error("--compare_torch times the textbook step (the reference has no --original_ordering)")
    if args.order:
        preload_and_reexec(args.allocator, sys.argv)  # restarts this process with it preloaded
        print(json.dumps(_measure_torch(args) if args.order == "torch" else _measure(args)))
        return
    results = []
    orders = ["second", "torch"] if args.compare_torch else args.orders.split(",")
    for order in orders:
        cmd = [sys.executable, __file__, f"--order={order}"] + [
            f"--{k}={getattr(args, k)}" for k in ("batch_size", "steps", "channels", "num_cells", "num_nodes",
                                                  "input_size", "num_classes", "torch_threads", "edge_execution",
                                                  "inter_op_threads", "intra_op_threads", "graph_optimizer_passes")
        ] + [f"--allocator={args.torch_allocator if order == 'torch' else args.allocator}"] + (
            ["--original_ordering"] if args.original_ordering else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{order}-order run failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    load = os.getloadavg()
    ratios = _ratios(results[0], results[1]) if args.compare_torch else None
    if args.json:
        print(json.dumps({"results": results, "load_average": load, "ours_over_torch": ratios}, indent=2))
        return
    print(f"search network: {results[0]['weights']:,} weights + {results[0]['alphas']} alphas, "
          f"{args.input_size}x{args.input_size}, batch {args.batch_size} per half; load average {load[0]:.1f} "
          f"on {os.cpu_count()} CPUs; edge execution {args.edge_execution}; TensorFlow threads "
          f"{args.inter_op_threads} inter-op, {args.intra_op_threads} intra-op (0: one per CPU); Grappler "
          f"meta-optimizer passes {args.graph_optimizer_passes or 'default (two)'}; allocator "
          f"{results[0]['allocator']} (torch: {results[-1]['allocator']})")
    for r in results:
        overhead = (f"tracing {r['trace_s']} s; +{r['first_step_overhead_s']} s over a step; " if "trace_s" in r
                    else "")
        overhead = (f" ({overhead}system CPU {r['first_step_system_cpu_s']} s, {r['first_step_page_faults']:,} "
                    "page faults)")
        print(f"{r['order']:>6}-order: build {r['build_s']} s, first step {r['first_step_s']} s{overhead}, step "
              f"{r['step_s_median']} s (median of {len(r['step_s_all'])}: {r['step_s_all']}), "
              f"{r['images_per_s']} img/s, peak RSS {r['peak_rss_gb']} GB; CPU time: first step "
              f"{r['first_step_cpu_s']} s, step {r['step_cpu_s_median']} s")
    if ratios:
        print(f"ours / torch: step {ratios['step_s_median']}x, peak RSS {ratios['peak_rss_gb']}x, "
              f"first step {ratios['first_step_s']}x; CPU time: step {ratios['step_cpu_s_median']}x, "
              f"first step {ratios['first_step_cpu_s']}x")


if __name__ == "__main__":
    main()
