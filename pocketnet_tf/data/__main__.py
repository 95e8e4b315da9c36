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
_OUT = flags.DEFINE_string("out", None, "synth: output directory; convert: output shard-set directory (or a "
                           ".tfrecord file).")
_SRC = flags.DEFINE_string("src", None, "convert/info: dataset (train.rec directory, folder tree or .tfrecord).")
_IDS = flags.DEFINE_integer("identities", 200, "synth: number of training identities.", lower_bound=2)
_PER = flags.DEFINE_integer("images_per_identity", 20, "synth: images per training identity.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "synth: random seed (same seed and flags -> byte-identical files); convert: "
                             "seed of the shard set's image order.", lower_bound=0)
_SIZE = flags.DEFINE_integer("size", 112, "synth: image side in pixels (112 = insightface crops).", lower_bound=16,
                             upper_bound=1024)
_VAL_IDS = flags.DEFINE_integer("val_identities", 50, "synth: held-out identities in synth_val.bin.", lower_bound=2)
_VAL_PAIRS = flags.DEFINE_integer("val_pairs", 600, "synth: verification pairs in synth_val.bin (half same, half "
                                  "different; 0 = no .bin).", lower_bound=0)
_NUISANCE = flags.DEFINE_float("nuisance", 1.0, "synth: nuisance strength (pose in the image plane, illumination, "
                               "occluders, blur, noise): 0 off, 1 the default, 2 twice as strong.", lower_bound=0.0,
                               upper_bound=3.0)
_SHARDS = flags.DEFINE_integer("shards", None, "convert: number of shards (default: one per ~150 MB of source "
                                "data).", lower_bound=1)
_DECODE = flags.DEFINE_boolean("decode", False, "info: also read and decode every image, counting corrupt ones.")

USAGE = ("usage: python -m pocketnet_tf.data synth --out=DIR [...] | convert --src=DIR --out=OUTDIR [--shards=N] | "
         "info --src=DIR")
_COMMANDS = ("synth", "convert", "info")


def _parse(argv):
    from pocketnet_tf.cli import normalize_dashes

    return FLAGS(normalize_dashes(argv, FLAGS))


def _require(flag, command):
    if flag.value is None:
        raise app.UsageError(f"{command} needs --{flag.name}")
    return flag.value


def _synth():
    from pocketnet_tf.data import synthetic

    config = synthetic.SynthConfig(
        out=_require(_OUT, "synth"),
        identities=_IDS.value,
        images_per_identity=_PER.value,
        seed=_SEED.value,
        size=_SIZE.value,
        val_identities=_VAL_IDS.value,
        val_pairs=_VAL_PAIRS.value,
        nuisance=_NUISANCE.value,
    )
    return synthetic.generate(config)


def _convert():
    from pocketnet_tf.data import convert, tfrecord

    src, out = _require(_SRC, "convert"), _require(_OUT, "convert")
    if out.endswith(tfrecord.TFRECORD_SUFFIXES):
        return convert.convert_to_tfrecord(src, out)
    summary = convert.convert_to_shards(src, out, num_shards=_SHARDS.value, seed=_SEED.value)
    summary["shards"] = len(summary["shards"])
    return summary


def _info():
    from pocketnet_tf.data import pipeline, preprocess

    source = pipeline.open_source(_require(_SRC, "info"))
    summary = {
        "location": source.location,
        "kind": source.kind,
        "num_classes": source.num_classes,
        "num_images": len(source),
        "image_size": list(source.image_size_hint) if source.image_size_hint else None,
    }
    if _DECODE.value:
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
    args = argv[1:]
    if len(args) != 1 or args[0] not in _COMMANDS:
        raise app.UsageError(USAGE)
    try:
        summary = {"synth": _synth, "convert": _convert, "info": _info}[args[0]]()
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
