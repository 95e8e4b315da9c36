"""Deterministic synthetic face identities, written in the real dataset formats.

Each identity is a fixed latent vector: face outline (width, height, jaw taper, ears), skin tone
and skin texture (oriented gratings, moles, blush), hair (colour, hairline shape, volume,
length, strand frequency, baldness), eyes (spacing, height, size, tilt, iris colour, eyeliner),
brows (gap, thickness, length, tilt, arch), nose (length, width, nostrils), mouth (height, width,
lip thickness and colour), optional beard and glasses. Each image of an identity renders that
latent under nuisance: shift/rotation/scale, head turn (inner features move against the
outline), expression (smile, open mouth, eye openness, brow raise, gaze), hairline jitter,
illumination (gain, colour cast, directional gradient, gamma), a random background with a
clutter blob, an occasional occluder, blur, sensor noise and a random JPEG quality.

Skin tone is drawn from a narrow range while illumination gain and colour cast vary widely, so
an image's mean colour says little about who it is; identity lives in geometry, texture and
colour *relations*, which a CNN can learn.

Everything is vectorised numpy over chunks of images. Random numbers come from generators keyed
by ``(seed, stream, identity, image)``, so a given identity looks the same whatever the number
of identities, and files are byte-identical for the same arguments.

Outputs (:func:`generate`): ``train.rec``/``train.idx``/``property`` in the insightface layout
(meta record 0, identity records) and ``synth_val.bin``, a verification set of *held-out*
identities in the insightface ``.bin`` form.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketnet_tf.data import preprocess

__all__ = [
    "SynthConfig",
    "sample_identities",
    "sample_nuisance",
    "render",
    "render_identity_images",
    "make_verification_pairs",
    "generate",
]

# Random-stream ids (second element of every generator key).
_TRAIN_ID, _TRAIN_IMG, _VAL_ID, _VAL_PAIRS, _VAL_IMG = 0, 1, 2, 3, 4
_ID_UNIFORMS = 96
_IMG_UNIFORMS = 48
_IMG_NORMALS = 16
_CHUNK = 64
# Largest nuisance strength: at 3 a shift reaches 0.36 of the half-frame and the face often leaves it.
MAX_NUISANCE = 3.0

_SKIN_LIGHT = np.array([226.0, 188.0, 160.0], np.float32)
_SKIN_DARK = np.array([150.0, 104.0, 78.0], np.float32)
_HAIR_PALETTE = np.array(
    [[28, 22, 20], [62, 40, 28], [105, 70, 42], [168, 128, 80], [200, 170, 120], [140, 62, 32], [150, 148, 145]],
    np.float32,
)
_IRIS_PALETTE = np.array([[70, 45, 25], [40, 28, 20], [70, 110, 150], [80, 110, 70], [110, 115, 120]], np.float32)


@dataclass(frozen=True)
class SynthConfig:
    """Arguments of :func:`generate` (field names equal the CLI flag names)."""

    out: str
    identities: int = 200
    images_per_identity: int = 20
    seed: int = 0
    size: int = 112
    val_identities: int = 50
    val_pairs: int = 600
    nuisance: float = 1.0

    def __post_init__(self):
        checks = [
            (self.identities >= 2, f"identities must be >= 2, got {self.identities}"),
            (self.images_per_identity >= 1, f"images_per_identity must be >= 1, got {self.images_per_identity}"),
            (16 <= self.size <= 1024, f"size must be in 16..1024, got {self.size}"),
            (self.val_identities >= 2 or self.val_pairs == 0, f"val_identities must be >= 2, got {self.val_identities}"),
            (self.val_pairs >= 0, f"val_pairs must be >= 0, got {self.val_pairs}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (0.0 <= self.nuisance <= MAX_NUISANCE, f"nuisance must be in 0..{MAX_NUISANCE}, got {self.nuisance}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def _uniforms(seed: int, stream: int, ids, count: int) -> np.ndarray:
    return np.stack([np.random.default_rng([seed, stream, int(i)]).random(count) for i in ids]).astype(np.float64)


def _lerp(lo, hi, u):
    return lo + (hi - lo) * u


def _face_and_skin(p: dict, col) -> None:
    """Face outline (centre, half-axes, jaw taper, ears) and skin tone."""
    p["face_cy"] = _lerp(0.08, 0.20, col())
    p["face_a"] = _lerp(0.58, 0.80, col())
    p["face_b"] = _lerp(0.86, 1.04, col())
    p["jaw"] = _lerp(0.0, 0.38, col())
    p["ear_r"] = _lerp(0.07, 0.13, col())
    tone = col()
    skin = _SKIN_LIGHT[None] + (_SKIN_DARK - _SKIN_LIGHT)[None] * tone[:, None]
    skin = skin + (np.stack([col(), col(), col()], 1) - 0.5) * 24.0
    p["skin"] = skin


def _hair(p: dict, col) -> None:
    """Hair colour, hairline (or baldness), volume, length and strand frequency."""
    hair_pick = np.minimum((col() * len(_HAIR_PALETTE)).astype(int), len(_HAIR_PALETTE) - 1)
    p["hair"] = _HAIR_PALETTE[hair_pick] + (np.stack([col(), col(), col()], 1) - 0.5) * 30.0
    bald = col() < 0.07
    p["hairline"] = np.where(bald, -3.0, _lerp(-0.78, -0.42, col()))
    p["hair_curve"] = _lerp(-0.1, 0.55, col())
    p["hair_part"] = _lerp(-0.22, 0.22, col())
    p["bald"] = bald
    p["hair_vol_a"] = _lerp(1.02, 1.30, col())
    p["hair_vol_b"] = _lerp(1.00, 1.15, col())
    p["hair_len"] = _lerp(-0.25, 1.25, col())
    p["hair_freq"] = _lerp(18.0, 60.0, col())


def _eyes_and_brows(p: dict, col) -> None:
    p["eye_y"] = _lerp(-0.16, -0.02, col())
    p["eye_sep"] = _lerp(0.25, 0.37, col())
    p["eye_a"] = _lerp(0.085, 0.135, col())
    p["eye_b"] = _lerp(0.032, 0.058, col())
    p["eye_tilt"] = _lerp(-0.22, 0.22, col())
    iris_pick = np.minimum((col() * len(_IRIS_PALETTE)).astype(int), len(_IRIS_PALETTE) - 1)
    p["iris"] = _IRIS_PALETTE[iris_pick] + (np.stack([col(), col(), col()], 1) - 0.5) * 20.0
    p["liner"] = _lerp(0.2, 0.9, col())
    p["brow_gap"] = _lerp(0.075, 0.15, col())
    p["brow_thick"] = _lerp(0.018, 0.048, col())
    p["brow_len"] = _lerp(0.09, 0.16, col())
    p["brow_tilt"] = _lerp(-0.28, 0.28, col())
    p["brow_arch"] = _lerp(0.0, 0.04, col())


def _nose_and_mouth(p: dict, col) -> None:
    p["nose_tip"] = _lerp(0.17, 0.34, col())
    p["nose_w"] = _lerp(0.065, 0.14, col())
    p["nostril"] = _lerp(0.35, 0.85, col())
    p["mouth_y"] = _lerp(0.50, 0.66, col())
    p["mouth_a"] = _lerp(0.15, 0.28, col())
    p["lip_up"] = _lerp(0.012, 0.034, col())
    p["lip_low"] = _lerp(0.018, 0.05, col())
    lip_mix = _lerp(0.25, 0.7, col())
    p["lip"] = p["skin"] * (1 - lip_mix[:, None]) + np.array([175.0, 62.0, 72.0])[None] * lip_mix[:, None]


def _blush_beard_glasses(p: dict, col) -> None:
    p["blush"] = _lerp(0.0, 0.22, col())
    p["beard"] = np.where(col() < 0.25, _lerp(0.35, 0.85, col()), 0.0)
    p["glasses"] = col() < 0.18
    p["glasses_col"] = np.where(col()[:, None] < 0.5, 25.0, 175.0) + (np.stack([col(), col(), col()], 1) - 0.5) * 30
    p["glasses_t"] = _lerp(0.012, 0.024, col())


def _skin_marks(p: dict, col) -> None:
    """Skin texture (three oriented gratings fixed on the face) and up to three moles at fixed places."""
    p["tex_amp"] = np.stack([_lerp(0.015, 0.06, col()) for _ in range(3)], 1)
    p["tex_freq"] = np.stack([_lerp(4.0, 14.0, col()) for _ in range(3)], 1)
    p["tex_ang"] = np.stack([col() * np.pi for _ in range(3)], 1)
    p["tex_phase"] = np.stack([col() * 2 * np.pi for _ in range(3)], 1)
    p["mole_on"] = np.stack([col() < 0.35 for _ in range(3)], 1)
    p["mole_u"] = np.stack([_lerp(-0.5, 0.5, col()) for _ in range(3)], 1)
    p["mole_v"] = np.stack([_lerp(-0.35, 0.75, col()) for _ in range(3)], 1)
    p["mole_r"] = np.stack([_lerp(0.012, 0.028, col()) for _ in range(3)], 1)


def sample_identities(seed: int, ids, *, stream: int = _TRAIN_ID) -> dict[str, np.ndarray]:
    """Identity latents for identity numbers ``ids``: a dict of arrays of shape ``(len(ids), ...)``.

    Each identity draws ``_ID_UNIFORMS`` uniforms from its own generator; the parts below take
    them column by column in a fixed order (so a latent's value never depends on the others).
    """
    uniforms = _uniforms(seed, stream, ids, _ID_UNIFORMS)
    columns = iter(range(_ID_UNIFORMS))

    def col():
        return uniforms[:, next(columns)]

    latents: dict[str, np.ndarray] = {}
    for part in (_face_and_skin, _hair, _eyes_and_brows, _nose_and_mouth, _blush_beard_glasses, _skin_marks):
        part(latents, col)
    for key, value in latents.items():
        latents[key] = np.asarray(value, dtype=np.float32) if value.dtype != bool else value
        assert latents[key].shape[0] == uniforms.shape[0]
    return latents


def sample_nuisance(seed: int, stream: int, keys, *, strength: float = 1.0
                    ) -> tuple[dict[str, np.ndarray], list[np.random.Generator]]:
    """Per-image nuisance for images keyed ``keys`` (tuples), plus each image's generator for pixel noise.

    ``strength`` scales the spread of pose in the image plane (shift, rotation, scale), of
    illumination (gain, colour cast, directional light, gamma), the occluder and blur
    probabilities and the sensor noise: 0 switches these off, 1 is the default, 2 doubles them.
    Head turn, expression, background and JPEG quality do not change with it (the row bands of
    :class:`_Bands` assume the default head turn). The same random numbers are drawn whatever the
    strength, and at 1 every constant is multiplied by exactly 1.0, so the default is bit-identical
    to the generator without the knob.
    """
    s = float(strength)
    if not 0.0 <= s <= MAX_NUISANCE:
        raise ValueError(f"nuisance strength must be in 0..{MAX_NUISANCE}, received {strength}")
    gens = [np.random.default_rng([seed, stream, *map(int, k)]) for k in keys]
    u = np.stack([g.random(_IMG_UNIFORMS) for g in gens]).astype(np.float64)
    z = np.stack([g.standard_normal(_IMG_NORMALS) for g in gens]).astype(np.float64)
    cu = iter(range(_IMG_UNIFORMS))
    cz = iter(range(_IMG_NORMALS))

    q: dict[str, np.ndarray] = {}
    q["tx"] = np.clip(0.045 * s * z[:, next(cz)], -0.12 * s, 0.12 * s)
    q["ty"] = np.clip(0.045 * s * z[:, next(cz)], -0.12 * s, 0.12 * s)
    q["rot"] = np.clip(0.10 * s * z[:, next(cz)], -0.26 * s, 0.26 * s)
    q["scale"] = np.exp(np.clip(0.06 * s * z[:, next(cz)], -0.15 * s, 0.15 * s))
    q["yaw"] = np.clip(0.055 * z[:, next(cz)], -0.13, 0.13)
    q["pitch"] = np.clip(0.025 * z[:, next(cz)], -0.06, 0.06)
    q["smile"] = _lerp(-0.25, 1.0, u[:, next(cu)])
    q["mouth_open"] = np.where(u[:, next(cu)] < 0.3, _lerp(0.01, 0.06, u[:, next(cu)]), 0.0)
    blink = u[:, next(cu)] < 0.05
    q["eye_open"] = np.where(blink, 0.12, _lerp(0.6, 1.15, u[:, next(cu)]))
    q["brow_raise"] = 0.012 * z[:, next(cz)]
    q["gaze"] = 0.25 * z[:, next(cz)]
    q["hair_jit"] = 0.02 * z[:, next(cz)]
    q["gain"] = np.exp(_lerp(np.log(0.55) * s, np.log(1.45) * s, u[:, next(cu)]))
    q["cast"] = np.exp(0.08 * s * np.stack([z[:, next(cz)], z[:, next(cz)], z[:, next(cz)]], 1))
    ang = u[:, next(cu)] * 2 * np.pi
    q["light_x"], q["light_y"] = np.cos(ang), np.sin(ang)
    q["light_k"] = _lerp(0.0, 0.5 * s, u[:, next(cu)])
    q["gamma"] = np.exp(0.15 * s * z[:, next(cz)])
    q["bg1"] = _lerp(15.0, 240.0, np.stack([u[:, next(cu)], u[:, next(cu)], u[:, next(cu)]], 1))
    q["bg2"] = _lerp(15.0, 240.0, np.stack([u[:, next(cu)], u[:, next(cu)], u[:, next(cu)]], 1))
    bg_ang = u[:, next(cu)] * 2 * np.pi
    q["bg_dx"], q["bg_dy"] = np.cos(bg_ang), np.sin(bg_ang)
    q["blob_on"] = u[:, next(cu)] < 0.6
    q["blob_x"] = _lerp(-1.0, 1.0, u[:, next(cu)])
    q["blob_y"] = _lerp(-1.0, 1.0, u[:, next(cu)])
    q["blob_r"] = _lerp(0.2, 0.6, u[:, next(cu)])
    q["blob_col"] = _lerp(15.0, 240.0, np.stack([u[:, next(cu)], u[:, next(cu)], u[:, next(cu)]], 1))
    q["occ_on"] = u[:, next(cu)] < min(0.22 * s, 1.0)
    q["occ_round"] = u[:, next(cu)] < 0.5
    q["occ_x"] = _lerp(-0.75, 0.75, u[:, next(cu)])
    q["occ_y"] = _lerp(-0.6, 0.95, u[:, next(cu)])
    q["occ_a"] = _lerp(0.10, 0.32, u[:, next(cu)])
    q["occ_b"] = _lerp(0.08, 0.28, u[:, next(cu)])
    q["occ_col"] = _lerp(10.0, 245.0, np.stack([u[:, next(cu)], u[:, next(cu)], u[:, next(cu)]], 1))
    q["blur"] = u[:, next(cu)] < min(0.3 * s, 1.0)
    q["noise"] = _lerp(1.0 * s, 7.0 * s, u[:, next(cu)])
    q["jpeg_q"] = np.floor(_lerp(60.0, 96.0, u[:, next(cu)]))
    for key, value in q.items():
        q[key] = np.asarray(value, dtype=np.float32) if value.dtype != bool else value
    return q, gens


# ---------------------------------------------------------------------------------------------
# Rendering


def _col(a):
    """(B,) -> (B,1,1) for broadcasting against pixel grids."""
    return np.asarray(a, np.float32)[:, None, None]


def _rgb(a):
    """(B,3) -> (3,B,1,1): images are rendered planar, (channel, image, row, column), so every
    elementwise loop runs over whole rows instead of 3-element pixels."""
    return np.ascontiguousarray(np.asarray(a, np.float32).T)[:, :, None, None]


def _const(rgb):
    return np.asarray(rgb, np.float32)[:, None, None, None]


def _soft(dist, pw):
    """Coverage of a shape from its signed distance (negative inside), anti-aliased over one pixel."""
    return np.clip(0.5 - dist / pw, 0.0, 1.0)


def _ellipse(u, v, cx, cy, a, b):
    r = np.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _over(img, alpha, color):
    """Paints ``color`` over the planar image ``img`` with coverage ``alpha`` (B,S,S), in place."""
    img += alpha * (color - img)


class _Bands:
    """Row ranges of a chunk that can contain a face-frame region, so small features are painted
    on a horizontal band of the images instead of the whole frame."""

    def __init__(self, nuis, size):
        self.size = size
        self.ty = nuis["ty"][:, None].astype(np.float64)
        self.scale = nuis["scale"][:, None].astype(np.float64)
        self.sin = np.sin(nuis["rot"])[:, None].astype(np.float64)
        self.cos = np.cos(nuis["rot"])[:, None].astype(np.float64)

    def rows(self, v_lo, v_hi, u_max) -> slice:
        cu = np.array([-u_max, u_max, -u_max, u_max])[None]
        cv = np.array([v_lo, v_lo, v_hi, v_hi])[None]
        ys = self.ty + self.scale * (self.sin * cu + self.cos * cv)
        r0 = int(np.floor((ys.min() + 1.0) * self.size / 2.0)) - 2
        r1 = int(np.ceil((ys.max() + 1.0) * self.size / 2.0)) + 2
        return slice(max(0, r0), min(self.size, max(r1, r0 + 1)))


@dataclass
class _Scene:
    """Coordinates and parameters shared by the painting steps of one chunk of B images.

    ``person`` and ``shot`` hold the identity latents and the nuisance as ``(B,1,1)`` columns
    (their 1-D entries), ready to broadcast against the pixel grids; ``ident`` and ``nuis`` are
    the original dicts (colours and the per-grating/per-mole entries are 2-D).
    """

    size: int
    ident: dict
    nuis: dict
    person: dict
    shot: dict
    x: np.ndarray  # image frame, (1,1,S) and (1,S,1), in [-1, 1], y down
    y: np.ndarray
    u: np.ndarray  # face frame (B,S,S): the image frame shifted, rotated and scaled by the pose
    v: np.ndarray
    pixel: np.ndarray  # one pixel in face units, (B,1,1)
    bands: _Bands
    skin: np.ndarray  # planar colours (3,B,1,1)
    hair: np.ndarray

    @functools.cached_property
    def turned_u(self):
        """Horizontal face coordinate of the inner features: they move against the outline with the head turn."""
        return self.u - self.shot["yaw"]

    @functools.cached_property
    def turned_v(self):
        return self.v - self.shot["pitch"]


def _scene(ident, nuis, size: int) -> _Scene:
    grid = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    x = grid[None, None, :]
    y = grid[:, None][None]
    person = {k: _col(v) for k, v in ident.items() if v.ndim == 1}
    shot = {k: _col(v) for k, v in nuis.items() if v.ndim == 1}
    cos, sin = np.cos(shot["rot"]), np.sin(shot["rot"])
    x_shifted, y_shifted = x - shot["tx"], y - shot["ty"]
    u = (cos * x_shifted + sin * y_shifted) / shot["scale"]
    v = (-sin * x_shifted + cos * y_shifted) / shot["scale"]
    return _Scene(size=size, ident=ident, nuis=nuis, person=person, shot=shot, x=x, y=y, u=u, v=v,
                  pixel=(2.0 / size) / shot["scale"], bands=_Bands(nuis, size),
                  skin=_rgb(ident["skin"]), hair=_rgb(ident["hair"]))


def _paint_background(s: _Scene) -> np.ndarray:
    """Two-colour gradient and a clutter blob: a new planar float32 image (3,B,S,S)."""
    shot, nuis, size = s.shot, s.nuis, s.size
    t = np.clip(0.5 + 0.5 * (shot["bg_dx"] * s.x + shot["bg_dy"] * s.y), 0, 1)
    img = _rgb(nuis["bg1"]) + t * (_rgb(nuis["bg2"]) - _rgb(nuis["bg1"]))
    img = np.broadcast_to(img, (3, len(nuis["bg_dx"]), size, size)).astype(np.float32)
    blob_r = shot["blob_r"]
    blob = _soft(_ellipse(s.x, s.y, shot["blob_x"], shot["blob_y"], blob_r, blob_r * 0.8), 2.0 / size)
    _over(img, blob * shot["blob_on"], _rgb(nuis["blob_col"]))
    return img


def _paint_head(img, s: _Scene):
    """Neck, ears and the hair behind the head, then the face (tapered ellipse, radial shading,
    skin-texture gratings). Returns ``(face coverage, hair strand shading)``, both (B,S,S)."""
    person, u, v, pw = s.person, s.u, s.v, s.pixel
    cy, fa, fb = person["face_cy"], person["face_a"], person["face_b"]
    neck = _soft(np.maximum(np.abs(u) - fa * 0.5, cy + fb * 0.55 - v), pw)
    _over(img, neck, s.skin * 0.78)
    ear_r = person["ear_r"]
    ears = _soft(_ellipse(np.abs(u), v, fa * 0.97, person["eye_y"] + 0.08, ear_r * 0.75, ear_r * 1.5), pw)
    _over(img, ears, s.skin * 0.88)

    strands = 1.0 + 0.12 * np.sin(person["hair_freq"] * u + 3.0 * v)
    hair_len = person["hair_len"] + s.shot["hair_jit"]
    back = _soft(
        np.maximum(_ellipse(u, v, 0.0, cy - 0.08, fa * person["hair_vol_a"], fb * person["hair_vol_b"]), v - hair_len),
        pw,
    )
    _over(img, back * (1.0 - person["bald"]), s.hair * (0.8 * strands))

    depth = np.clip((v - cy) / fb, 0.0, 1.0)
    half_width = fa * (1.0 - person["jaw"] * depth * depth)
    radius2 = (u / half_width) ** 2 + ((v - cy) / fb) ** 2
    face = _soft((np.sqrt(radius2) - 1.0) * half_width, pw)
    texture = np.ones_like(u)
    ident = s.ident
    for k in range(3):
        ang = ident["tex_ang"][:, k]
        proj = _col(np.cos(ang)) * u + _col(np.sin(ang)) * v
        texture += _col(ident["tex_amp"][:, k]) * np.sin(
            _col(ident["tex_freq"][:, k] * np.pi) * proj + _col(ident["tex_phase"][:, k])
        )
    _over(img, face, s.skin * ((1.0 - 0.3 * np.minimum(radius2, 1.0)) * texture))
    return face, strands


# Everything painted from here on lies on the face: pixels outside it never change, so each
# feature is painted on the band of rows where it can appear (``rows``).


def _paint_skin_marks(img, s: _Scene, face) -> None:
    """Blush, an optional beard (stubble pattern) and up to three moles."""
    person, u, v = s.person, s.u, s.v
    fv = s.turned_v
    abs_fu = np.abs(s.turned_u)
    rows = s.bands.rows(0.05, 0.55, 0.85)
    blush = _soft(_ellipse(abs_fu[:, rows], fv[:, rows], 0.36, 0.30, 0.14, 0.10), 0.08)
    blush = blush * person["blush"] * face[:, rows]
    _over(img[:, :, rows], blush, _const([200.0, 80.0, 90.0]))

    if np.any(s.ident["beard"] > 0):
        rows = s.bands.rows(0.0, 1.3, 0.85)
        stubble = 0.75 + 0.25 * np.sin(60.0 * u[:, rows]) * np.sin(55.0 * v[:, rows])
        beard = _soft(person["nose_tip"] + 0.09 - fv[:, rows], 0.05) * face[:, rows] * person["beard"] * stubble
        _over(img[:, :, rows], beard, s.hair * 0.9)

    rows = s.bands.rows(-0.4, 0.8, 0.55)
    moles = 0.0
    for k in range(3):
        mole_u, mole_v, mole_r = (_col(s.ident[n][:, k]) for n in ("mole_u", "mole_v", "mole_r"))
        mole = _soft(_ellipse(u[:, rows], v[:, rows], mole_u, mole_v, mole_r, mole_r), s.pixel)
        moles = np.maximum(moles, mole * _col(s.ident["mole_on"][:, k]))
    _over(img[:, :, rows], moles * face[:, rows], _const([80.0, 50.0, 40.0]))


def _paint_nose(img, s: _Scene) -> None:
    """Side shading, tip highlight, nostrils."""
    person, pw, skin = s.person, s.pixel, s.skin
    rows = s.bands.rows(-0.25, 0.46, 0.35)
    tip, width, eye_y = person["nose_tip"], person["nose_w"], person["eye_y"]
    fu, fv = s.turned_u[:, rows], s.turned_v[:, rows]
    abs_fu = np.abs(fu)
    band = img[:, :, rows]
    side = np.maximum(np.abs(abs_fu - width * 0.55) - 0.012, np.abs(fv - (eye_y + tip) / 2) - (tip - eye_y) / 2)
    _over(band, _soft(side, pw * 2) * 0.25, skin * 0.55)
    _over(band, _soft(_ellipse(fu, fv, 0.0, tip - 0.02, width * 0.7, 0.05), 0.03) * 0.35, skin * 1.18)
    nostrils = _soft(_ellipse(abs_fu, fv, width * 0.55, tip + 0.015, 0.03, 0.017), pw)
    _over(band, nostrils * person["nostril"], skin * 0.35)


def _paint_eyes(img, s: _Scene) -> None:
    """Eyes (lid line, white, iris, pupil; the gaze moves the iris), brows and optional glasses."""
    person, shot, pw = s.person, s.shot, s.pixel
    rows = s.bands.rows(-0.6, 0.2, 0.8)
    band = img[:, :, rows]
    fu, fv = s.turned_u[:, rows], s.turned_v[:, rows]
    abs_fu = np.abs(fu)
    eye_y, eye_a = person["eye_y"], person["eye_a"]
    eu = abs_fu - person["eye_sep"]  # eye frame: each eye's centre, tilted
    ev = fv - eye_y - person["eye_tilt"] * eu
    eye_b = person["eye_b"] * shot["eye_open"]
    white = _soft(_ellipse(eu, ev, 0.0, 0.0, eye_a, eye_b), pw)
    lid = _soft(np.maximum(_ellipse(eu, ev, 0.0, -0.004, eye_a * 1.12, eye_b + 0.02), -ev), pw) * person["liner"]
    _over(band, lid, s.hair * 0.35)
    _over(band, white, _const([232.0, 228.0, 222.0]))
    gaze = shot["gaze"] * eye_a * np.sign(fu)
    iris_r = person["eye_b"] * 0.95
    _over(band, _soft(_ellipse(eu, ev, gaze, 0.0, iris_r, iris_r), pw) * white, _rgb(s.ident["iris"]))
    pupil = _soft(_ellipse(eu, ev, gaze, 0.0, iris_r * 0.45, iris_r * 0.45), pw) * white
    _over(band, pupil, _const([15.0, 12.0, 12.0]))

    brow_len = person["brow_len"]
    brow_centre = (eye_y - person["brow_gap"] - shot["brow_raise"] + person["brow_tilt"] * eu
                   - person["brow_arch"] * (1 - (eu / brow_len) ** 2))
    brow = np.maximum(np.abs(fv - brow_centre) - person["brow_thick"] / 2, np.abs(eu) - brow_len)
    _over(band, _soft(brow, pw), s.hair * 0.6)

    if np.any(s.ident["glasses"]):
        ring_a, ring_b = eye_a * 1.55, eye_a * 1.15
        half_t = person["glasses_t"] / 2
        ring = np.abs(_ellipse(eu, fv - eye_y, 0.0, 0.0, ring_a, ring_b)) - half_t
        bridge = np.maximum(np.abs(fv - eye_y + 0.02) - half_t, abs_fu - (person["eye_sep"] - ring_a + 0.01))
        rims = _soft(np.minimum(ring, bridge), pw) * person["glasses"]
        _over(band, rims, _rgb(s.ident["glasses_col"]))


def _paint_mouth(img, s: _Scene) -> None:
    """The line bends with the smile; lips taper to the corners; an open mouth shows a gap."""
    person, shot, pw = s.person, s.shot, s.pixel
    rows = s.bands.rows(0.3, 0.95, 0.45)
    band = img[:, :, rows]
    fu, fv = s.turned_u[:, rows], s.turned_v[:, rows]
    mouth_u = fu / person["mouth_a"]
    taper = np.sqrt(np.clip(1.0 - mouth_u * mouth_u, 0.0, 1.0))
    line = person["mouth_y"] - 0.06 * shot["smile"] * (mouth_u * mouth_u) + 0.02 * shot["smile"]
    outside = np.abs(fu) - person["mouth_a"]
    opening = shot["mouth_open"] * taper
    gap = _soft(np.maximum(np.maximum(line - fv, fv - line - opening), outside), pw)
    _over(band, gap * (shot["mouth_open"] > 0), _const([60.0, 20.0, 25.0]))
    upper = _soft(np.maximum(np.maximum(line - person["lip_up"] * taper - fv, fv - line), outside), pw)
    lower = _soft(np.maximum(np.maximum(line + opening - fv, fv - line - opening - person["lip_low"] * taper), outside),
                  pw)
    _over(band, upper, _rgb(s.ident["lip"]) * 0.9)
    _over(band, lower, _rgb(s.ident["lip"]))


def _paint_fringe(img, s: _Scene, face, strands) -> None:
    """Hair over the forehead above the hairline curve."""
    person = s.person
    rows = s.bands.rows(-1.2, 0.3, 0.85)
    u = s.u[:, rows]
    hairline = person["hairline"] + person["hair_curve"] * u ** 2 + person["hair_part"] * u + s.shot["hair_jit"]
    fringe = _soft(s.v[:, rows] - hairline, s.pixel * 1.5) * face[:, rows]
    _over(img[:, :, rows], fringe, s.hair * strands[:, rows])


def _paint_occluder(img, s: _Scene) -> None:
    """A hand, microphone, ... in image coordinates, on the images that have one."""
    nuis = s.nuis
    sel = np.flatnonzero(nuis["occ_on"])
    if not sel.size:
        return
    ox, oy, oa, ob = (_col(nuis[n][sel]) for n in ("occ_x", "occ_y", "occ_a", "occ_b"))
    oval = _ellipse(s.x, s.y, ox, oy, oa, ob)
    box = np.maximum(np.abs(s.x - ox) - oa, np.abs(s.y - oy) - ob)
    occluder = _soft(np.where(_col(nuis["occ_round"][sel]) > 0, oval, box), 2.0 / s.size)
    part = img[:, sel]
    _over(part, occluder, _rgb(nuis["occ_col"][sel]))
    img[:, sel] = part


def _illuminate(img, s: _Scene) -> np.ndarray:
    """Gain, colour cast, directional gradient, gamma; returns the lit image."""
    shot = s.shot
    img *= shot["gain"] * (1.0 + shot["light_k"] * (shot["light_x"] * s.x + shot["light_y"] * s.y))
    img *= _rgb(s.nuis["cast"])
    np.clip(img, 0.0, 255.0, out=img)
    return np.float32(255.0) * (img / np.float32(255.0)) ** shot["gamma"]


def _sensor(img, s: _Scene, gens) -> np.ndarray:
    """A 3x3 box blur on some images, then sensor noise (uniform, std = ``nuis["noise"]``) drawn
    from each image's generator, rounding and clipping: uint8 ``(B, S, S, 3)``."""
    sel = np.flatnonzero(s.nuis["blur"])
    if sel.size:
        padded = np.pad(img[:, sel], ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        rows3 = padded[:, :, :-2] + padded[:, :, 1:-1] + padded[:, :, 2:]
        img[:, sel] = (rows3[..., :-2] + rows3[..., 1:-1] + rows3[..., 2:]) / np.float32(9.0)
    noise = np.stack([g.random((3, s.size, s.size), dtype=np.float32) for g in gens], 1)
    noise -= np.float32(0.5)
    img += noise * (s.shot["noise"] * np.float32(np.sqrt(12.0)))
    np.rint(img, out=img)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8).transpose(1, 2, 3, 0).copy()


def render(ident: dict[str, np.ndarray], nuis: dict[str, np.ndarray], gens, size: int) -> np.ndarray:
    """Renders one image per row of ``ident``/``nuis`` (same length B): uint8 ``(B, size, size, 3)``.

    Coordinates: image ``(x, y)`` in [-1, 1] (y down); the face frame ``(u, v)`` is the image
    frame shifted, rotated and scaled by the pose; inner features use ``(u - yaw, v - pitch)``.
    Painted back to front: background, head (neck, ears, back hair, face), skin marks, nose,
    eyes, mouth, fringe, occluder; then the camera: illumination, blur, noise.
    """
    scene = _scene(ident, nuis, size)
    img = _paint_background(scene)
    face, strands = _paint_head(img, scene)
    _paint_skin_marks(img, scene, face)
    _paint_nose(img, scene)
    _paint_eyes(img, scene)
    _paint_mouth(img, scene)
    _paint_fringe(img, scene, face, strands)
    _paint_occluder(img, scene)
    img = _illuminate(img, scene)
    return _sensor(img, scene, gens)


def _take(params: dict[str, np.ndarray], rows) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in params.items()}


