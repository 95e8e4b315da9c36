"""``python -m pocketnet_tf.data synth | convert | info``: make, convert and inspect face datasets.

  synth    --out=DIR [--identities=N --images_per_identity=M --seed=S --size=112
           --val_identities=K --val_pairs=P --nuisance=1.0]
           writes DIR/train.rec, train.idx, property (insightface layout) and DIR/synth_val.bin
           (verification pairs of held-out identities).
  convert  --src=DIR|FILE --out=OUTDIR [--shards=N --seed=S]
           any dataset -> a TFRecord shard set in OUTDIR (new or empty): N shards (default: about
           150 MB each), index.npz and manifest.json, images in a seeded random order, with a
           progress bar on stderr. --out=FILE.tfrecord writes one TFRecord file in source order.
  info     --src=DIR|FILE [--decode]
           classes, images and corrupt records of a dataset.

Flag names may be written with dashes (``--images-per-identity``) or underscores.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
USAGE = ("usage: python -m pocketnet_tf.data synth --out=DIR [...] | convert --src=DIR --out=OUTDIR [--shards=N] | "
         "info --src=DIR")


def _synth(config):
    from pocketnet_tf.data import synthetic

    return synthetic.generate(config.synth_config())


def _convert(config):
    from pocketnet_tf.data import convert, tfrecord

    if config.out.endswith(tfrecord.TFRECORD_SUFFIXES):
        return convert.convert_to_tfrecord(config.src, config.out)
    summary = convert.convert_to_shards(config.src, config.out, num_shards=config.shards, seed=config.seed)
    summary["shards"] = len(summary["shards"])
    return summary


def _info(config):
    from pocketnet_tf.data import pipeline, preprocess

    source = pipeline.open_source(config.src)
    summary = {
        "location": source.location,
        "kind": source.kind,
        "num_classes": source.num_classes,
        "num_images": len(source),
        "image_size": list(source.image_size_hint) if source.image_size_hint else None,
    }
    if config.decode:
        for i in range(len(source)):
            try:
                preprocess.probe_image(source.read_image(i), source=source.describe(i))
            except ValueError as err:
                source.counter.add(str(err), key=("pos", i))
    if source.kind == "shards":
        manifest = source.backend.manifest
        summary["format_version"] = manifest["format_version"]
        summary["images_per_shard"] = {s["path"]: s["num_images"] for s in manifest["shards"]}
    summary["corrupt_records"] = source.counter.count
    summary["corrupt_examples"] = source.counter.messages[:5]
    return summary


def main(argv):
    from pocketnet_tf.data.config import COMMANDS, DataConfig

    args = argv[1:]
    if len(args) != 1 or args[0] not in COMMANDS:
        raise app.UsageError(USAGE)
    try:
        config = DataConfig.from_flags(args[0], FLAGS)
    except ValueError as err:  # a subcommand's missing flag
        raise app.UsageError(str(err)) from None
    try:
        summary = {"synth": _synth, "convert": _convert, "info": _info}[config.command](config)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.data import flags as data_flags

    data_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(data_flags)  # listed by --help
    app.run(main, flags_parser=parse_flags)
