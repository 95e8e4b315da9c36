"""Does distillation help? A seeded, paired ablation of the KD modes (``benchmark kd``).

``python -m pocketnet_tf.benchmark kd --flagfile=F --seeds=N --out=DIR [--arms=...] [--json]``
trains one teacher run from the training flagfile ``F`` (its ``--teacher_*`` flags, as
``--train_teacher`` would), then one student per arm and seed, each in its own process
(``python -m pocketnet_tf.train``), all with the same data, teacher run and budget. Seed ``s`` is
the student's ``--seed`` in every arm, so one seed means the same initialisation and the same data
order: the arms are compared *paired* across seeds.

An arm is a KD mode optionally followed by training flags, ``+``-separated:
``none``, ``single``, ``multistep``, ``multistep+kd_loss=cosine``, ``multistep+kd_weight=10``.

Outputs in ``DIR``: ``ablation.json`` (every run's held-out accuracy and per-epoch losses, the
statistics), ``ablation.md`` (tables) and ``ablation.png`` (accuracy by arm with 95 % confidence
intervals; CE and KD term per epoch by arm). Runs already finished (their ``results.json`` holds
an ``after`` accuracy) are reused, so an interrupted ablation continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from pocketnet_tf.io_utils import write_json_atomic, write_text_atomic

DEFAULT_ARMS = ("none", "single", "multistep")
_KD_MODES = ("none", "single", "multistep")


# ---------------------------------------------------------------------------------------------
# Statistics


def _t_quantile(p: float, dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(p, dof))


def mean_ci(values, level: float = 0.95) -> dict:
    """Mean and two-sided Student-t confidence interval of independent ``values``."""
    x = np.asarray(values, np.float64)
    n = x.size
    if n == 0:
        raise ValueError("mean_ci: no values")
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "ci95": [mean, mean], "std": 0.0, "n": 1}
    std = float(x.std(ddof=1))
    half = _t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "std": std, "n": int(n)}


def paired_comparison(a, b) -> dict:
    """``a − b`` per seed: mean difference with its 95 % CI, the paired t-test's two-sided p and
    the exact sign-flip permutation test's two-sided p (all 2^n sign patterns; no normality)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_comparison: need two equal-length vectors, received {a.shape} and {b.shape}")
    diff = a - b
    n = diff.size
    out = {"n": int(n), "mean_difference": float(diff.mean()), "wins": int((diff > 0).sum()),
           "losses": int((diff < 0).sum()), "ties": int((diff == 0).sum())}
    out["ci95"] = mean_ci(diff)["ci95"]
    std = float(diff.std(ddof=1)) if n > 1 else 0.0
    if n > 1 and std > 0:
        from scipy import stats

        t = float(diff.mean() / (std / math.sqrt(n)))
        out["t"] = t
        out["p_ttest"] = float(2 * stats.t.sf(abs(t), n - 1))
    else:
        out["t"] = None
        out["p_ttest"] = None if n < 2 else (1.0 if diff.mean() == 0 else 0.0)
    out["p_permutation"] = _sign_flip_p(diff)
    return out


def _sign_flip_p(diff: np.ndarray) -> float | None:
    n = diff.size
    if n == 0 or n > 20:
        return None
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    observed = abs(diff.sum())
    flipped = np.abs(signs @ diff)
    return float(np.mean(flipped >= observed - 1e-12))


def summarize(accuracies: dict) -> dict:
    """``{arm: [accuracy per seed]}`` -> the JSON of ``benchmark kd --json``: per-arm mean, CI and
    accuracies, and every pair of arms compared across seeds (``"<a> - <b>"``)."""
    arms = list(accuracies)
    modes = {arm: {**mean_ci(acc), "accuracies": [float(v) for v in acc]} for arm, acc in accuracies.items()}
    paired = {}
    for i, a in enumerate(arms):
        for b in arms[:i]:
            paired[f"{a} - {b}"] = paired_comparison(accuracies[a], accuracies[b])
    return {"modes": modes, "paired": paired}


# ---------------------------------------------------------------------------------------------
# Arms and runs


@dataclasses.dataclass(frozen=True)
class Arm:
    """One ablation arm: a KD mode plus extra training flags (``multistep+kd_loss=cosine``)."""

    name: str
    kd: str
    flags: tuple = ()

    @classmethod
    def parse(cls, text: str) -> "Arm":
        parts = [p.strip() for p in text.split("+")]
        if parts[0] not in _KD_MODES:
            raise ValueError(f"arm {text!r}: must start with a KD mode {list(_KD_MODES)}")
        extra = []
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            if not eq or not key.replace("_", "").isalnum() or not value or " " in value:
                raise ValueError(f"arm {text!r}: {part!r} is not a flag=value pair")
            if key in ("kd", "seed", "workdir", "data", "teacher_manifest", "train_teacher"):
                raise ValueError(f"arm {text!r}: --{key} is set by the ablation itself")
            extra.append(f"--{key}={value}")
        return cls(name=text, kd=parts[0], flags=tuple(extra))

    def run_name(self, seed: int) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
        return f"{safe}/seed_{seed}"


