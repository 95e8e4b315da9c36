"""Training throughput: the Keras train step vs a PyTorch reference step of the original recipe.

Usage:
  python benchmarks/train_throughput.py [--rounds 2] [--with-jit] [--kd-teachers PocketNetS-128,iresnet100]
                                     # the table: one subprocess per measurement, rounds interleaved
  python benchmarks/train_throughput.py --only keras --batch 64 [--jit] [--kd --teacher NAME] [--steps 10]
  python benchmarks/train_throughput.py --only torch --batch 32 [--steps 10]

Keras: ``pocketnet_tf.train.throughput.benchmark_train`` (MarginModel + ArcFace + TorchSGD + backbone
clipping, the step ``python -m pocketnet_tf.train`` runs). PyTorch (benchmark only): the
original's step — PocketNet (``tests/torch_reference.AugmentCNN``), F.normalize, ArcFace with
the threshold branch, cross-entropy, ``clip_grad_norm_(backbone, 5)``, SGD(momentum 0.9,
weight decay 5e-4). Both on random 112x112 batches, 1000 classes, after warm-up steps; each
measurement runs in its own process. Figures depend on the machine and on its other load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def torch_step_benchmark(batch: int, steps: int, warmup: int = 3, num_classes: int = 1000, input_size: int = 112,
                         threads: int | None = None) -> dict:
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, REPO)
    from tests.torch_reference import AugmentCNN

    # TF uses every core by default; same here unless told otherwise.
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    backbone = AugmentCNN(channels=16, num_cells=18, embedding_size=128, input_size=input_size)
    kernel = torch.nn.Parameter(torch.normal(0, 0.01, (128, num_classes)))
    s, m = 64.0, 0.5
    opt_backbone = torch.optim.SGD(backbone.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt_head = torch.optim.SGD([kernel], lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, input_size, input_size) * 2 - 1
    y = torch.randint(0, num_classes, (batch,))
    backbone.train()

    def step():
        emb = F.normalize(backbone(x))
        cos = torch.clamp(emb @ (kernel / kernel.norm(dim=0, keepdim=True)), -1 + 1e-5, 1 - 1e-5)
        t = cos[torch.arange(batch), y]
        target = torch.where(t > math.cos(math.pi - m), t * math.cos(m) - torch.sqrt(1 - t * t) * math.sin(m),
                             t - math.sin(math.pi - m) * m)
        logits = cos.scatter(1, y[:, None], target[:, None]) * s
        loss = F.cross_entropy(logits, y)
        opt_backbone.zero_grad()
        opt_head.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5.0)
        opt_backbone.step()
        opt_head.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    return {"framework": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(), "model": "PocketNetS-128",
            "batch_size": batch, "steps": steps, "ms_per_step": round(1e3 * seconds / steps, 1),
            "images_per_s": round(steps * batch / seconds, 1)}


def keras_step_benchmark(batch: int, steps: int, jit: bool, warmup: int = 3, teacher: str | None = None) -> dict:
    sys.path.insert(0, REPO)
    from pocketnet_tf.train.throughput import benchmark_train

    result = benchmark_train("PocketNetS-128", batch, steps, warmup=warmup, jit=jit, kd=teacher is not None,
                             teacher=teacher)
    return {"framework": "keras", **result}


def _run(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1], "args": args}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _label(r: dict) -> str:
    if "error" in r:
        return " ".join(r["args"])
    name = f"{r['framework']} b{r['batch_size']}"
    if r.get("jit"):
        name += " XLA"
    if r.get("kd"):
        name += f" KD({r['teacher']})"
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["keras", "torch"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--teacher", default=None, help="--only keras: distil from this registry model")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--with-jit", action="store_true", help="table: add one XLA run at batch 64")
    parser.add_argument("--kd-teachers", default="PocketNetS-128",
                        help="table: KD runs at batch 64, one per teacher (comma-separated; '' for none)")
    args = parser.parse_args()
    if args.only == "keras":
        print(json.dumps(keras_step_benchmark(args.batch, args.steps, args.jit, args.warmup, args.teacher)))
        return
    if args.only == "torch":
        print(json.dumps(torch_step_benchmark(args.batch, args.steps, args.warmup, threads=args.torch_threads)))
        return
    steps = ["--steps", str(args.steps)]
    plan = [["--only", "torch", "--batch", "32"], ["--only", "keras", "--batch", "32"],
            ["--only", "torch", "--batch", "64"], ["--only", "keras", "--batch", "64"]]
    plan += [["--only", "keras", "--batch", "64", "--teacher", t] for t in filter(None, args.kd_teachers.split(","))]
    results = {}
    # Rounds interleave the frameworks so that a change in the machine's speed hits both alike.
    for r in range(args.rounds):
        for run in plan:
            res = _run(run + steps)
            results.setdefault(_label(res), []).append(res)
            print(json.dumps({"round": r + 1, **res}), flush=True)
    if args.with_jit:  # one run: compiling the whole step takes minutes and ~16 GB at batch 64
        res = _run(["--only", "keras", "--batch", "64", "--jit", "--steps", "3", "--warmup", "2"])
        results.setdefault(_label(res), []).append(res)
        print(json.dumps(res), flush=True)
    print("\n| run | images/s (per round) | best | ms/step (best) |\n|---|---|---|---|")
    best = {k: max((x.get("images_per_s", 0) for x in v), default=0) for k, v in results.items()}
    for k, v in results.items():
        per = ", ".join(str(x.get("images_per_s", x.get("error"))) for x in v)
        print(f"| {k} | {per} | {best[k]} | {round(1e3 * (v[0].get('batch_size') or 1) / best[k], 1) if best[k] else '-'} |")
    for b in (32, 64):
        t, k = best.get(f"torch b{b}"), best.get(f"keras b{b}")
        if t and k:
            rounds = [round(kr["images_per_s"] / tr["images_per_s"], 2)
                      for tr, kr in zip(results[f"torch b{b}"], results[f"keras b{b}"]) if "error" not in kr and "error" not in tr]
            print(f"keras / torch at batch {b}: best {k / t:.2f}x; per round {rounds}")
    base = best.get("keras b64")
    for k, v in best.items():
        if "KD(" in k and base and v:
            print(f"{k}: {v} images/s = {base / v:.2f}x the time of ArcFace-only training at batch 64")


if __name__ == "__main__":
    main()
