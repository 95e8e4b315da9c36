"""Verification sets and a miniature IJB release in the real file formats, for the eval tests."""

from __future__ import annotations

import itertools
import math

import numpy as np

from pocketnet_tf.data import preprocess
from pocketnet_tf.data.align import apply_similarity, warp_affine
from pocketnet_tf.data.bin_file import write_bin
from pocketnet_tf.data.preprocess import ARCFACE_TEMPLATE_112
from tests.factory import smooth_face

#: Pixels by which the miniature IJB faces extend beyond their 112x112 crop.
MARGIN = 8


def write_toy_bin(path, pairs=10, seed=0):
    """A .bin of noisy copies of 4 random "faces" (PNG); even pairs genuine, odd impostor."""
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (4, 112, 112, 3))
    images, issame = [], []
    for k in range(pairs):
        a, b = k % 4, (k % 4 if k % 2 == 0 else (k + 1) % 4)
        for identity in (a, b):
            img = np.clip(faces[identity] + rng.integers(-20, 21, faces[identity].shape), 0, 255)
            images.append(preprocess.encode_png(img.astype(np.uint8)))
        issame.append(a == b)
    write_bin(path, images, issame)
    return path


def similarity(scale, angle_deg, tx, ty):
    a = scale * math.cos(math.radians(angle_deg))
    b = scale * math.sin(math.radians(angle_deg))
    return np.array([[a, -b, tx], [b, a, ty]])


def write_mini_ijb_release(root, *, shuffle_landmarks=False, seed=0):
    """Miniature IJB-C release: 4 identities x 2 templates x (2 + 1 images in two medias).

    Loose crops are the identity faces placed with random similarities (JPEG); landmarks are the
    template points mapped by the same placement. Returns the unplaced 112x112 faces in image order.
    """
    rng = np.random.default_rng(seed)
    (root / "meta").mkdir(parents=True)
    (root / "loose_crop").mkdir()
    faces, rows_tid, rows_lmk, originals = [], [], [], []
    template_identity = {}
    image_no = 0
    for identity in range(4):
        # The face continues beyond the 112x112 crop (as a real face does), so the aligned crop's
        # border pixels sample face, not the loose crop's background.
        base = smooth_face(seed=100 + identity, margin=MARGIN)
        for t in range(2):
            template = 1000 + 37 * identity + t
            template_identity[template] = identity
            for media, n_images in ((5000 + 10 * template, 2), (5001 + 10 * template, 1)):
                for _ in range(n_images):
                    image_no += 1
                    # Per-image variation: a brightness shift, so pooling weights matter.
                    face = np.clip(base.astype(int) + int(rng.integers(-25, 26)), 0, 255).astype(np.uint8)
                    # Scale <= 1.3 and |angle| <= 15 deg with a 40-50 px offset keep every face
                    # corner inside the 260x260 loose crop.
                    placement = similarity(rng.uniform(1.0, 1.3), rng.uniform(-15, 15),
                                            rng.uniform(40, 50), rng.uniform(40, 50))
                    shifted = placement.copy()  # same placement for the face with margin
                    shifted[:, 2] -= placement[:, :2] @ [MARGIN, MARGIN]
                    loose = warp_affine(face, shifted, (260, 260))
                    name = f"{image_no}.jpg"
                    (root / "loose_crop" / name).write_bytes(preprocess.encode_jpeg(loose, quality=98))
                    lmk = apply_similarity(placement, ARCFACE_TEMPLATE_112)
                    score = rng.uniform(0.3, 1.0)
                    rows_tid.append(f"{name} {template} {media}")
                    rows_lmk.append(name + " " + " ".join(f"{v:.4f}" for v in lmk.reshape(-1)) + f" {score:.6f}")
                    originals.append(face[MARGIN:-MARGIN, MARGIN:-MARGIN])
    if shuffle_landmarks:
        rows_lmk = [rows_lmk[i] for i in rng.permutation(len(rows_lmk))]
    pairs = []
    for t1, t2 in itertools.combinations(sorted(template_identity), 2):
        pairs.append(f"{t1} {t2} {int(template_identity[t1] == template_identity[t2])}")
    (root / "meta" / "ijbc_face_tid_mid.txt").write_text("\n".join(rows_tid) + "\n")
    (root / "meta" / "ijbc_name_5pts_score.txt").write_text("\n".join(rows_lmk) + "\n")
    (root / "meta" / "ijbc_template_pair_label.txt").write_text("\n".join(pairs) + "\n")
    return originals