def load_train_config(flagfile: str, workdir: str):
    """The training flagfile parsed exactly as ``python -m pocketnet_tf.train`` would."""
    from absl import flags as absl_flags

    from pocketnet_tf.train import flags as train_flags
    from pocketnet_tf.train.config import TrainConfig

    values = absl_flags.FlagValues()
    train_flags.define_flags(values)
    values(["ablation", f"--flagfile={flagfile}", f"--workdir={workdir}"])
    return TrainConfig.from_flags(values)


def teacher_config(config, out: Path):
    """The teacher run of ``config`` (its ``--teacher_*`` flags) in ``out/teacher``, with the
    data synthesized into ``out/data`` when the flagfile synthesizes."""
    if not config.eval_bins:
        raise ValueError("the ablation needs --eval_bins in the flagfile: the held-out verification set it compares")
    if not config.train_teacher:
        raise ValueError("the ablation needs a flagfile with --train_teacher and its --teacher_* flags "
                         "(e.g. configs/quickstart.flags): every arm distils from that one teacher run")
    data = config.data if config.data and not config.synthesize_data else str(out / "data")
    base = dataclasses.replace(config, workdir=str(out), data=data)
    return dataclasses.replace(base.teacher_stage(), synthesize_data=config.synthesize_data, data=data,
                               verbose=0, resume=True)


def _python_module(module: str, args: list, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", module, *args], stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{module} {' '.join(args)} exited with {proc.returncode}; log {log}:\n" + "\n".join(tail))


def _finished(run_dir: Path) -> dict | None:
    path = run_dir / "results.json"
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except ValueError:
        return None
    return results if results.get("after") else None


def run_teacher(config, out: Path, log=print) -> tuple[Path, Path]:
    """Trains (or reuses) the teacher run; returns ``(data location, teacher manifest)``."""
    teacher = teacher_config(config, out)
    manifest = teacher.run_dir / "teachers" / "manifest.json"
    if not (_finished(teacher.run_dir) and manifest.is_file()):
        flagfile = out / "teacher.flags"
        write_text_atomic(flagfile, teacher.to_flagfile())
        log(f"teacher run: {teacher.model} for {teacher.epochs} epochs -> {teacher.run_dir}")
        _python_module("pocketnet_tf.train", [f"--flagfile={flagfile}"], out / "logs" / "teacher.log")
    return Path(teacher.data_location), manifest


def student_args(flagfile: str, arm: Arm, seed: int, run_dir: Path, data: Path, manifest: Path) -> list:
    """The student's command line: the user's flagfile, then what the ablation fixes."""
    args = [f"--flagfile={flagfile}", f"--workdir={run_dir}", "--notrain_teacher", "--nosynthesize_data",
            f"--data={data}", f"--kd={arm.kd}", f"--seed={seed}", "--verbose=0", "--resume"]
    if arm.kd != "none":
        args.append(f"--teacher_manifest={manifest}")
    return args + list(arm.flags)


def _held_out(results: dict, bin_name: str | None) -> tuple[str, float]:
    after = results["after"]
    name = bin_name or sorted(after)[0]
    if name not in after:
        raise ValueError(f"verification set {name!r} not in the run's results (have {sorted(after)})")
    return name, float(after[name]["accuracy"])


