"""The one home of image preprocessing, shared by training, evaluation, export and the app.

PocketNet (like insightface) feeds the network RGB images scaled as ``x / 127.5 - 1``
(written in the original as ``(x / 255 - 0.5) / 0.5``), NHWC here. Everything that must agree
with the Android demo (normalisation constants, the alignment template) is defined here and
exported to the bundle metadata from these values.
"""

from __future__ import annotations

import io

import numpy as np

#: Input side of every aligned face crop.
IMAGE_SIZE = 112
#: ``x_norm = (x - MEAN) / STD`` per channel, RGB order.
MEAN = 127.5
STD = 127.5

#: ArcFace 5-point template for 112x112 crops (left eye, right eye, nose tip, left and right mouth
#: corner), in pixels, *with* the +8 px x-offset that the insightface 112x112 data and the IJB
#: evaluation use.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def normalize(images):
    """Maps uint8 (or float 0..255) RGB pixels to the network input range [-1, 1].

    Works on numpy arrays and on tensors (anything supporting ``astype``/arithmetic via numpy,
    or use :func:`normalize_tf` inside a tf.data pipeline).
    """
    return np.asarray(images, dtype=np.float32) / np.float32(STD) - np.float32(MEAN / STD)


def normalize_tf(images):
    """TensorFlow version of :func:`normalize` for tf.data pipelines and serving functions."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / STD - MEAN / STD


def denormalize(images):
    """Inverse of :func:`normalize`: network input back to float pixels 0..255."""
    return (np.asarray(images, dtype=np.float32) + np.float32(MEAN / STD)) * np.float32(STD)


def decode_image(data: bytes, *, source: str = "<bytes>", size: int = IMAGE_SIZE) -> np.ndarray:
    """Decodes JPEG/PNG bytes to an RGB uint8 HWC array.

    If the image is not ``size`` wide, its shorter side is resized to ``size`` (as the
    insightface verification loader does) and the centre ``size``x``size`` region is kept.

    Raises:
      ValueError: naming ``source`` when the bytes are not a decodable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            if img.width != size or img.height != size:
                scale = size / min(img.width, img.height)
                new_w = max(size, round(img.width * scale))
                new_h = max(size, round(img.height * scale))
                img = img.resize((new_w, new_h), Image.BILINEAR)
                left = (new_w - size) // 2
                top = (new_h - size) // 2
                img = img.crop((left, top, left + size, top + size))
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{source}: cannot decode image ({err})") from err


def decode_image_tf(encoded, size: int):
    """TensorFlow twin of :func:`decode_image` for tf.data pipelines: JPEG or PNG bytes -> RGB
    uint8 ``[size, size, 3]``.

    JPEGs are decoded with the accurate integer IDCT (as PIL does, so both decoders agree);
    an image of another size has its shorter side resized to ``size`` (bilinear with
    antialiasing, rounded to uint8, like PIL's reducing bilinear) and the centre kept. Bytes that
    are neither JPEG nor PNG, or do not decode, raise ``InvalidArgumentError`` when run.
    """
    import tensorflow as tf

    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(encoded, channels=3),
    )
    image = tf.ensure_shape(image, [None, None, 3])
    height, width = tf.shape(image)[0], tf.shape(image)[1]

    def resize_and_crop():
        scale = size / tf.cast(tf.minimum(height, width), tf.float64)
        new_h = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
        new_w = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
        resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
        resized = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return resized[top : top + size, left : left + size, :]

    same = tf.logical_and(tf.equal(height, size), tf.equal(width, size))
    return tf.ensure_shape(tf.cond(same, lambda: image, resize_and_crop), [size, size, 3])


def probe_image(data: bytes, *, source: str = "<bytes>") -> tuple[int, int, str]:
    """Fully decodes JPEG/PNG bytes (to prove they are readable) and returns
    ``(height, width, format)`` with format ``"jpeg"`` or ``"png"``, without resizing.

    Raises:
      ValueError: naming ``source`` when the bytes are not a decodable JPEG/PNG image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
            img.load()
            height, width = img.height, img.width
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{source}: cannot decode image ({err})") from err
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"{source}: image format {fmt or 'unknown'!r}; expected JPEG or PNG")
    return height, width, fmt


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """Encodes an RGB uint8 HWC array as JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """Encodes an RGB uint8 HWC array as PNG bytes (lossless)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()
