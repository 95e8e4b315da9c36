"""``python -m pocketnet_tf.benchmark input``: images per second of the training input pipeline,
beside the decode-only rate of the same images on the same threads.

* ``images_per_s``: :func:`pocketnet_tf.data.pipeline.build_dataset` in training mode (read,
  decode, flip, normalise, batch), batches pulled one after the other from an iterator as
  ``fit`` pulls them, after ``warmup`` untimed batches.
* ``decode_only_images_per_s``: the same number of images, read into memory first, decoded by
  ``tf.io.decode_jpeg``/``decode_png`` (the pipeline's decoder settings) in a ``tf.data`` map on a
  private pool of the same number of threads and batched: the physical limit of this machine
  for this work.

Both are measured in one process, one after the other; their ratio is what to compare across
runs. On a machine shared with other work the wall-clock rates also measure the other work, so
the process CPU time of each timed window is reported too (``*_per_cpu_s``: images per second of
CPU the process used, all its threads).
"""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["benchmark_input", "describe"]


def _time_batches(dataset, warmup: int, steps: int) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, images) of ``steps`` batches after ``warmup``."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    images = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        x, _ = next(iterator)
        images += int(x.shape[0])
    return time.perf_counter() - start, time.process_time() - cpu_start, images


def _decode_only(encoded: list[bytes], *, size: int, batch_size: int, threads: int):
    import tensorflow as tf

    from pocketnet_tf.data import preprocess

    ds = tf.data.Dataset.from_tensor_slices(np.array(encoded, dtype=object)).repeat()
    ds = ds.map(lambda data: preprocess.decode_image_tf(data, size), num_parallel_calls=threads)
    ds = ds.map(lambda image: (image, 0)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def benchmark_input(data, *, batch_size: int, threads: int, steps: int, warmup: int = 3, seed: int = 0) -> dict:
    """Measures the pipeline and the decode-only rate (see the module doc); returns the figures."""
    from pocketnet_tf.data import pipeline

    source = pipeline.open_source(data)
    dataset, info = pipeline.build_dataset(source, batch_size=batch_size, training=True, seed=seed, threads=threads)
    seconds, cpu_seconds, images = _time_batches(dataset.repeat(), warmup, steps)
    count = min(len(source), (warmup + steps) * batch_size)
    positions = np.random.default_rng(seed).permutation(len(source))[:count]
    encoded = [b for b in source.read_many(positions) if b]
    decode_ds = _decode_only(encoded, size=info.image_size, batch_size=batch_size, threads=threads)
    decode_seconds, decode_cpu_seconds, decode_images = _time_batches(decode_ds, warmup, steps)
    rate, cpu_rate = images / seconds, images / cpu_seconds
    decode_rate, decode_cpu_rate = decode_images / decode_seconds, decode_images / decode_cpu_seconds
    return {
        "data": str(info.location), "kind": info.kind, "image_size": info.image_size, "batch_size": batch_size,
        "threads": threads, "steps": steps, "images": images, "seconds": round(seconds, 3),
        "images_per_s": round(rate, 1), "decode_only_images_per_s": round(decode_rate, 1),
        "ratio_to_decode_only": round(rate / decode_rate, 3),
        "images_per_cpu_s": round(cpu_rate, 1), "decode_only_images_per_cpu_s": round(decode_cpu_rate, 1),
        "cpu_ratio_to_decode_only": round(cpu_rate / decode_cpu_rate, 3), "corrupt_records": info.corrupt.count,
        "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def describe(result: dict) -> str:
    """One line for a human."""
    return (f"{result['kind']} {result['data']}, batch {result['batch_size']}, {result['threads']} thread(s): "
            f"{result['images_per_s']} images/s; decode only {result['decode_only_images_per_s']} images/s "
            f"({result['ratio_to_decode_only']:.0%})")