def run_ablation(flagfile: str, out, *, seeds: int = 5, arms=DEFAULT_ARMS, bin_name: str | None = None,
                 log=print) -> dict:
    """Runs (or completes) the ablation in ``out``; returns the ``ablation.json`` content."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arms = [a if isinstance(a, Arm) else Arm.parse(a) for a in arms]
    if len({a.name for a in arms}) != len(arms):
        raise ValueError(f"arms must be distinct, received {[a.name for a in arms]}")
    if seeds < 2:
        raise ValueError(f"--seeds must be >= 2 for a confidence interval, received {seeds}")
    config = load_train_config(flagfile, str(out))
    data, manifest = run_teacher(config, out, log)
    runs = {}
    for seed in range(seeds):  # seed-major: a stopped ablation has complete pairs
        for arm in arms:
            run_dir = out / "runs" / arm.run_name(seed)
            results = _finished(run_dir)
            if results is None:
                log(f"arm {arm.name}, seed {seed} -> {run_dir}")
                _python_module("pocketnet_tf.train", student_args(flagfile, arm, seed, run_dir, data, manifest),
                               out / "logs" / f"{arm.run_name(seed).replace('/', '_')}.log")
                results = _finished(run_dir)
                if results is None:
                    raise RuntimeError(f"{run_dir}: the run ended without a held-out accuracy in results.json")
            runs.setdefault(arm.name, []).append(results)
    return _report(out, flagfile, config, arms, runs, bin_name, seeds)


def _history(results: dict, key: str) -> list:
    history = results.get("history", {})
    return [float(history[e][key]) for e in sorted(history, key=int) if key in history[e]]


def _mean_curve(runs: list, key: str) -> list:
    """Per-epoch mean over seeds of a logged loss (``[]`` where the arm does not log it)."""
    curves = [_history(r, key) for r in runs]
    length = min((len(c) for c in curves), default=0)
    if length == 0:
        return []
    return np.mean([c[:length] for c in curves], axis=0).tolist()


def _report(out: Path, flagfile: str, config, arms, runs: dict, bin_name, seeds: int) -> dict:
    accuracies, curves, before = {}, {}, {}
    for arm in arms:
        picked = [_held_out(r, bin_name) for r in runs[arm.name]]
        bin_name = picked[0][0]
        accuracies[arm.name] = [acc for _, acc in picked]
        before[arm.name] = [float(r.get("before", {}).get(bin_name, {}).get("accuracy", float("nan")))
                            for r in runs[arm.name]]
        curves[arm.name] = {key: _mean_curve(runs[arm.name], key) for key in ("ce_loss", "kd_loss")}
    summary = summarize(accuracies)
    report = {"flagfile": str(flagfile), "seeds": seeds, "verification_set": bin_name,
              "arms": {a.name: {"kd": a.kd, "flags": list(a.flags)} for a in arms},
              "student": {"model": config.model, "channels": config.channels, "num_cells": config.num_cells,
                          "input_size": config.input_size, "epochs": config.epochs, "batch_size": config.batch_size},
              "teacher": {"model": config.teacher_model, "channels": config.teacher_channels,
                          "num_cells": config.teacher_num_cells, "epochs": config.teacher_epochs},
              "before": before, "curves": curves, **summary}
    write_json_atomic(out / "ablation.json", report)
    write_text_atomic(out / "ablation.md", format_markdown(report))
    plot(report, out / "ablation.png")
    return report


def format_markdown(report: dict) -> str:
    s, t = report["student"], report["teacher"]
    lines = [f"# KD ablation: {report['seeds']} seeds, held-out `{report['verification_set']}` accuracy", "",
             f"Flagfile `{report['flagfile']}`; student {s['model']} (C={s['channels']}, {s['num_cells']} cells, "
             f"{s['input_size']}x{s['input_size']}, {s['epochs']} epochs, batch {s['batch_size']}); teacher "
             f"{t['model']} (C={t['channels']}, {t['num_cells']} cells, {t['epochs']} epochs). Same seed = same "
             "initialisation and data order in every arm.", "",
             "| arm | mean | 95 % CI | per seed |", "|---|---|---|---|"]
    for arm, m in report["modes"].items():
        lo, hi = m["ci95"]
        lines.append(f"| `{arm}` | {m['mean']:.4f} | [{lo:.4f}, {hi:.4f}] | "
                     f"{', '.join(f'{v:.4f}' for v in m['accuracies'])} |")
    lines += ["", "Paired across seeds (difference a − b):", "",
              "| a − b | mean Δ | 95 % CI | wins/losses/ties | paired t p | sign-flip p |", "|---|---|---|---|---|---|"]
    for pair, p in report["paired"].items():
        lo, hi = p["ci95"]
        pt = "n/a" if p["p_ttest"] is None else f"{p['p_ttest']:.3f}"
        pp = "n/a" if p["p_permutation"] is None else f"{p['p_permutation']:.3f}"
        lines.append(f"| `{pair}` | {p['mean_difference']:+.4f} | [{lo:+.4f}, {hi:+.4f}] | "
                     f"{p['wins']}/{p['losses']}/{p['ties']} | {pt} | {pp} |")
    lines += ["", "![accuracy by arm; CE and KD term per epoch](ablation.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Accuracy by arm (mean, 95 % CI, every seed) and mean CE / KD term per epoch by arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pocketnet_tf.io_utils import atomic_path

    arms = list(report["modes"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for i, arm in enumerate(arms):
        m = report["modes"][arm]
        lo, hi = m["ci95"]
        axes[0].errorbar([i], [m["mean"]], yerr=[[m["mean"] - lo], [hi - m["mean"]]], fmt="o", capsize=6)
        axes[0].scatter([i + 0.12] * len(m["accuracies"]), m["accuracies"], s=10, color="gray")
        for ax, key in ((axes[1], "ce_loss"), (axes[2], "kd_loss")):
            curve = report["curves"][arm][key]
            ax.plot(range(1, len(curve) + 1), curve, marker=".", label=arm)
    axes[0].set_xticks(range(len(arms)), arms, rotation=20)
    axes[0].set_ylabel(f"held-out accuracy ({report['verification_set']})")
    axes[0].set_title(f"accuracy, mean and 95 % CI ({report['seeds']} seeds)")
    for ax, title in ((axes[1], "CE per epoch (mean over seeds)"), (axes[2], "KD term per epoch (weighted)")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
