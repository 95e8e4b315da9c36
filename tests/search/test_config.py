"""Search flags -> SearchConfig: the flagfiles, cross-field checks, the flagfile round trip."""

import dataclasses
from pathlib import Path

import pytest
from absl import flags

from pocketnet_tf.search.config import SearchConfig
from pocketnet_tf.search.flags import define_flags

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _parse(*args):
    values = flags.FlagValues()
    define_flags(values)
    values(["search", *args])
    return SearchConfig.from_flags(values)


def test_casia_flagfile_has_the_paper_settings(tmp_path):
    config = _parse(f"--flagfile={CONFIGS / 'search_casia.flags'}", f"--workdir={tmp_path / 'run'}",
                    f"--data={tmp_path}")
    # Spec §2.1 / §2.2.
    expected = dict(seed=2, input_size=112, random_crop_from=128, channels=16, num_cells=8, num_nodes=4,
                    stem_multiplier=3, embedding_size=128, head_width=512, gdc_groups=128, epochs=50, batch_size=128,
                    weight_lr=0.1, weight_lr_min=0.004, weight_momentum=0.9, weight_decay=3e-4, weight_grad_clip=5.0,
                    alpha_lr=1.2e-3, alpha_beta1=0.5, alpha_beta2=0.999, alpha_weight_decay=1e-3, second_order=True,
                    alpha_grad_includes_train_loss=False, rank_edges_by="softmax", select_genotype="final")
    assert {k: getattr(config, k) for k in expected} == expected
    assert config.reduction_cells == (2, 5, 7)
    # The flagfile defaults equal the dataclass defaults: the flags file only makes them explicit.
    defaults = SearchConfig(workdir="x")
    assert {k: getattr(defaults, k) for k in expected} == expected


def test_quick_flagfile_and_later_flags_win(tmp_path):
    config = _parse(f"--flagfile={CONFIGS / 'search_quick.flags'}", f"--workdir={tmp_path}", "--epochs=2",
                    "--nosecond_order")
    assert config.synthesize_data and config.data is None and config.data_location == tmp_path / "data"
    assert (config.input_size, config.channels, config.num_cells, config.num_nodes) == (32, 4, 3, 4)
    assert config.epochs == 2 and not config.second_order


def test_flagfile_round_trip(tmp_path):
    config = _parse(f"--flagfile={CONFIGS / 'search_quick.flags'}", f"--workdir={tmp_path}",
                    "--alpha_grad_includes_train_loss", "--rank_edges_by=alpha")
    path = tmp_path / "flags.txt"
    path.write_text(config.to_flagfile())
    assert _parse(f"--flagfile={path}") == config


@pytest.mark.parametrize("args, message", [
    (["--input_size=100"], "--input_size=100 must be divisible by 16"),
    (["--gdc_groups=3"], "--gdc_groups=3 must divide --head_width=512"),
    (["--random_crop_from=100"], "--random_crop_from=100 must be 0 .no crop. or >= --input_size=112"),
    (["--weight_lr=0.001"], "--weight_lr_min=0.004 exceeds --weight_lr=0.001"),
    (["--nosynthesize_data"], "--data is required"),
])
def test_bad_combinations_fail_before_any_work(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        _parse(f"--workdir={tmp_path}", "--synthesize_data", *args)


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"dataset {tmp_path / 'nope'} not found"):
        _parse(f"--workdir={tmp_path}", f"--data={tmp_path / 'nope'}")
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(f"--workdir={tmp_path}", "--rank_edges_by=logits")


@pytest.mark.parametrize("mode", ["recompute", "inline"])
def test_edge_execution_flag_reaches_the_network(tmp_path, mode):
    from pocketnet_tf.search.runner import build_search_model

    args = [f"--flagfile={CONFIGS / 'search_quick.flags'}", f"--workdir={tmp_path}", "--num_cells=3", "--num_nodes=1"]
    config = _parse(*args, *([] if mode == "recompute" else ["--edge_execution=inline"]))
    assert config.edge_execution == mode
    model = build_search_model(config, num_classes=4, steps_per_epoch=2)
    edges = [op for cell in model.network.cells for op in cell.mixed_ops]
    shared = {id(op._shared_edge_functions) for op in edges}
    assert len(shared) == 1  # every edge of the network uses the same set of functions, or none
    assert (edges[0]._shared_edge_functions is None) == (mode == "inline")
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(*args, "--edge_execution=fused")


def test_thread_flags_reach_the_config(tmp_path):
    args = [f"--flagfile={CONFIGS / 'search_quick.flags'}", f"--workdir={tmp_path}"]
    default = _parse(*args)
    assert (default.inter_op_threads, default.intra_op_threads) == (0, 1)
    config = _parse(*args, "--inter_op_threads=4", "--intra_op_threads=0")
    assert (config.inter_op_threads, config.intra_op_threads) == (4, 0)
    assert "--inter_op_threads=4" in config.to_flagfile() and "--intra_op_threads=0" in config.to_flagfile()
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(*args, "--intra_op_threads=-1")


def test_graph_optimizer_passes_flag_reaches_the_config(tmp_path):
    args = [f"--flagfile={CONFIGS / 'search_quick.flags'}", f"--workdir={tmp_path}"]
    assert _parse(*args).graph_optimizer_passes == 1
    config = _parse(*args, "--graph_optimizer_passes=0")
    assert config.graph_optimizer_passes == 0 and "--graph_optimizer_passes=0" in config.to_flagfile()
    for bad in ("-1", "3"):
        with pytest.raises(flags.IllegalFlagValueError):
            _parse(*args, f"--graph_optimizer_passes={bad}")
    assert _parse(*args).allocator == "auto" and _parse(*args, "--allocator=glibc").allocator == "glibc"
    with pytest.raises(flags.IllegalFlagValueError):
        _parse(*args, "--allocator=mimalloc")
    # A config built in code is checked too.
    with pytest.raises(ValueError, match=r"--graph_optimizer_passes=3 must be one of \(0, 1, 2\)"):
        dataclasses.replace(config, graph_optimizer_passes=3).check()
