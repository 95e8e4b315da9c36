"""TensorFlow's process settings for a run: the CPU thread pools -- how many kernels run at once
(inter-op) and how many threads one kernel may use (intra-op) -- and how many passes Grappler's
meta-optimizer makes over each compiled function.

The search step is thousands of small kernels (eight candidates per edge, 112 edges, five passes):
on a CPU, running independent kernels side by side on one thread each beats splitting every
kernel across the cores. Measured on the paper's search step (docs/search.md, Cost; 2 cores):
batch 8 takes 7.5 s per step with TensorFlow's default pools (2 inter-op x 2 intra-op threads),
5.6 s with one intra-op thread, 11.9 s with one inter-op thread; batch 32: 23.8 s and 22.2 s.

The pools exist once per process and are fixed when TensorFlow's runtime starts (its first op),
so :func:`configure_threads` must run before that; later it can only report the pools in use.

Grappler (TensorFlow's graph optimizer) rewrites every compiled function the first time it is
called, by default in two rounds of all its passes. On the search step's graph (20,000 ops in
hundreds of functions) the second round finds almost nothing but costs 5-7 s of the first step;
:func:`graph_optimizer_passes` makes it one round (docs/search.md, Cost).
"""

from __future__ import annotations

import contextlib
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


#: Values of ``--graph_optimizer_passes``: 0 = TensorFlow's default (two rounds), 1 or 2 rounds.
GRAPH_OPTIMIZER_PASSES = (0, 1, 2)


@contextlib.contextmanager
def graph_optimizer_passes(passes: int):
    """Within the block, TensorFlow functions first called from this thread are optimised by
    Grappler's meta-optimizer in ``passes`` rounds (its RewriterConfig ``meta_optimizer_iterations``:
    0 leaves TensorFlow's default, two). Yields the value in effect (``None`` if this TensorFlow has
    no way to set it; a warning says so). The thread's previous options come back on exit.

    The setting travels with each function call (the eager context's per-thread function-call
    options, the ``config_proto`` attribute of the call), and a function is optimised once, on its
    first call: calls made before the block keep their optimisation. The arithmetic is the same
    either way; only which graph rewrites get a second chance differs.
    """
    if isinstance(passes, bool) or passes not in GRAPH_OPTIMIZER_PASSES:
        raise ValueError(f"graph optimizer passes must be one of {GRAPH_OPTIMIZER_PASSES} (0: TensorFlow's "
                         f"default), received {passes!r}")
    if not passes:
        yield 0
        return
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        ctx = context.context()
        previous = ctx.function_call_options  # materialises the thread's defaults (soft placement etc.)
        config = config_pb2.ConfigProto.FromString(previous.config_proto_serialized)
        config.graph_options.rewrite_options.meta_optimizer_iterations = passes
        ctx.function_call_options = context.FunctionCallOptions(executor_type=previous.executor_type,
                                                                config_proto=config)
    except (ImportError, AttributeError, TypeError, ValueError) as e:  # a TensorFlow without these internals
        logging.warning("cannot set Grappler's meta-optimizer passes in this TensorFlow (%s: %s); its default "
                        "(two) stays", type(e).__name__, e)
        yield None
        return
    try:
        yield passes
    finally:
        ctx.function_call_options = previous
