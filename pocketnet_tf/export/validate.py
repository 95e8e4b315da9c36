"""Validation of a converted model against the Keras model it came from.

Every conversion is checked on held-out images: per-image cosine similarity between the Keras
and the TFLite embedding (min / mean / 1st percentile) and the max absolute difference; with
verification ``.bin`` sets also the verification accuracy of both models side by side (the
protocol of :mod:`pocketnet_tf.eval.verification`). A conversion passes when every statistic
meets its mode's thresholds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

__all__ = ["DEFAULT_THRESHOLDS", "Thresholds", "embedding_agreement", "calibrate_threshold", "check", "markdown_report"]


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Pass criteria; ``None`` disables a criterion."""

    min_cosine: float | None
    mean_cosine: float | None
    p01_cosine: float | None = None
    max_abs_error: float | None = None
    #: largest allowed drop of verification accuracy (percentage points) on any ``.bin`` set.
    max_accuracy_drop: float | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


#: Defaults per mode, set from the measurements in ``tflite/README.md`` with a margin: fp32 and
#: fp16 are exact up to rounding; the quantised modes are held to what a good quantisation of a
#: trained net reaches, so a broken calibration (e.g. a constant image set) fails.
DEFAULT_THRESHOLDS = {
    "fp32": Thresholds(min_cosine=0.99999, mean_cosine=0.99999, p01_cosine=0.99999, max_accuracy_drop=0.1),
    "fp16": Thresholds(min_cosine=0.999, mean_cosine=0.9995, p01_cosine=0.999, max_accuracy_drop=0.2),
    "dynamic": Thresholds(min_cosine=0.98, mean_cosine=0.99, p01_cosine=0.98, max_accuracy_drop=0.5),
    "int8": Thresholds(min_cosine=0.95, mean_cosine=0.98, p01_cosine=0.95, max_accuracy_drop=1.0),
    "int16x8": Thresholds(min_cosine=0.99, mean_cosine=0.995, p01_cosine=0.99, max_accuracy_drop=0.5),
}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-30)


def embedding_agreement(reference: np.ndarray, converted: np.ndarray) -> dict:
    """Per-image agreement statistics between two embedding matrices of equal shape."""
    reference = np.asarray(reference, np.float64)
    converted = np.asarray(converted, np.float64)
    if reference.shape != converted.shape or reference.ndim != 2 or len(reference) == 0:
        raise ValueError(f"embedding shapes differ or are empty: {reference.shape} vs {converted.shape}")
    cos = _cosines(reference, converted)
    cos = np.where(np.isfinite(cos), cos, -1.0)  # a NaN embedding counts as the worst agreement
    err = np.abs(reference - converted)
    return {
        "images": int(len(reference)),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "cosine_p01": float(np.percentile(cos, 1)),
        "max_abs_error": float(np.nanmax(err)) if np.isfinite(err).any() else float("inf"),
        "reference_abs_max": float(np.abs(reference).max()),
        "worst_image": int(np.argmin(cos)),
    }


def check(agreement: dict, thresholds: Thresholds, verification: dict | None = None) -> list[str]:
    """Reasons the conversion fails (empty list: it passes)."""
    reasons = []
    for key, stat, label in (
        ("min_cosine", "cosine_min", "min cosine"),
        ("mean_cosine", "cosine_mean", "mean cosine"),
        ("p01_cosine", "cosine_p01", "p01 cosine"),
    ):
        limit = getattr(thresholds, key)
        if limit is not None and not agreement[stat] >= limit:
            reasons.append(f"{label} {agreement[stat]:.6f} < {limit} over {agreement['images']} held-out images")
    if thresholds.max_abs_error is not None and not agreement["max_abs_error"] <= thresholds.max_abs_error:
        reasons.append(f"max abs error {agreement['max_abs_error']:.4g} > {thresholds.max_abs_error}")
    if verification and thresholds.max_accuracy_drop is not None:
        for name, result in verification.items():
            drop = 100.0 * (result["keras"]["accuracy"] - result["tflite"]["accuracy"])
            if not drop <= thresholds.max_accuracy_drop:
                reasons.append(
                    f"{name}: verification accuracy {100 * result['tflite']['accuracy']:.2f}% vs Keras "
                    f"{100 * result['keras']['accuracy']:.2f}% (drop {drop:.2f} > {thresholds.max_accuracy_drop} points)"
                )
    return reasons