def _render_chunks(latents, rows, nuis, gens, size):
    """Yields ``(slice, uint8 images)`` chunk by chunk; image ``k`` shows identity ``rows[k]``."""
    for start in range(0, len(gens), _CHUNK):
        part = slice(start, start + _CHUNK)
        yield part, render(_take(latents, rows[part]), _take(nuis, part), gens[part], size)


def _render_jpegs(latents, rows, nuis, gens, size):
    """Yields JPEG bytes per image (quality from the nuisance)."""
    for part, images in _render_chunks(latents, rows, nuis, gens, size):
        for image, quality in zip(images, nuis["jpeg_q"][part], strict=True):
            yield preprocess.encode_jpeg(image, quality=int(quality))


def render_identity_images(seed: int, identities: int, images_per_identity: int, size: int, *, first: int = 0,
                           nuisance: float = 1.0):
    """The training images of identities ``first .. first+identities-1`` as decoded pixels (no JPEG).

    Returns:
      ``(uint8 (identities * images_per_identity, size, size, 3), identity number per image)``,
      identity-major, exactly the pixels :func:`generate` encodes for those identities (with the
      same ``nuisance`` strength, see :func:`sample_nuisance`).
    """
    ids = np.arange(first, first + identities)
    latents = sample_identities(seed, ids, stream=_TRAIN_ID)
    keys = [(i, j) for i in ids for j in range(images_per_identity)]
    nuis, gens = sample_nuisance(seed, _TRAIN_IMG, keys, strength=nuisance)
    rows = np.repeat(np.arange(identities), images_per_identity)
    images = np.concatenate([chunk for _, chunk in _render_chunks(latents, rows, nuis, gens, size)])
    return images, ids[rows]


