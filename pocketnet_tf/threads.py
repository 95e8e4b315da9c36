"""TensorFlow's CPU thread pools for a run: how many kernels run at once (inter-op) and how many
threads one kernel may use (intra-op).

The search step is thousands of small kernels (eight candidates per edge, 112 edges, five passes):
on a CPU, running independent kernels side by side on one thread each beats splitting every
kernel across the cores. Measured on the paper's search step (docs/search.md, Cost; 2 cores):
batch 8 takes 7.5 s per step with TensorFlow's default pools (2 inter-op x 2 intra-op threads),
5.6 s with one intra-op thread, 11.9 s with one inter-op thread; batch 32: 23.8 s and 22.2 s.

The pools exist once per process and are fixed when TensorFlow's runtime starts (its first op),
so :func:`configure_threads` must run before that; later it can only report the pools in use.
"""

from __future__ import annotations

import os

from absl import logging


def _check(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int (0: TensorFlow's default), received {value!r}")
    return value


def configure_threads(inter_op: int, intra_op: int) -> dict:
    """Sets TensorFlow's inter-op and intra-op pool sizes (0 leaves TensorFlow's default: one
    thread per CPU) and returns ``{"inter_op": n, "intra_op": n}`` as they apply to this process
    (0 = TensorFlow's default).

    If the runtime has already started with other sizes, the pools cannot change any more: a
    warning says so and the sizes in use are returned.
    """
    import tensorflow as tf

    threading = tf.config.threading
    wanted = {"inter_op": _check("inter_op threads", inter_op), "intra_op": _check("intra_op threads", intra_op)}
    setters = {"inter_op": (threading.get_inter_op_parallelism_threads, threading.set_inter_op_parallelism_threads),
               "intra_op": (threading.get_intra_op_parallelism_threads, threading.set_intra_op_parallelism_threads)}
    applied = {}
    for name, value in wanted.items():
        get, set_ = setters[name]
        if value and get() != value:
            try:
                set_(value)
            except RuntimeError:
                logging.warning("TensorFlow's runtime is already running: %s threads stay %s (asked for %d); "
                                "set them before the first TensorFlow op (e.g. at the start of the process)",
                                name, get() or f"the default ({os.cpu_count()})", value)
        applied[name] = get()
    return applied
