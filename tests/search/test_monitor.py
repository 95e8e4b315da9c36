"""Per-epoch bookkeeping: history.json, genotype selection, pictures."""

import json

import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf import genotypes as G
from pocketnet_tf.search import monitor
from tests.factory import compiled_search_model, labelled_images, tiny_search_network


def _entry(epoch, acc):
    zeros = [np.zeros((2, 8)).tolist()]  # one node per cell, as the tiny network
    return {"epoch": epoch, "val_accuracy": acc, "genotype": G.SOFTMAX_CASIA.to_dict(), "alpha_normal": zeros,
            "alpha_reduce": zeros}


def test_select_final_or_best_with_ties_to_the_later_epoch():
    history = [_entry(1, 0.2), _entry(2, 0.5), _entry(3, 0.5), _entry(4, 0.4)]
    assert monitor.select_epoch(history, "final")["epoch"] == 4
    assert monitor.select_epoch(history, "best")["epoch"] == 3
    with pytest.raises(ValueError, match="no search epoch has finished"):
        monitor.select_epoch([], "final")


def test_read_history_rejects_damaged_files(tmp_path):
    path = tmp_path / "history.json"
    assert monitor.read_history(path) == []
    path.write_text('{"epochs": [')
    with pytest.raises(ValueError, match=f"{path}: unreadable search history"):
        monitor.read_history(path)
    bad = _entry(1, 0.1)
    bad["genotype"]["normal"][0][0][0] = "conv_9x9"
    path.write_text(json.dumps({"epochs": [bad]}))
    with pytest.raises(ValueError, match="unknown primitive 'conv_9x9'"):
        monitor.read_history(path)


def test_epoch_end_records_metrics_genotype_alphas_and_pictures(tmp_path):
    net = tiny_search_network()
    model = compiled_search_model(net, second_order=False)
    x, y = labelled_images(6, seed=3, size=16)
    val = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    earlier = [_entry(1, 0.9), _entry(2, 0.8)]
    cb = monitor.SearchMonitor(net, tmp_path, val, val_steps=2, rank_edges_by="alpha", history=earlier)
    cb.set_model(model)
    for a in net.alphas:  # something to derive
        a.assign(np.random.default_rng(0).normal(size=a.shape).astype(np.float32))
    logs = {"loss": 1.5, "accuracy": 0.25, "alpha_loss": 1.25}
    cb.on_epoch_begin(1)
    cb.on_epoch_end(1, logs)  # the second epoch runs again (a resumed run): replaces entry 2
    saved = json.loads((tmp_path / monitor.HISTORY_FILE).read_text())["epochs"]
    assert [e["epoch"] for e in saved] == [1, 2]
    record = saved[1]
    assert (record["loss"], record["accuracy"], record["alpha_loss"]) == (1.5, 0.25, 1.25)
    assert record["weight_lr"] == pytest.approx(0.1)
    evaluated = model.evaluate(val, verbose=0, return_dict=True)
    assert record["val_accuracy"] == pytest.approx(evaluated["accuracy"])
    assert logs["val_accuracy"] == record["val_accuracy"]
    assert G.Genotype.from_dict(record["genotype"]) == net.genotype(rank_by="alpha")
    assert record["genotype_text"] == G.to_text(net.genotype(rank_by="alpha"))
    np.testing.assert_allclose(record["alpha_normal"][0], net.alpha_normal[0].numpy(), rtol=1e-6)
    for name in ("normal.png", "reduce.png", "alpha_normal.png", "alpha_reduce.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "normal.dot").read_text().count(" -> ") == 2 + 1  # one node: two edges, one output
