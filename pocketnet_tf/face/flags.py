"""Flags of the face command (``python -m pocketnet_tf.align [align|enrol|match]``)."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the face command's flags on ``flag_values`` (called only by its ``__main__``)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_list("in", [], "Photos and/or directories of photos (comma separated).", **fv)
    flags.DEFINE_string("out", None, "align: output directory for the crops and faces.json.", **fv)
    flags.DEFINE_string("bundle", None, "Verification bundle directory (metadata.json + .tflite); needed by "
                        "enrol and match, optional for align (its template).", **fv)
    flags.DEFINE_string("gallery", None, "enrol/match: the gallery JSON file (created by enrol if missing).", **fv)
    flags.DEFINE_string("name", None, "enrol: the identity's name.", **fv)
    flags.DEFINE_float("min_score", 0.5, "BlazeFace score threshold.", lower_bound=0.0, upper_bound=1.0, **fv)
    flags.DEFINE_boolean("all_faces", True, "align: write every face (else only the best one per photo).", **fv)
    flags.DEFINE_integer("num_threads", 1, "LiteRT interpreter threads.", lower_bound=1, **fv)