def calibrate_threshold(embeddings: np.ndarray, issame, *, far: float, source: str) -> dict:
    """Cosine-similarity decision threshold at a target false accept rate.

    Scores are cosines of the (single-image, no flip) embeddings of each pair, as the app computes
    them. The threshold is the smallest score value whose measured FAR (impostor pairs scoring
    ``>= threshold``) is ``<= far``.
    """
    issame = np.asarray(issame, bool).reshape(-1)
    e = np.asarray(embeddings, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-30)
    scores = np.sum(e[0::2] * e[1::2], axis=1)
    impostor = np.sort(scores[~issame])[::-1]
    genuine = scores[issame]
    if impostor.size == 0 or genuine.size == 0:
        raise ValueError(f"{source}: threshold calibration needs both genuine and impostor pairs")
    allowed = int(np.floor(far * impostor.size))  # impostors that may score >= threshold
    # Accept strictly above the (allowed+1)-th highest impostor score.
    threshold = float(np.nextafter(impostor[allowed], np.inf)) if allowed < impostor.size else float(impostor[-1])
    far_measured = float(np.mean(impostor >= threshold))
    return {
        "metric": "cosine",
        "rule": "same person if cosine(e1, e2) >= threshold (e = one embedding per image, no flip)",
        "threshold": threshold,
        "squared_l2_threshold": 2.0 - 2.0 * threshold,
        "far_target": far,
        "far_measured": far_measured,
        "tar": float(np.mean(genuine >= threshold)),
        "impostor_pairs": int(impostor.size),
        "genuine_pairs": int(genuine.size),
        "far_resolution_note": (
            None if impostor.size * far >= 1 else
            f"only {impostor.size} impostor pairs: FAR {far} is below the set's resolution; the threshold "
            "rejects every impostor pair of this set"
        ),
        "set": source,
    }


def markdown_report(report: dict) -> str:
    """A short human-readable rendering of ``report.json``."""
    a = report.get("agreement") or {}
    lines = [
        f"# TFLite conversion report: {report.get('mode')} ({'PASSED' if report.get('passed') else 'FAILED'})",
        "",
        f"- model: `{report.get('source_model')}`",
        f"- backend: {report.get('backend')}; PReLU rewrite: {report.get('export', {}).get('prelu_rewrite')}",
        f"- size: {report.get('size_bytes')} bytes; fully delegated to XNNPACK: {report.get('fully_delegated')}",
        "",
        "| statistic | value | threshold |",
        "|---|---|---|",
    ]
    th = report.get("thresholds", {})
    for label, key, tkey in (
        ("cosine min", "cosine_min", "min_cosine"),
        ("cosine mean", "cosine_mean", "mean_cosine"),
        ("cosine p01", "cosine_p01", "p01_cosine"),
        ("max abs error", "max_abs_error", "max_abs_error"),
    ):
        if key in a:
            lines.append(f"| {label} | {a[key]:.6g} | {th.get(tkey)} |")
    if a:
        lines.append(f"| held-out images | {a['images']} | |")
    ver = report.get("verification") or {}
    if ver:
        lines += ["", "| set | Keras accuracy | TFLite accuracy | drop (points) |", "|---|---|---|---|"]
        for name, r in ver.items():
            k, t = 100 * r["keras"]["accuracy"], 100 * r["tflite"]["accuracy"]
            lines.append(f"| {name} | {k:.2f} | {t:.2f} | {k - t:.2f} |")
    if report.get("reasons"):
        lines += ["", "Failed because:"] + [f"- {r}" for r in report["reasons"]]
    speed = report.get("latency_vs_fp32")
    if speed:
        from pocketnet_tf.export.speed import format_cpu

        lines += ["", f"Latency on the converting machine ({speed['num_threads']} thread, min of {speed['runs']}, "
                  f"load {speed['load_average']}): {speed['mode']} {speed['converted_ms']['min_ms']:.3f} ms vs fp32 "
                  f"{speed['fp32_ms']['min_ms']:.3f} ms = {speed['ratio_min']:.2f}x; CPU: {format_cpu(speed['cpu'])}"]
    cal = report.get("threshold")
    if cal:
        lines += ["", f"Decision threshold: cosine >= {cal['threshold']:.4f} at FAR {cal['far_target']} "
                  f"(measured FAR {cal['far_measured']:.4g}, TAR {cal['tar']:.4f}) on {cal['set']}"]
    return "\n".join(lines) + "\n"


def to_json_text(obj) -> str:
    return json.dumps(obj, indent=2) + "\n"
