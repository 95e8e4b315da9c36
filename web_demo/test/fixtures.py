"""Test material for the browser tests (``npm test``), made with pocketnet_tf in real formats.

    python web_demo/test/fixtures.py OUT_DIR

Writes into OUT_DIR (skipping what exists):

* ``bundle_fp32/``, ``bundle_int8/``: bundles of a tiny Keras model (``tests.factory.bundle_model``, the Android tests' model)
  written by ``python -m pocketnet_tf.convert`` from a synthetic RecordIO set and ``.bin``;
* ``bundle_tampered/``: ``bundle_fp32`` with one byte of model.tflite flipped;
* ``bundle_sealed/``: ``bundle_fp32``, whose converter-written seal is checked against the agreed format, and
  broken variants listed in ``refusals.json`` (sealed file changed, manifest changed, wrong
  metadata schema, input spec the model does not have);
* ``scenes/``: each fp32 golden face placed into a 320x240 scene by a known similarity, with
  ``cases.json`` holding its 5 landmarks, pocketnet_tf's 5-point crop and model input, BlazeFace's
  raw outputs, detections and keypoint crop (what the page must reproduce);
* ``camera_alice.y4m``, ``camera_bob.y4m``: YUV4MPEG2 videos (Chromium's fake camera) of two
  synthetic identities, and ``camera.json`` with their frames' identities.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pocketnet_tf.data import align, preprocess, synthetic  # noqa: E402  (after the path)
from pocketnet_tf.face import detect  # noqa: E402
from pocketnet_tf.export.bundle import model_input  # noqa: E402
from tests import factory  # noqa: E402

SCENE_W, SCENE_H = 320, 240
BACKGROUND = 96


def convert(root: Path, mode: str) -> Path:
    out = root / f"bundle_{mode}"
    if (out / "metadata.json").exists():
        return out
    model = root / "tiny.keras"
    if not model.exists():
        factory.bundle_model().save(model)
    data = root / "data"
    if not (data / "synth_val.bin").exists():
        factory.synthetic_faces(data, size=112)
    cmd = [sys.executable, "-m", "pocketnet_tf.convert", f"--model={model}", f"--mode={mode}", f"--out={out}",
           f"--representative={data}", f"--bin={data / 'synth_val.bin'}", "--num_calibration=10",
           "--num_validation=6", "--golden_count=4", "--max_accuracy_drop=100",
           "--latency_runs=0"]  # the speed report is tested in tests/export; keep npm test quick
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out


def tamper(root: Path, source: Path) -> Path:
    out = root / "bundle_tampered"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    model = bytearray((out / "model.tflite").read_bytes())
    model[len(model) // 2] ^= 0x01
    (out / "model.tflite").write_bytes(bytes(model))
    return out


def _copy(root: Path, source: Path, name: str) -> Path:
    out = root / name
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    return out


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def seal(root: Path, source: Path) -> Path:
    """``bundle_sealed``: a copy of ``source``, whose seal the converter wrote, checked here against
    the agreed format computed independently (every regular file but metadata.json/manifest.json,
    sorted, with size and SHA-256; its hash in ``metadata.bundle``)."""
    out = _copy(root, source, "bundle_sealed")
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in ("metadata.json", "manifest.json"))
    manifest = {"schema": "pocketnet_tf.bundle_manifest/1", "files": [
        {"path": p.relative_to(out).as_posix(), "bytes": p.stat().st_size, "sha256": _sha(p.read_bytes())} for p in files]}
    written = json.loads((out / "manifest.json").read_text())
    if written != manifest:
        raise AssertionError(f"{out}/manifest.json differs from the agreed format: {written} != {manifest}")
    meta = json.loads((out / "metadata.json").read_text())
    expected = {"manifest": "manifest.json", "manifest_sha256": _sha((out / "manifest.json").read_bytes())}
    if meta.get("bundle") != expected:
        raise AssertionError(f"{out}/metadata.json: bundle {meta.get('bundle')} != {expected}")
    return out


def broken_variants(root: Path, fp32: Path, sealed: Path) -> dict:
    """Bundles the page must refuse, each with the start of the message it must show."""
    variants = {}
    out = _copy(root, sealed, "bundle_bad_golden")  # a golden embedding changed after sealing
    emb = out / "golden" / "face_001.embedding.f32"
    data = bytearray(emb.read_bytes())
    data[0] ^= 0x80
    emb.write_bytes(bytes(data))
    variants["bundle_bad_golden"] = "golden/face_001.embedding.f32: sha256 "
    out = _copy(root, sealed, "bundle_bad_manifest")  # manifest edited to match the changed file
    (out / "manifest.json").write_text((out / "manifest.json").read_text().replace('"bytes": ', '"bytes":  ', 1))
    variants["bundle_bad_manifest"] = "manifest.json: sha256 "
    out = _copy(root, fp32, "bundle_bad_schema")
    meta = json.loads((out / "metadata.json").read_text())
    meta["schema"] = "pocketnet_tf.tflite_metadata/0"
    _write_json(out / "metadata.json", meta)
    variants["bundle_bad_schema"] = "metadata.json: schema "
    out = _copy(root, fp32, "bundle_bad_input")  # consistent metadata that the model does not have
    meta = json.loads((out / "metadata.json").read_text())
    meta["input"]["shape"] = [1, 96, 96, 3]
    meta["alignment"]["output_size"] = [96, 96]
    _write_json(out / "metadata.json", meta)
    variants["bundle_bad_input"] = "model.tflite: input [1,112,112,3] float32 disagrees with metadata.json"
    out = _copy(root, sealed, "bundle_unsealed")  # the seal removed
    (out / "manifest.json").unlink()
    meta = json.loads((out / "metadata.json").read_text())
    del meta["bundle"]
    _write_json(out / "metadata.json", meta)
    variants["bundle_unsealed"] = "metadata.json: no 'bundle' seal"
    _write_json(root / "refusals.json", variants)
    return variants


def _similarity(scale, angle_deg, tx, ty) -> np.ndarray:
    a, b = scale * np.cos(np.radians(angle_deg)), scale * np.sin(np.radians(angle_deg))
    return np.array([[a, -b, tx], [b, a, ty]])


def place(face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A scene holding ``face`` mapped by ``matrix`` (face pixels -> scene pixels) on grey."""
    mask = align.warp_affine(np.full(face.shape, 255, np.uint8), matrix, (SCENE_H, SCENE_W)) > 127
    warped = align.warp_affine(face, matrix, (SCENE_H, SCENE_W))
    return np.where(mask, warped, np.uint8(BACKGROUND)).astype(np.uint8)