def make_verification_pairs(seed: int, val_identities: int, val_pairs: int, size: int, *, nuisance: float = 1.0):
    """Held-out verification pairs: ``(list of 2P JPEG bytes, list of P bools)``.

    Identities come from a stream disjoint from the training identities. Exactly
    ``val_pairs // 2`` pairs are "same" (two images of one identity under independent nuisance),
    the rest are of two different identities, in a seeded random order.
    """
    rng = np.random.default_rng([seed, _VAL_PAIRS])
    n_same = val_pairs // 2
    issame = np.zeros(val_pairs, bool)
    issame[:n_same] = True
    rng.shuffle(issame)
    first = rng.integers(0, val_identities, val_pairs)
    other = (first + rng.integers(1, val_identities, val_pairs)) % val_identities
    second = np.where(issame, first, other)
    who = np.stack([first, second], 1).reshape(-1)
    latents = sample_identities(seed, np.arange(val_identities), stream=_VAL_ID)
    keys = [(k, side) for k in range(val_pairs) for side in (0, 1)]
    nuis, gens = sample_nuisance(seed, _VAL_IMG, keys, strength=nuisance)
    images = list(_render_jpegs(latents, who, nuis, gens, size))
    return images, issame.tolist()


def generate(config: SynthConfig) -> dict:
    """Writes the training record set and the held-out verification ``.bin`` into ``config.out``.

    Returns:
      A summary: paths, counts, file sizes and seconds taken.
    """
    from pocketnet_tf.data import bin_file, recordio

    start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    n_id, per = config.identities, config.images_per_identity
    ids = np.arange(n_id)
    latents = sample_identities(config.seed, ids, stream=_TRAIN_ID)
    keys = [(i, j) for i in range(n_id) for j in range(per)]
    nuis, gens = sample_nuisance(config.seed, _TRAIN_IMG, keys, strength=config.nuisance)
    labels = np.repeat(ids, per)

    jpegs = _render_jpegs(latents, labels, nuis, gens, config.size)
    rec = recordio.write_insightface_rec(
        out, labels, jpegs, image_size=(config.size, config.size), num_classes=n_id
    )
    summary = {
        "out": str(out),
        "num_classes": n_id,
        "num_images": rec["num_images"],
        "size": config.size,
        "nuisance": config.nuisance,
        "files": {"train.rec": rec["rec"], "train.idx": rec["idx"], "property": rec["property"]},
    }
    if config.val_pairs > 0:
        val_images, issame = make_verification_pairs(config.seed, config.val_identities, config.val_pairs, config.size,
                                                     nuisance=config.nuisance)
        bin_path = out / "synth_val.bin"
        bin_file.write_bin(bin_path, val_images, issame)
        summary["files"]["synth_val.bin"] = str(bin_path)
        summary["val_pairs"] = config.val_pairs
        summary["val_identities"] = config.val_identities
    summary["bytes"] = {name: Path(p).stat().st_size for name, p in summary["files"].items()}
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary


