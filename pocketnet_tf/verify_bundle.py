"""Re-run a verification bundle's golden vectors through LiteRT: ``python -m pocketnet_tf.verify_bundle DIR``.

Checks the model's sha256 against metadata.json, the embedded metadata against the side-car, each
golden image against its stored input tensor and each input against its stored embedding.
Exit code 0 when everything matches, 2 on a mismatch (the message names the file), 1 on usage.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python -m pocketnet_tf.verify_bundle DIR")
    from pocketnet_tf.export.bundle import BundleError, verify_bundle
    from pocketnet_tf.export.config import VerifyConfig

    config = VerifyConfig.from_flags(argv[1], FLAGS)
    try:
        result = verify_bundle(config.bundle, num_threads=config.num_threads)
    except (BundleError, ValueError, FileNotFoundError) as err:
        print(f"verify_bundle: FAILED: {err}", file=sys.stderr)
        return 2
    if config.json:
        print(json.dumps(result, indent=2))
    else:
        for case in result["cases"]:
            print(f"{case['case']}: cosine {case['cosine']:.7f}, max abs error {case['max_abs_error']:.3g}, "
                  f"bit exact {case['bit_exact']}")
        print(f"verify_bundle: OK ({len(result['cases'])} golden vectors, model sha256 {result['model_sha256']})")
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.export import flags as export_flags

    export_flags.define_verify_flags(FLAGS)
    flags.adopt_module_key_flags(export_flags)  # listed by --help
    app.run(main, flags_parser=parse_flags)