def scenes(root: Path, bundle: Path, detector: detect.BlazeFaceDetector) -> None:
    out = root / "scenes"
    out.mkdir(exist_ok=True)
    meta = json.loads((bundle / "metadata.json").read_text())
    golden = json.loads((bundle / "golden" / "golden.json").read_text())
    template = np.asarray(meta["alignment"]["template"], np.float64)
    poses = [(2.0, 0.0, 48.0, 8.0), (1.8, 8.0, 80.0, 2.0), (1.6, -10.0, 60.0, 40.0), (2.1, 4.0, 40.0, -2.0)]
    cases = []
    for i, (case, pose) in enumerate(zip(golden["cases"], poses)):
        face = preprocess.decode_image((bundle / "golden" / case["image"]).read_bytes())
        m = _similarity(*pose)
        scene = place(face, m)
        (out / f"scene_{i}.png").write_bytes(preprocess.encode_png(scene))
        landmarks = align.apply_similarity(m, template)
        crop = align.align_face(scene, landmarks, template=template, size=face.shape[0])
        t = detect.input_transform(SCENE_W, SCENE_H)
        reg, cls = detector.raw(detect.prepare_input(scene, t))
        reg.astype("<f4").tofile(out / f"scene_{i}.regressors.f32")
        cls.astype("<f4").tofile(out / f"scene_{i}.classificators.f32")
        found = detector.detect(scene)
        kp_crop = detect.align_from_keypoints(scene, found[0].keypoints, template=template, size=face.shape[0])[0] if found else None
        cases.append({
            "image": f"scene_{i}.png", "landmarks": landmarks.tolist(),
            "matrix": align.estimate_similarity(landmarks, template).reshape(-1).tolist(),
            "crop_sha256": _sha(crop.tobytes()), "input_sha256": _sha(model_input(crop[None], meta).astype("<f4").tobytes()),
            "detector_input_sha256": _sha(detect.prepare_input(scene, t).astype("<f4").tobytes()),
            "regressors": f"scene_{i}.regressors.f32", "classificators": f"scene_{i}.classificators.f32",
            "detections": [d.to_json() for d in found],
            "keypoint_crop_sha256": None if kp_crop is None else _sha(kp_crop.tobytes()),
        })
    (out / "cases.json").write_text(json.dumps({"size": [SCENE_H, SCENE_W], "cases": cases}, indent=1))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def write_y4m(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """RGB frames -> YUV4MPEG2 4:2:0 (BT.601 full range, 'C420jpeg')."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            x = rgb.astype(np.float64)
            y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
            u = -0.168736 * x[..., 0] - 0.331264 * x[..., 1] + 0.5 * x[..., 2] + 128
            v = 0.5 * x[..., 0] - 0.418688 * x[..., 1] - 0.081312 * x[..., 2] + 128
            sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
            f.write(b"FRAME\n")
            for plane in (y, sub(u), sub(v)):
                f.write(np.clip(np.floor(plane + 0.5), 0, 255).astype(np.uint8).tobytes())


def camera(root: Path) -> None:
    """One still video per identity (2 s of one rendering in a 320x240 frame).

    Still, because the tiny test model is untrained: its embeddings follow illumination more than
    identity, so two renderings of one synthetic person do not reach its calibrated threshold; the
    camera test proves the path (camera -> detect -> align -> embed -> gallery -> match), not the
    model's accuracy.
    """
    if (root / "camera.json").exists():
        return
    images, ids = synthetic.render_identity_images(seed=11, identities=2, images_per_identity=1, size=112)
    info = {}
    for person, name in enumerate(["alice", "bob"]):
        frames = [place(images[person], _similarity(2.0, 0.0, 48.0, 8.0))] * 20
        write_y4m(root / f"camera_{name}.y4m", frames, fps=10)
        info[name] = {"file": f"camera_{name}.y4m", "identity": int(ids[person]), "frames": len(frames)}
    (root / "camera.json").write_text(json.dumps(info, indent=1))


def main(out: str) -> None:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    fp32 = convert(root, "fp32")
    convert(root, "int8")
    tamper(root, fp32)
    broken_variants(root, fp32, seal(root, fp32))
    if not (root / "scenes" / "cases.json").exists():
        scenes(root, fp32, detect.BlazeFaceDetector())
    camera(root)
    print(json.dumps({"out": str(root), "detector": str(detect.detector_model_path())}))


if __name__ == "__main__":
    main(sys.argv[1])
