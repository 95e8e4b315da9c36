"""The search command as a library call: ``run(SearchConfig) -> results`` (spec §2).

A run directory (``--workdir``) holds::

    config.json, flags.txt    the resolved configuration (flags.txt re-runs it via --flagfile), written
                              once the run is accepted; records/attempt-NNN/ keeps every attempt's copy
    search.log                the log: per epoch losses, accuracies, genotype, softmax(alpha) tables
    checkpoints/              crash-safe checkpoints: network, alphas, both optimisers (--resume)
    history.json              per epoch: metrics, learning rate, genotype, raw alphas
    normal.png, reduce.png    the derived cells (plus their Graphviz .dot source)
    alpha_normal.png, alpha_reduce.png   softmax(alpha) per edge over the epochs
    genotype.json, genotype.txt          the result (JSON for ``--genotype=``; the original's text)
    results.json              the result, where it came from, the picture paths, timing; a diverged
                              search (non-finite loss) writes only {"status": "diverged", "error": ...}
    data/                     the synthetic dataset with --synthesize_data and no --data

Data (spec §2.4): the record set is split 50/50 per identity (:func:`pipeline.search_split`); the
first half, augmented (resize to ``random_crop_from``, random ``input_size`` crop, flip), trains
the weights; the second half, un-augmented, trains alpha and gives the per-epoch validation top-1.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
from absl import logging

from pocketnet_tf import genotypes as genotypes_lib
from pocketnet_tf.allocator import loaded_allocator
from pocketnet_tf.io_utils import attach_log_file, ensure_dir, remove_stale_temporaries, write_json_atomic
from pocketnet_tf.run_records import write_run_records
from pocketnet_tf.search.config import SearchConfig
from pocketnet_tf.threads import configure_threads, graph_optimizer_passes


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; expected default or mirrored")


def ensure_synthetic_data(config: SearchConfig) -> Path:
    """Generates the synthetic record set into ``config.data_location`` unless it is there
    (into a temporary directory renamed on success, so a killed generation leaves nothing)."""
    from pocketnet_tf.data import synthetic

    return synthetic.ensure_dataset(
        config.data_location, identities=config.synth_identities,
        images_per_identity=config.synth_images_per_identity, seed=config.synth_seed,
        size=config.input_size, val_identities=2, val_pairs=0,
    )


def build_search_model(config: SearchConfig, num_classes: int, steps_per_epoch: int):
    """Search network + :class:`SearchModel`, compiled with the two optimisers (call inside the
    strategy scope)."""
    from pocketnet_tf.search.optimizers import TorchAdam
    from pocketnet_tf.search.schedule import CosineEpochSchedule
    from pocketnet_tf.search.search_model import SearchModel
    from pocketnet_tf.search.search_network import SearchNetwork
    from pocketnet_tf.fitting.torch_sgd import TorchSGD
    from pocketnet_tf.fitting.precision import precision_scope

    with precision_scope(config.precision):
        network = SearchNetwork(
            num_classes, channels=config.channels, num_cells=config.num_cells, num_nodes=config.num_nodes,
            stem_multiplier=config.stem_multiplier, embedding_size=config.embedding_size,
            head_width=config.head_width, gdc_groups=config.gdc_groups, input_size=config.input_size,
            seed=config.seed,
        )
    network.set_edge_execution(config.edge_execution)
    model = SearchModel(network, second_order=config.second_order,
                        alpha_grad_includes_train_loss=config.alpha_grad_includes_train_loss)
    model.compile(
        weight_optimizer=TorchSGD(
            CosineEpochSchedule(config.weight_lr, config.weight_lr_min, config.epochs, steps_per_epoch),
            momentum=config.weight_momentum, weight_decay=config.weight_decay,
            clip_norm=config.weight_grad_clip or None,
        ),
        alpha_optimizer=TorchAdam(config.alpha_lr, beta_1=config.alpha_beta1, beta_2=config.alpha_beta2,
                                  coupled_weight_decay=config.alpha_weight_decay),
    )
    return model


@dataclass(frozen=True)
class _SearchData:
    """The record set split for search: the weight half (``first``), the alpha half (``second``)."""

    config: SearchConfig
    source: object
    first: object
    second: object
    steps_per_epoch: int

    def epoch_dataset(self, epoch: int):
        """Epoch ``epoch``: (augmented weight batch, un-augmented alpha batch) pairs, in an order
        that depends on the seed and the epoch only."""
        import tensorflow as tf

        from pocketnet_tf.data import pipeline

        config = self.config
        base = config.seed * 100_003 + 2 * epoch
        crop = config.random_crop_from if config.random_crop_from > config.input_size else None
        train, _ = pipeline.build_dataset(self.source, batch_size=config.batch_size, training=True,
                                          image_size=config.input_size, indices=self.first, seed=base,
                                          random_crop_from=crop, drop_remainder=True)
        val, _ = pipeline.build_dataset(self.source, batch_size=config.batch_size, training=False,
                                        image_size=config.input_size, indices=self.second, shuffle=True,
                                        seed=base + 1, drop_remainder=True)
        return tf.data.Dataset.zip((train, val))

    def validation_dataset(self):
        """The whole alpha half in file order, for the per-epoch validation top-1."""
        from pocketnet_tf.data import pipeline

        dataset, _ = pipeline.build_dataset(self.source, batch_size=self.config.val_batch_size, training=False,
                                            image_size=self.config.input_size, indices=self.second,
                                            shuffle=False, drop_remainder=False)
        return dataset


def run(config: SearchConfig) -> dict:
    """Runs (or resumes) a search; returns the results (also written to ``results.json``)."""
    from pocketnet_tf.fitting import checkpoints

    started = time.time()
    run_dir = config.run_dir
    ensure_dir(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    state = checkpoints.read_checkpoint_state(ckpt_dir)
    if state is not None and not config.resume:
        raise ValueError(f"{ckpt_dir}: a previous search left checkpoints (step {state['global_step']}); "
                         "pass --resume to continue it or use a new --workdir")
    handler = attach_log_file(run_dir / "search.log")
    stack = contextlib.ExitStack()
    try:
        threads = configure_threads(config.inter_op_threads, config.intra_op_threads)
        logging.info("TensorFlow threads: %d inter-op, %d intra-op (0: one per CPU; %d CPUs)",
                     threads["inter_op"], threads["intra_op"], os.cpu_count())
        allocator = loaded_allocator()
        logging.info("memory allocator: %s (--allocator=%s)", allocator, config.allocator)
        if config.allocator not in ("auto", "glibc", allocator):
            logging.warning("--allocator=%s is not this process' allocator (%s): it is preloaded when the "
                            "process starts (python -m pocketnet_tf.search does it; elsewhere set LD_PRELOAD)",
                            config.allocator, allocator)
        passes = stack.enter_context(graph_optimizer_passes(config.graph_optimizer_passes))
        logging.info("Grappler meta-optimizer passes per compiled function: %s",
                     passes or "TensorFlow's default (two)")
        for directory in (run_dir, ckpt_dir):
            for line in remove_stale_temporaries(directory):
                logging.warning("%s", line)
        strategy = make_strategy(config.strategy)
        _check_batches_divide(config, strategy.num_replicas_in_sync)
        if config.synthesize_data:
            ensure_synthetic_data(config)
        data = _split_search_data(config, strategy.num_replicas_in_sync)
        val_dataset = data.validation_dataset()
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = build_search_model(config, data.source.num_classes, data.steps_per_epoch)
        logging.info("search network: %d weight parameters + %d alpha parameters",
                     sum(int(v.numpy().size) for v in model.network.network_weights),
                     sum(int(v.numpy().size) for v in model.network.alphas))
        initial_step, history = _restore_or_start(config, model, state, data.steps_per_epoch)
        history = _fit_search(config, model, data, val_dataset, initial_step, history)
        return _write_results(config, data, history, started)
    finally:
        stack.close()
        logging.get_absl_logger().removeHandler(handler)
        handler.close()


def _check_batches_divide(config: SearchConfig, replicas: int) -> None:
    for key in ("batch_size", "val_batch_size"):
        if getattr(config, key) % replicas:
            raise ValueError(f"--{'eval_batch_size' if key == 'val_batch_size' else key}={getattr(config, key)} "
                             f"is not divisible by the {replicas} replicas")


def _split_search_data(config: SearchConfig, replicas: int) -> _SearchData:
    """Splits the record set 50/50 per identity and fixes the steps per epoch (full batches of the
    smaller half, at most ``--steps_per_epoch``)."""
    from pocketnet_tf.data import pipeline

    source, first, second = pipeline.search_split(config.data_location, seed=config.seed)
    steps_per_epoch = min(first.size, second.size) // config.batch_size
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"{config.data_location}: halves of {first.size} and {second.size} images give no full "
                         f"batch of {config.batch_size}")
    logging.info("search: %s, %d identities, weight half %d / alpha half %d images, %d steps per epoch, "
                 "%d epochs, %s order%s, %d replica(s)", source.location, source.num_classes, first.size,
                 second.size, steps_per_epoch, config.epochs, "second" if config.second_order else "first",
                 ", original ordering (alpha grad includes the train loss)"
                 if config.alpha_grad_includes_train_loss else "", replicas)
    return _SearchData(config, source, first, second, steps_per_epoch)


def _restore_or_start(config: SearchConfig, model, state: dict | None, steps_per_epoch: int):
    """``(initial step, history so far)``: the newest intact checkpoint and the history up to its
    epoch, or a fresh start; then records the accepted run's configuration."""
    from pocketnet_tf.fitting import checkpoints
    from pocketnet_tf.search import monitor

    run_dir, ckpt_dir = config.run_dir, config.run_dir / "checkpoints"
    initial_step = 0
    history = []
    if state is not None:
        initial_step = checkpoints.restore_checkpoint(model, ckpt_dir, steps_per_epoch, state)
        history = [e for e in monitor.read_history(run_dir / monitor.HISTORY_FILE)
                   if e["epoch"] <= initial_step // steps_per_epoch]
        logging.info("resumed from %s at global step %d (epoch %d, step %d)", state["weights_path"],
                     initial_step, initial_step // steps_per_epoch + 1, initial_step % steps_per_epoch)
    elif config.resume:
        logging.info("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
    logging.info("run record: %s", write_run_records(run_dir, config))  # accepted: record it now
    return initial_step, history


def _fit_search(config: SearchConfig, model, data: _SearchData, val_dataset, initial_step: int,
                history: list) -> list:
    """Searches from ``initial_step`` to the last epoch; returns the per-epoch history. A diverged
    search writes ``{"status": "diverged", "error": ...}`` to ``results.json`` and re-raises."""
    from pocketnet_tf.fitting.checkpoints import ResumableCheckpoint
    from pocketnet_tf.fitting.guard import DivergenceError, DivergenceGuard
    from pocketnet_tf.fitting.loop import fit_epochs
    from pocketnet_tf.search import monitor

    run_dir, steps_per_epoch = config.run_dir, data.steps_per_epoch
    val_steps = -(-data.second.size // config.val_batch_size)
    search_monitor = monitor.SearchMonitor(model.network, run_dir, val_dataset, val_steps=val_steps,
                                           rank_edges_by=config.rank_edges_by,
                                           draw_every_epoch=config.draw_every_epoch, history=history)
    callbacks = [DivergenceGuard(), search_monitor,
                 ResumableCheckpoint(run_dir / "checkpoints", steps_per_epoch, config.checkpoint_every_steps)]
    total_steps = steps_per_epoch * config.epochs
    if initial_step < total_steps:
        try:
            fit_epochs(model, data.epoch_dataset, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                       initial_step=initial_step, callbacks=callbacks, verbose=config.verbose)
        except DivergenceError as err:
            logging.error("%s", err)
            write_json_atomic(run_dir / "results.json", {"status": "diverged", "error": str(err)})
            raise
    else:
        logging.info("search already complete (%d steps)", initial_step)
    if data.source.counter.count:
        logging.warning("data: %s", data.source.counter.summary())
    return search_monitor.history


def _write_results(config: SearchConfig, data: _SearchData, history: list, started: float) -> dict:
    """Selects the genotype (``--select_genotype``), writes it (JSON and the original's text), the
    cell pictures and ``results.json``; returns the results."""
    from pocketnet_tf.search import monitor

    run_dir = config.run_dir
    chosen = monitor.select_epoch(history, config.select_genotype)
    genotype = genotypes_lib.Genotype.from_dict(chosen["genotype"])
    genotypes_lib.save(genotype, run_dir / "genotype.json")
    genotypes_lib.save(genotype, run_dir / "genotype.txt")
    pictures = monitor.draw_pictures(run_dir, genotype, history)
    logging.info("result (%s epoch %d, val top-1 %.4f): %s", config.select_genotype, chosen["epoch"],
                 chosen["val_accuracy"], genotypes_lib.to_text(genotype))
    results_path = run_dir / "results.json"
    previous = monitor.read_json_or_empty(results_path)
    results = {
        "genotype": genotype.to_dict(),
        "genotype_text": genotypes_lib.to_text(genotype),
        "genotype_json": str(run_dir / "genotype.json"),
        "selected_epoch": chosen["epoch"],
        "select_genotype": config.select_genotype,
        "rank_edges_by": config.rank_edges_by,
        "second_order": config.second_order,
        "alpha_grad_includes_train_loss": config.alpha_grad_includes_train_loss,
        "val_accuracy": chosen["val_accuracy"],
        "epochs": len(history),
        "steps_per_epoch": data.steps_per_epoch,
        "num_classes": data.source.num_classes,
        "genotype_per_epoch": {str(e["epoch"]): e["genotype_text"] for e in history},
        "pictures": pictures,
        "corrupt_records": data.source.counter.count,
        "status": "completed",
        "seconds": round(float(previous.get("seconds", 0.0)) + time.time() - started, 1),
    }
    write_json_atomic(results_path, results)
    return results
