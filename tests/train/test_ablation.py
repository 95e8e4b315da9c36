"""The KD ablation (``benchmark kd``): its statistics against scipy and by hand, arm parsing, the
replica-batch warning, and one tiny ablation end to end through the CLI."""

import json

import numpy as np
import pytest
from scipy import stats

from pocketnet_tf.train.config import TrainConfig
from pocketnet_tf.train import ablation
from pocketnet_tf.train.runner import replica_batch_warning
from tests.cli_support import run_module


def test_mean_ci_is_the_student_t_interval():
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    out = ablation.mean_ci(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert out["mean"] == pytest.approx(np.mean(values))
    assert out["ci95"] == pytest.approx([lo, hi], rel=1e-9)
    assert out["n"] == 5 and out["std"] == pytest.approx(np.std(values, ddof=1))


def test_paired_comparison_matches_scipy_and_the_exact_sign_flip_count():
    a = np.array([0.85, 0.88, 0.84, 0.90, 0.87])
    b = np.array([0.84, 0.85, 0.85, 0.86, 0.83])
    out = ablation.paired_comparison(a, b)
    ref = stats.ttest_rel(a, b)
    assert out["t"] == pytest.approx(ref.statistic) and out["p_ttest"] == pytest.approx(ref.pvalue)
    assert out["mean_difference"] == pytest.approx(np.mean(a - b))
    assert (out["wins"], out["losses"], out["ties"]) == (4, 1, 0)
    # Differences +.01 +.03 -.01 +.04 +.04 (sum .11). Of the 32 sign patterns, |sum| >= .11 only for
    # all-positive (.13), the observed one, the one negating only the first .01 (.11), and their
    # mirrors: 6/32.
    assert out["p_permutation"] == pytest.approx(6 / 32)
    # Paired beats unpaired here: the pairing is what the seeds buy.
    assert out["p_ttest"] < stats.ttest_ind(a, b).pvalue


def test_all_positive_differences_give_the_smallest_two_sided_sign_flip_p():
    assert ablation.paired_comparison([3.0, 2.0, 5.0], [1.0, 1.0, 1.0])["p_permutation"] == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="equal-length"):
        ablation.paired_comparison([1.0, 2.0], [1.0])


def test_summarize_compares_every_pair_of_arms():
    out = ablation.summarize({"none": [0.8, 0.82, 0.81], "single": [0.82, 0.83, 0.85], "multistep": [0.83, 0.84, 0.84]})
    assert set(out["modes"]) == {"none", "single", "multistep"}
    assert set(out["paired"]) == {"single - none", "multistep - none", "multistep - single"}
    assert out["paired"]["single - none"]["mean_difference"] == pytest.approx(np.mean([0.02, 0.01, 0.04]))
    assert out["modes"]["none"]["accuracies"] == [0.8, 0.82, 0.81]


def test_arms_parse_flags_and_refuse_what_the_ablation_sets():
    arm = ablation.Arm.parse("multistep+kd_loss=cosine+kd_weight=10")
    assert (arm.kd, arm.flags) == ("multistep", ("--kd_loss=cosine", "--kd_weight=10"))
    assert arm.run_name(3) == "multistep_kd_loss_cosine_kd_weight_10/seed_3"
    for bad, match in (("distil", "KD mode"), ("single+kd_weight", "flag=value"), ("none+seed=3", "set by the ablation"),
                       ("single+x=1 --y", "flag=value")):
        with pytest.raises(ValueError, match=match):
            ablation.Arm.parse(bad)


def _config(**kw):
    return TrainConfig(workdir="w", **kw)


def test_replica_batch_warning_names_the_batch_that_keeps_the_recipe():
    config = _config(batch_size=512, lr_reference_batch=512, base_lr=0.1, recipe_replica_batch=128)
    assert replica_batch_warning(config, 4) is None
    one_gpu = replica_batch_warning(config, 1)
    assert "per-replica batch 512" in one_gpu and "--batch_size=128" in one_gpu and "0.025" in one_gpu
    eight = replica_batch_warning(config, 8)
    assert "per-replica batch 64" in eight and "--batch_size=1024" in eight and "0.2" in eight
    assert replica_batch_warning(_config(batch_size=512), 1) is None  # no assumption recorded


def test_ms1mv2_flagfiles_record_the_original_per_replica_batch():
    from absl import flags as absl_flags

    from pocketnet_tf.train import flags as train_flags
    from tests.cli_support import REPO

    values = absl_flags.FlagValues()
    train_flags.define_flags(values)
    values(["t", f"--flagfile={REPO / 'configs/train/ms1mv2_common.flags'}"])
    assert values["recipe_replica_batch"].value * 4 == values["batch_size"].value == 512


TINY = """--synthesize_data
--synth_identities=12
--synth_images_per_identity=6
--synth_val_identities=8
--synth_val_pairs=40
--eval_bins=synth_val
--input_size=16
--model=PocketNetS-128
--channels=4
--num_cells=3
--embedding_size=8
--epochs=2
--batch_size=24
--lr_reference_batch=24
--lr_milestones=2
--kd=multistep
--train_teacher
--teacher_model=PocketNetS-128
--teacher_channels=4
--teacher_num_cells=3
--teacher_epochs=2
"""


@pytest.mark.slow
def test_benchmark_kd_end_to_end_and_continues_where_it_stopped(tmp_path):
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text(TINY)
    out = tmp_path / "ablation"
    args = ["kd", f"--flagfile={flagfile}", "--seeds=2", "--arms=none,multistep", f"--out={out}", "--json"]
    proc = run_module("pocketnet_tf.benchmark", args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report["modes"]) == {"none", "multistep"} and set(report["paired"]) == {"multistep - none"}
    for arm in ("none", "multistep"):
        runs = [json.loads((out / "runs" / arm / f"seed_{s}" / "results.json").read_text()) for s in (0, 1)]
        assert report["modes"][arm]["accuracies"] == [r["after"]["synth_val"]["accuracy"] for r in runs]
        assert [r["kd"] for r in runs] == [arm, arm]
        lo, hi = report["modes"][arm]["ci95"]
        assert lo <= report["modes"][arm]["mean"] <= hi
    # Same seed = same initialisation in every arm: the accuracy before training is shared.
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["before"]["none"] == saved["before"]["multistep"]
    assert saved["curves"]["multistep"]["kd_loss"] and not saved["curves"]["none"]["kd_loss"]
    assert (out / "ablation.md").read_text().count("| `") == 3
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Run again: every run is reused (nothing retrained), the same statistics come out.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/results.json")}
    again = run_module("pocketnet_tf.benchmark", args, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["modes"] == report["modes"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_benchmark_kd_refuses_a_flagfile_without_a_teacher_run(tmp_path):
    flagfile = tmp_path / "noteacher.flags"
    flagfile.write_text(TINY.replace("--train_teacher\n", "").replace("--kd=multistep\n", "--kd=none\n"))
    proc = run_module("pocketnet_tf.benchmark", ["kd", f"--flagfile={flagfile}", f"--out={tmp_path / 'o'}"],
                      timeout=300)
    assert proc.returncode == 2 and "--train_teacher" in proc.stderr
