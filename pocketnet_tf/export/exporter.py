"""Convert -> validate -> metadata -> bundle, all or nothing.

:func:`run_export` builds the export model, converts it, validates the result against the Keras
model on held-out images (and ``.bin`` sets), and only if every check passes writes the bundle:
everything is assembled in a temporary directory beside ``out`` and moved into place at the end.
A failed validation writes ``out/failed_report.json`` and ``out/failed_report.md`` and nothing
else (an earlier bundle in ``out`` stays untouched).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pocketnet_tf.export import bundle as bundle_lib
from pocketnet_tf.export import metadata as metadata_lib
from pocketnet_tf.export import quantize, rewrite, seal, validate
from pocketnet_tf.export.config import ExportConfig
from pocketnet_tf.io_utils import (
    atomic_path, check_output, remove_stale_temporaries, write_json_atomic, write_text_atomic,
)

__all__ = ["ExportConfig", "ExportValidationError", "load_keras_model", "run_export"]


class ExportValidationError(RuntimeError):
    """The converted model missed its validation thresholds; nothing was written but the report."""

    def __init__(self, report: dict):
        self.report = report
        super().__init__("; ".join(report.get("reasons", [])) or "validation failed")


def load_keras_model(path):
    """A ``.keras`` file or a SavedModel directory as a Keras model (SavedModels via ``TFSMLayer``:
    their graph cannot be rewritten)."""
    import keras

    import pocketnet_tf.layers  # noqa: F401  (register the package's classes)
    import pocketnet_tf.models  # noqa: F401

    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"{path}: directory is not a SavedModel (no saved_model.pb)")
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        if "serving_default" not in loaded.signatures:
            raise ValueError(f"{path}: the SavedModel has no serving_default signature")
        endpoint = "serving_default"
        _, kwargs = loaded.signatures[endpoint].structured_input_signature
        specs = list(kwargs.values())
        if len(specs) != 1:
            raise ValueError(f"{path}: expected one image input in signature {endpoint!r}, got {len(specs)}")
        layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint)
        inp = keras.Input(tuple(specs[0].shape[1:]), name="image")
        out = layer(inp)
        if isinstance(out, dict):
            if len(out) != 1:
                raise ValueError(f"{path}: endpoint {endpoint!r} has outputs {sorted(out)}; expected one")
            out = next(iter(out.values()))
        return keras.Model(inp, out, name=path.name), True
    try:
        return keras.saving.load_model(path, compile=False), False
    except Exception as err:  # Keras raises many types for a bad archive
        raise ValueError(f"{path}: cannot load Keras model ({type(err).__name__}: {err})") from None


def _images(config: ExportConfig, size: int):
    from pocketnet_tf.export.images import load_images

    calibration = np.zeros((0, size, size, 3), np.uint8)
    if config.representative:
        calibration = load_images(config.representative, config.num_calibration if config.mode in
                                  quantize.NEEDS_CALIBRATION else 0, seed=config.seed, size=size)
    if config.validation_data:
        held_out = load_images(config.validation_data, config.num_validation, seed=config.seed + 1, size=size)
        where = config.validation_data
    elif config.representative:
        held_out = load_images(config.representative, config.num_validation, seed=config.seed,
                               skip=len(calibration), size=size)
        where = f"{config.representative} (disjoint from the calibration images)"
    else:
        held_out = load_images(config.bin[0], config.num_validation, seed=config.seed + 1, size=size)
        where = config.bin[0]
    return calibration, held_out, where


def _model_space(pixels: np.ndarray, raw_input: bool) -> np.ndarray:
    from pocketnet_tf.data import preprocess

    return np.asarray(pixels, np.float32) if raw_input else preprocess.normalize(pixels)


def _verification(model, tflite_path: Path, config: ExportConfig):
    """Per-set Keras vs TFLite accuracy (flip protocol) and the threshold calibration."""
    from pocketnet_tf.eval import embedders
    from pocketnet_tf.eval import verification as ver

    keras_embedder = embedders.KerasEmbedder(model, source=config.model, batch_size=32)
    tflite_embedder = embedders.TFLiteEmbedder(
        tflite_path, batch_size=32, num_threads=config.num_threads,
        normalization=None if config.raw_input else embedders.DEFAULT_NORMALIZATION,
    )
    results, threshold = {}, None
    for i, path in enumerate(config.bin):
        vset = ver.load_verification_set(path)
        side = {}
        for key, embedder in (("keras", keras_embedder), ("tflite", tflite_embedder)):
            batches = vset.pixel_batches(64, embedder.input_size[0])
            e_orig, e_flip = ver.embed_with_flip(embedder, batches, total=len(vset.images))
            result = ver.evaluate_embeddings(e_orig, e_flip, vset.issame, name=vset.name)
            side[key] = {"accuracy": result.accuracy, "accuracy_std": result.accuracy_std,
                         "best_threshold": result.best_threshold, "xnorm": result.xnorm}
            if key == "tflite" and i == 0:
                threshold = validate.calibrate_threshold(e_orig, vset.issame, far=config.far, source=Path(path).name)
        results[vset.name] = side
    return results, threshold


def run_export(config: ExportConfig) -> dict:
    """Runs the whole export; returns the report. Raises :class:`ExportValidationError` on failure."""
    out = Path(config.out)
    check_output(out, directory=True)  # an unwritable --out fails now, not after the conversion
    _remove_stale_install(out)
    model, from_saved_model = load_keras_model(config.model)
    prelu = config.resolved_prelu_rewrite if not from_saved_model else "none"
    export_model, export_info = rewrite.build_export_model(
        model, raw_input=config.raw_input, l2_normalize=config.l2_normalize,
        batch_size=None if config.dynamic_batch else 1, prelu=prelu,
    ) if not from_saved_model else _saved_model_export(model, config)
    height, width = (int(d) for d in model.inputs[0].shape[1:3])
    if height != width:
        raise ValueError(f"{config.model}: square input expected, got {height}x{width}")
    calibration, held_out, held_out_source = _images(config, height)
    logging.info("converting %s to %s (%d calibration, %d held-out images)", config.model, config.mode,
                 len(calibration), len(held_out))
    tflite_bytes, backend = quantize.to_tflite(
        export_model, config.mode, calibration=_model_space(calibration, config.raw_input), backend=config.backend,
    )
    report = {
        "source_model": str(config.model),
        "mode": config.mode,
        "backend": backend,
        "export": export_info,
        "calibration_images": int(len(calibration)),
        "calibration_source": config.representative if len(calibration) else None,
        "held_out_source": held_out_source,
        "thresholds": config.thresholds().to_json(),
        "ops": quantize.op_histogram(tflite_bytes),
    }
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".tmp", dir=_parent(out)) as work:
        work = Path(work)
        candidate = work / "candidate.tflite"
        candidate.write_bytes(tflite_bytes)
        converted = _validate_candidate(report, model, export_model, candidate, held_out, config)
        stage = work / "bundle"
        meta = _write_bundle(stage, report, model, tflite_bytes, held_out, converted, config)
        _carry_over(out, stage)
        meta["bundle"] = seal.write_manifest(stage)
        write_json_atomic(stage / "metadata.json", meta)
        _install(stage, out)
    return report


def _validate_candidate(report: dict, model, export_model, candidate: Path, held_out: np.ndarray,
                        config: ExportConfig) -> np.ndarray:
    """Measures the converted model into ``report`` (delegation, latency, agreement with Keras on
    the held-out faces, verification accuracy and threshold) and judges it against the thresholds.
    Returns its held-out embeddings; on failure writes ``failed_report.json``/``.md`` into ``--out``
    and raises :class:`ExportValidationError`."""
    from pocketnet_tf.export.runtime import TFLiteRunner

    tflite_bytes = candidate.read_bytes()
    report["fully_delegated"] = _delegated(candidate)
    if config.latency_runs > 0:
        from pocketnet_tf.export.speed import latency_vs_fp32

        report["latency_vs_fp32"] = latency_vs_fp32(export_model, tflite_bytes, config.mode,
                                                    runs=config.latency_runs, num_threads=config.num_threads)
    reference = rewrite.reference_outputs(model, held_out, l2_normalize=config.l2_normalize)
    converted = TFLiteRunner(candidate, num_threads=config.num_threads).run(_model_space(held_out, config.raw_input))
    report["agreement"] = validate.embedding_agreement(reference, converted)
    verification, threshold = _verification(model, candidate, config) if config.bin else ({}, None)
    report["verification"] = verification
    report["threshold"] = threshold
    reasons = validate.check(report["agreement"], config.thresholds(), verification)
    report["reasons"] = reasons
    report["passed"] = not reasons
    if reasons:
        out = Path(config.out)
        write_json_atomic(out / "failed_report.json", report)
        write_text_atomic(out / "failed_report.md", validate.markdown_report(report))
        raise ExportValidationError(report)
    return converted


def _write_bundle(stage: Path, report: dict, model, tflite_bytes: bytes, held_out: np.ndarray,
                  converted: np.ndarray, config: ExportConfig) -> dict:
    """Writes the bundle into the new directory ``stage``: ``model.tflite`` with its metadata
    embedded (checked to give the same outputs), ``metadata.json``, the golden vectors and the
    report. Returns the metadata (the caller adds the manifest)."""
    from pocketnet_tf.export.runtime import TFLiteRunner

    meta = metadata_lib.build_metadata(
        tflite_bytes=tflite_bytes, model_name=model.name, mode=config.mode, backend=report["backend"],
        export_info=report["export"], embedding_size=int(model.outputs[0].shape[-1]),
        quantization=metadata_lib.quantization_summary(tflite_bytes, config.mode), threshold=report["threshold"],
    )
    final_bytes = metadata_lib.embed_metadata(tflite_bytes, meta)
    stage.mkdir()
    (stage / "model.tflite").write_bytes(final_bytes)
    meta["model"]["sha256"] = metadata_lib.sha256_file(stage / "model.tflite")
    meta["model"]["size_bytes"] = len(final_bytes)
    report["size_bytes"] = len(final_bytes)
    report["sha256"] = meta["model"]["sha256"]
    # The model must still run, and identically, once the metadata is embedded.
    after = TFLiteRunner(final_bytes).run(_model_space(held_out[:2], config.raw_input))
    if not np.array_equal(after, converted[:2]):
        raise RuntimeError("embedding the metadata changed the model's outputs")
    write_json_atomic(stage / "metadata.json", meta)
    golden = bundle_lib.write_golden(stage, model_bytes=final_bytes, meta=meta,
                                     faces=held_out[: config.golden_count], mode=config.mode)
    golden["model_sha256"] = meta["model"]["sha256"]
    write_json_atomic(stage / "golden" / "golden.json", golden)
    write_json_atomic(stage / "report.json", report)
    write_text_atomic(stage / "report.md", validate.markdown_report(report))
    return meta


def _saved_model_export(model, config: ExportConfig):
    import keras

    if config.raw_input or config.l2_normalize:
        raise ValueError(f"{config.model}: --raw_input/--l2_normalize need a .keras model, not a SavedModel")
    shape = tuple(model.inputs[0].shape)
    image = keras.Input(shape[1:], batch_size=None if config.dynamic_batch else 1, name="image")
    export = keras.Model(image, model(image))
    return export, {"prelu_rewrite": "none", "prelu_counts": {}, "raw_input": False, "l2_normalized": False,
                    "batch_size": None if config.dynamic_batch else 1}


def _remove_stale_install(out: Path) -> None:
    """Cleans up (and logs) what a convert killed during its install left beside ``out``: its
    temporaries; an earlier bundle moved aside to ``.<out>.old`` goes back into place."""
    real = Path(os.path.realpath(out))
    for line in remove_stale_temporaries(real.parent, target=real.name):
        logging.warning("%s", line)
    if real != out.absolute():
        for line in remove_stale_temporaries(out.absolute().parent, target=out.name):
            logging.warning("%s", line)


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _delegated(path: Path):
    from pocketnet_tf.export.runtime import is_fully_delegated

    return is_fully_delegated(path)


def _carry_over(out: Path, stage: Path) -> None:
    """Copies the files of ``out`` that the new bundle does not replace into ``stage`` before it is
    sealed, so they are listed in its manifest (a failed conversion's report is not carried)."""
    if not out.is_dir():
        return
    for item in out.iterdir():
        if item.name in seal.FAILED_REPORTS or (stage / item.name).exists():
            continue
        if item.is_symlink():  # a sealed bundle holds no links
            logging.warning("%s: a symbolic link is not carried into the new bundle", item)
        else:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)


def _install(stage: Path, out: Path) -> None:
    """Moves the finished bundle to ``out`` (replacing an earlier bundle; a stale failed report is
    removed, other files in ``out`` are kept)."""
    check_output(out, directory=True)
    if out.exists():
        for name in ("failed_report.json", "failed_report.md"):
            (out / name).unlink(missing_ok=True)
        for item in out.iterdir():
            if not (stage / item.name).exists():
                target = stage / item.name
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, target)
    with atomic_path(out) as tmp:
        shutil.move(str(stage), str(tmp))
