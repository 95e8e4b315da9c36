"""absl flags of the data stage, defined only by the entry points that run it.

:func:`define_flags` holds ``python -m pocketnet_tf.data synth | convert | info``'s flags (names
equal the fields of :class:`pocketnet_tf.data.config.DataConfig`); :func:`define_benchmark_flags`
the flags of ``python -m pocketnet_tf.benchmark input`` that the training stage's benchmark flags
(:func:`pocketnet_tf.train.flags.define_benchmark_flags`) do not already give.
"""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the data command's flags on ``flag_values`` (called only by ``data/__main__``)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("out", None, "synth: output directory; convert: output shard-set directory (or a "
                        ".tfrecord file).", **fv)
    flags.DEFINE_string("src", None, "convert/info: dataset (train.rec directory, folder tree or .tfrecord).", **fv)
    flags.DEFINE_integer("identities", 200, "synth: number of training identities.", lower_bound=2, **fv)
    flags.DEFINE_integer("images_per_identity", 20, "synth: images per training identity.", lower_bound=1, **fv)
    flags.DEFINE_integer("seed", 0, "synth: random seed (same seed and flags -> byte-identical files); convert: "
                         "seed of the shard set's image order.", lower_bound=0, **fv)
    flags.DEFINE_integer("size", 112, "synth: image side in pixels (112 = insightface crops).", lower_bound=16,
                         upper_bound=1024, **fv)
    flags.DEFINE_integer("val_identities", 50, "synth: held-out identities in synth_val.bin.", lower_bound=2, **fv)
    flags.DEFINE_integer("val_pairs", 600, "synth: verification pairs in synth_val.bin (half same, half "
                         "different; 0 = no .bin).", lower_bound=0, **fv)
    flags.DEFINE_float("nuisance", 1.0, "synth: nuisance strength (pose in the image plane, illumination, "
                       "occluders, blur, noise): 0 off, 1 the default, 2 twice as strong.", lower_bound=0.0,
                       upper_bound=3.0, **fv)
    flags.DEFINE_integer("shards", None, "convert: number of shards (default: one per ~150 MB of source "
                         "data).", lower_bound=1, **fv)
    flags.DEFINE_boolean("decode", False, "info: also read and decode every image, counting corrupt ones.", **fv)


def define_benchmark_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the flags only ``python -m pocketnet_tf.benchmark input`` reads (the input pipeline's
    throughput, :mod:`pocketnet_tf.data.throughput`)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("data", None, "input: dataset to read (train.rec directory, shard set, folder tree, "
                        ".tfrecord).", **fv)
    flags.DEFINE_integer("threads", 1, "input: tf.data threads (a private pool) for the pipeline and decode-only "
                         "runs.", lower_bound=1, **fv)
