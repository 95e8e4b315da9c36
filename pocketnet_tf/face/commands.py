"""Detect and align faces in photos, and enrol/match them -- the desktop twin of the Android demo.

    python -m pocketnet_tf.align --in=photos/ --out=crops/
    python -m pocketnet_tf.align enrol --bundle=bundle/ --gallery=gallery.json --name=Ada --in=ada1.jpg,ada2.jpg
    python -m pocketnet_tf.align match --bundle=bundle/ --gallery=gallery.json --in=who.jpg

``align`` (the default) writes ``<out>/<photo stem>_<k>.png`` (112x112, face k, best score first)
and ``<out>/faces.json`` (every face: score, box, BlazeFace keypoints, the 2x3 alignment matrix,
crop file). Without ``--bundle`` it uses the ArcFace 112x112 template of
:mod:`pocketnet_tf.data.preprocess`; with one, the bundle's template. ``enrol`` adds the best face
of each photo to the gallery (all photos or none; the gallery is written atomically) and
``match`` prints the best identity, its cosine score and the bundle's threshold for each photo;
the gallery file is the app's (``gallery.json`` in its storage). Steps and arithmetic:
:mod:`pocketnet_tf.face.pipeline`. A bad input ends the run with a one-line message, exit code 1.
This module holds the library entries; flags: :mod:`pocketnet_tf.face.flags`, the command:
``pocketnet_tf.face.__main__`` (``python -m pocketnet_tf.align`` is its user-facing name).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["run", "run_align", "run_enrol", "run_match"]


def run_align(inputs, out_dir, *, bundle=None, min_score=0.5, all_faces=True, num_threads=1) -> dict:
    """Library entry of ``align``: returns the faces.json content (also written to ``out_dir``)."""
    import numpy as np

    from pocketnet_tf.data import preprocess
    from pocketnet_tf.face import detect
    from pocketnet_tf.face.pipeline import find_faces, list_images, read_bundle_metadata, read_photo
    from pocketnet_tf.io_utils import write_bytes_atomic, write_json_atomic

    if bundle is not None:
        meta = read_bundle_metadata(bundle)
        template, size = meta.template, meta.input_size
    else:
        template, size = preprocess.ARCFACE_TEMPLATE_112, (preprocess.IMAGE_SIZE, preprocess.IMAGE_SIZE)
    photos = list_images(inputs)
    detector = detect.BlazeFaceDetector(num_threads=num_threads, min_score=min_score)
    out_dir = Path(out_dir)
    report = {"template": np.asarray(template, dtype=np.float64).tolist(), "size": list(size), "photos": []}
    for photo in photos:
        faces = find_faces(read_photo(photo), detector, template, size)
        if not all_faces:
            faces = faces[:1]
        entry = {"photo": str(photo), "faces": []}
        for k, face in enumerate(faces):
            name = f"{photo.stem}_{k}.png"
            write_bytes_atomic(out_dir / name, preprocess.encode_png(face.crop))
            entry["faces"].append({**face.detection.to_json(), "matrix": face.matrix.tolist(), "crop": name})
        report["photos"].append(entry)
    write_json_atomic(out_dir / "faces.json", report)
    return report


def _best_face(photo, detector, embedder):
    from pocketnet_tf.face.pipeline import find_faces, read_photo

    faces = find_faces(read_photo(photo), detector, embedder.meta.template, embedder.meta.input_size)
    return faces[0] if faces else None


def run_enrol(inputs, bundle, gallery_path, name, *, min_score=0.5, num_threads=1) -> int:
    """Library entry of ``enrol``: returns the identity's number of embeddings afterwards."""
    from pocketnet_tf.face import detect
    from pocketnet_tf.face.pipeline import BundleEmbedder, list_images
    from pocketnet_tf.face.gallery import Gallery

    embedder = BundleEmbedder(bundle, num_threads=num_threads)
    gallery_path = Path(gallery_path)
    gallery = (Gallery.load(gallery_path, embedder.meta.model_sha256) if gallery_path.exists()
               else embedder.new_gallery())
    detector = detect.BlazeFaceDetector(num_threads=num_threads, min_score=min_score)
    embeddings = []
    for photo in list_images(inputs):
        face = _best_face(photo, detector, embedder)
        if face is None:
            raise ValueError(f"{photo}: no face found (nothing enrolled)")
        embeddings.append(embedder.embed(face.crop))
    for e in embeddings:
        gallery.enrol(name, e)
    gallery.save(gallery_path)
    return len(gallery.embeddings_of(name))


def run_match(inputs, bundle, gallery_path, *, min_score=0.5, num_threads=1) -> list[dict]:
    """Library entry of ``match``: one result per photo (``match`` is None when no face)."""
    from pocketnet_tf.face import detect
    from pocketnet_tf.face.pipeline import BundleEmbedder, list_images
    from pocketnet_tf.face.gallery import Gallery

    embedder = BundleEmbedder(bundle, num_threads=num_threads)
    gallery = Gallery.load(gallery_path, embedder.meta.model_sha256)
    detector = detect.BlazeFaceDetector(num_threads=num_threads, min_score=min_score)
    results = []
    for photo in list_images(inputs):
        face = _best_face(photo, detector, embedder)
        match = None if face is None else embedder.search(gallery, embedder.embed(face.crop)).to_json()
        results.append({"photo": str(photo), "match": match,
                        "face_score": None if face is None else face.detection.score})
    return results


def _describe(result: dict) -> str:
    m = result["match"]
    if m is None:
        return f"{result['photo']}: no face"
    if m["name"] is None:
        return f"{result['photo']}: the gallery is empty"
    verdict = "MATCH" if m["accepted"] else "unknown"
    op = ">=" if m["accepted"] else "<"
    return f"{result['photo']}: {verdict} {m['name']} (score {m['score']:.4f} {op} threshold {m['threshold']:.4f})"


def run(config) -> int:
    """Runs one :class:`pocketnet_tf.face.config.FaceConfig` and prints what the command prints;
    returns the exit status (1 with a one-line message on a bad input)."""
    try:
        if config.command == "align":
            report = run_align(config.inputs, config.out, bundle=config.bundle, min_score=config.min_score,
                               all_faces=config.all_faces, num_threads=config.num_threads)
            n = sum(len(p["faces"]) for p in report["photos"])
            print(f"{n} faces from {len(report['photos'])} photos -> {config.out}")
            for p in report["photos"]:
                if not p["faces"]:
                    print(f"{p['photo']}: no face")
            return 0
        if config.command == "enrol":
            count = run_enrol(config.inputs, config.bundle, config.gallery, config.name, min_score=config.min_score,
                              num_threads=config.num_threads)
            print(f"enrolled {config.name!r}: {count} embeddings in {config.gallery}")
            return 0
        results = run_match(config.inputs, config.bundle, config.gallery, min_score=config.min_score,
                            num_threads=config.num_threads)
        for r in results:
            print(_describe(r))
        print(json.dumps(results))
        return 0
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
