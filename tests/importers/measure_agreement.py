"""Measures Keras-vs-PyTorch agreement of an imported checkpoint at full size (not a test).

    python -m tests.importers.measure_agreement PocketNetS-128 iresnet50 [--batch=4] [--seed=0]

For each registry model: builds the PyTorch reference from ``tests/torch_reference.py`` with random
weights and BN statistics, saves it with ``torch.save``, imports it with ``import_checkpoint`` (the
CLI's code path, including the ``.keras`` write), and prints max |keras - torch| over a batch of
random 112x112 inputs, next to the embedding's scale.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path


def measure(name: str, batch: int, seed: int) -> dict:
    import numpy as np
    import torch

    from pocketnet_tf.importers.checkpoint import ImportConfig, import_checkpoint
    from pocketnet_tf.models import registry
    from tests import torch_reference as ref
    from tests.factory import random_images

    preset = registry.get_preset(name)
    if preset.family == "pocketnet":
        kwargs = preset.kwargs
        module = ref.randomize_(
            ref.AugmentCNN(kwargs["channels"], kwargs["num_cells"], kwargs["embedding_size"], kwargs["genotype"]),
            seed=seed,
        )
    else:
        module = ref.randomize_(
            ref.IResNet(preset.kwargs["depth"], preset.kwargs["embedding_size"]), seed=seed, input_size=112
        )
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "backbone.pth"
        torch.save(module.state_dict(), checkpoint)
        start = time.perf_counter()
        model, report = import_checkpoint(ImportConfig(name, str(checkpoint), str(Path(tmp) / "model.keras")))
        seconds = time.perf_counter() - start
    images = random_images(batch, seed=seed + 1)
    expected = ref.embed(module, images)
    got = np.asarray(model(images, training=False)).astype(np.float64)
    # Float64 run of the same reference: how much of the difference is float32 rounding on each side.
    exact = ref.embed(copy.deepcopy(module).double(), images.astype(np.float64))
    diff = np.abs(got - expected)
    return {
        "model": name, "tensors": report.assigned, "import_seconds": round(seconds, 2),
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "keras_vs_float64": float(np.abs(got - exact).max()),
        "torch_vs_float64": float(np.abs(expected - exact).max()),
        "embedding_std": float(expected.std()), "embedding_max_abs": float(np.abs(expected).max()),
    }


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.models:
        r = measure(name, args.batch, args.seed)
        print(
            f"{r['model']}: max |keras - torch| = {r['max_abs_diff']:.3g} (mean {r['mean_abs_diff']:.3g}; "
            f"embedding std {r['embedding_std']:.3g}, max |e| {r['embedding_max_abs']:.3g}; "
            f"vs a float64 torch run: keras {r['keras_vs_float64']:.3g}, torch {r['torch_vs_float64']:.3g}); "
            f"{r['tensors']} tensors imported in {r['import_seconds']} s"
        )


if __name__ == "__main__":
    main()