_ARGUMENTS_FILE = "synthetic.json"


def ensure_dataset(out, *, identities: int, images_per_identity: int, seed: int, size: int,
                   val_identities: int, val_pairs: int, nuisance: float = 1.0):
    """Generates a synthetic dataset into ``out`` unless ``train.rec``/``train.idx`` are there.

    Written into a temporary directory renamed on success, so an interrupted generation never
    leaves a half-written dataset that a later run would accept. The generator arguments are
    recorded in ``out/synthetic.json``; a dataset there made with other arguments is refused
    (a changed ``--synth_*`` flag would otherwise train on the old data). Returns ``out`` as a Path.
    """
    from pathlib import Path

    from absl import logging

    from pocketnet_tf.bounded import loads_json, read_bounded
    from pocketnet_tf.io_utils import atomic_path, write_json_atomic

    out = Path(out)
    arguments = {"identities": identities, "images_per_identity": images_per_identity, "seed": seed, "size": size,
                 "val_identities": val_identities, "val_pairs": val_pairs, "nuisance": float(nuisance)}
    if (out / "train.rec").exists() and (out / "train.idx").exists():
        recorded_path = out / _ARGUMENTS_FILE
        if recorded_path.is_file():
            recorded = loads_json(read_bounded(recorded_path, 1 << 16, what="synthetic data record"),
                                  str(recorded_path))
            if not isinstance(recorded, dict):
                raise ValueError(f"{recorded_path}: not a JSON object")
            # Files written before the nuisance knob existed were made at the default strength.
            recorded = {"nuisance": 1.0, **recorded}
            differ = {k: (recorded.get(k), v) for k, v in arguments.items() if recorded.get(k) != v}
            if differ:
                details = ", ".join(f"{k}: {old} there, {new} asked" for k, (old, new) in differ.items())
                raise ValueError(f"{out} holds synthetic data made with other arguments ({details}); "
                                 "remove it or use another --data/--workdir")
        logging.info("synthetic data present in %s", out)
        return out
    logging.info("generating synthetic data into %s (%d identities x %d images, %dx%d, nuisance %g)", out,
                 identities, images_per_identity, size, size, nuisance)
    with atomic_path(out, suffix="") as tmp:
        summary = generate(SynthConfig(out=str(tmp), **arguments))
        write_json_atomic(Path(tmp) / _ARGUMENTS_FILE, arguments)
    logging.info("synthetic data: %d images of %d identities in %.1fs", summary["num_images"],
                 summary["num_classes"], summary["seconds"])
    return out
