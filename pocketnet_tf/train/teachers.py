"""Teacher SavedModels: export, the per-run manifest, loading and validation (spec §6.6, §6.7).

A teacher is any TensorFlow SavedModel whose ``serving_default`` signature maps one float32
image batch ``(batch, H, W, 3)`` in [-1, 1] to one embedding batch ``(batch, E)``. Teacher
training writes one per epoch (:func:`export_savedmodel`) and a JSON manifest listing them::

    {"format": "pocketnet_tf.teacher_manifest", "version": 1,
     "entries": [{"epoch": 1, "step": 11372, "path": "teacher_epoch_001",
                  "embedding_size": 128, "input_shape": [112, 112, 3]}, ...]}

``epoch`` counts completed epochs (the checkpoint saved at the end of teacher epoch ``epoch``),
``path`` is relative to the manifest's directory.

:class:`SavedModelTeacher` wraps a loaded SavedModel for the distillation step. Its
:meth:`~SavedModelTeacher.assign_from` copies another checkpoint's weights into the variables the
compiled train step already captured, which is how the multi-step schedule switches teachers
without retracing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pocketnet_tf.io_utils import atomic_path, write_json_atomic

MANIFEST_FORMAT = "pocketnet_tf.teacher_manifest"
MANIFEST_VERSION = 1
SIGNATURE = "serving_default"


class TeacherError(ValueError):
    """A teacher SavedModel or manifest is unusable (the message names the file and the problem)."""


# ---------------------------------------------------------------------------------------------
# Export


class ServingModule:
    """The model's inference function and variables, traced once, saved as often as needed.

    Saving a Keras model directly re-traces every layer on each save (seconds per epoch); this
    module tracks only the variables and one ``tf.function``, so repeated per-epoch exports
    reuse the same trace and just write the current variable values.
    """

    def __init__(self, model):
        import tensorflow as tf

        input_shape = tuple(model.input_shape[1:])
        if len(input_shape) != 3 or None in input_shape:
            raise ValueError(f"{model.name}: the model must have a static (H, W, C) input, it has {model.input_shape}")
        self.model = model
        self.module = tf.Module(name="serving")
        self.module.variables_to_save = [getattr(v, "value", v) for v in model.weights]
        self.module.serve = tf.function(
            lambda image: model(image, training=False),
            input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="image")],
        )
        self._concrete = None

    def save(self, path) -> Path:
        """Writes the SavedModel to ``path`` atomically (complete or not at all)."""
        import tensorflow as tf

        path = Path(path)
        if self._concrete is None:
            self._concrete = self.module.serve.get_concrete_function()
        with atomic_path(path, suffix="") as tmp:
            tf.saved_model.save(self.module, str(tmp), signatures={SIGNATURE: self._concrete})
        return path


def export_savedmodel(model, path) -> Path:
    """Writes ``model`` (image batch -> embedding, inference mode) as a SavedModel, atomically.

    The directory appears complete or not at all; an existing one is replaced. The
    ``serving_default`` signature takes ``image``: ``(None, H, W, 3)`` float32 in [-1, 1] and
    returns the raw embedding as ``output_0``.
    """
    return ServingModule(model).save(path)


# ---------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class ManifestEntry:
    epoch: int
    step: int
    path: str
    embedding_size: int
    input_shape: list

    def resolve(self, manifest_dir: Path) -> Path:
        p = Path(self.path)
        return p if p.is_absolute() else Path(manifest_dir) / p


def write_manifest(path, entries) -> None:
    """Writes the manifest atomically, entries sorted by epoch."""
    entries = sorted(entries, key=lambda e: e.epoch)
    write_json_atomic(path, {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "entries": [asdict(e) for e in entries],
    })


def read_manifest(path) -> list[ManifestEntry]:
    """Reads and checks a teacher manifest; raises :class:`TeacherError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: teacher manifest not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TeacherError(f"{path}: not a readable JSON teacher manifest ({err})") from err
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise TeacherError(f"{path}: not a teacher manifest (expected format {MANIFEST_FORMAT!r})")
    if data.get("version") != MANIFEST_VERSION:
        raise TeacherError(f"{path}: manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}")
    entries = []
    for i, raw in enumerate(data.get("entries", [])):
        try:
            entry = ManifestEntry(
                epoch=int(raw["epoch"]), step=int(raw["step"]), path=str(raw["path"]),
                embedding_size=int(raw["embedding_size"]), input_shape=[int(v) for v in raw["input_shape"]],
            )
        except (KeyError, TypeError, ValueError) as err:
            raise TeacherError(f"{path}: entry {i} is malformed ({err!r}): {raw!r}") from err
        entries.append(entry)
    epochs = [e.epoch for e in entries]
    if len(set(epochs)) != len(epochs):
        raise TeacherError(f"{path}: duplicate epochs in manifest: {epochs}")
    return sorted(entries, key=lambda e: e.epoch)


# ---------------------------------------------------------------------------------------------
# Loading


def _short_name(variable_name: str) -> str:
    # Variable names carry the exporting model's name first ("iresnet18/conv1/kernel:0"); two
    # checkpoints of the same architecture may differ only there.
    return variable_name.split("/", 1)[-1]


class SavedModelTeacher:
    """A frozen teacher loaded from a SavedModel's ``serving_default`` signature.

    Attributes:
      path: the SavedModel directory currently loaded into :attr:`variables`.
      input_shape: ``(H, W, C)`` the signature accepts (``None`` entries when dynamic).
      embedding_size: size of the output embedding.
      variables: the signature's captured variables (what a traced step reads).

    Calling it maps ``(batch, H, W, 3)`` float32 to ``(batch, E)`` float32, inference mode.
    """

    def __init__(self, path):
        import tensorflow as tf

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: teacher SavedModel not found")
        if not (self.path / "saved_model.pb").is_file():
            raise TeacherError(f"{self.path}: not a SavedModel directory (no saved_model.pb)")
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except Exception as err:  # TF raises many types for a corrupt SavedModel
            raise TeacherError(f"{self.path}: cannot load the SavedModel ({type(err).__name__}: {err})") from err
        signatures = getattr(self._loaded, "signatures", {})
        if SIGNATURE not in signatures:
            raise TeacherError(f"{self.path}: no {SIGNATURE!r} signature (has {sorted(signatures)})")
        fn = signatures[SIGNATURE]
        inputs = fn.structured_input_signature[1]
        outputs = fn.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise TeacherError(
                f"{self.path}: the {SIGNATURE!r} signature must take one image tensor and return one embedding, "
                f"it takes {sorted(inputs)} and returns {sorted(outputs)}"
            )
        (self._input_key, spec), = inputs.items()
        (self._output_key, out_spec), = outputs.items()
        if spec.dtype != tf.float32 or spec.shape.rank != 4:
            raise TeacherError(f"{self.path}: signature input is {spec}, expected float32 (batch, H, W, 3)")
        self._fn = fn
        self.input_shape = tuple(spec.shape.as_list()[1:])
        if out_spec.shape.rank != 2:
            raise TeacherError(f"{self.path}: signature output is {out_spec}, expected (batch, embedding)")
        self.embedding_size = out_spec.shape[-1]
        self.variables = list(fn.variables)

    def __call__(self, images):
        return self._fn(**{self._input_key: images})[self._output_key]

    def structure(self):
        """``[(name without model prefix, shape, dtype)]`` of the variables, for compatibility checks."""
        return [(_short_name(v.name), tuple(v.shape.as_list()), v.dtype.name) for v in self.variables]

    def compatible_with(self, other: "SavedModelTeacher") -> bool:
        return self.structure() == other.structure()

    def assign_from(self, other: "SavedModelTeacher") -> None:
        """Copies ``other``'s weights into this teacher's variables (same architecture required)."""
        if not self.compatible_with(other):
            raise TeacherError(
                f"{other.path}: variables differ from the active teacher {self.path} "
                f"({len(other.variables)} vs {len(self.variables)} variables); cannot assign"
            )
        for dst, src in zip(self.variables, other.variables):
            dst.assign(src)
        self.path = other.path

    def validate(self, input_shape, embedding_size) -> None:
        """Checks the teacher takes ``input_shape`` images and emits ``embedding_size`` floats.

        Dynamic dimensions in the signature are checked by running one zero image. A teacher with
        NaN/inf weights is refused (a check of the values, safe inside a strategy scope; the output
        check, :func:`check_finite_output`, runs in :meth:`TeacherSchedule.validate`).
        """
        import numpy as np

        input_shape = tuple(int(v) for v in input_shape)
        if len(self.input_shape) != 3 or any(a is not None and a != b for a, b in zip(self.input_shape, input_shape)):
            raise TeacherError(
                f"{self.path}: teacher input shape {list(self.input_shape)} does not match the student's "
                f"{list(input_shape)}"
            )
        check_finite_weights(self.variables, str(self.path))
        size = self.embedding_size
        if size is None or None in self.input_shape:
            out = self(np.zeros((1, *input_shape), np.float32))
            size = int(out.shape[-1])
            self.embedding_size = size
        if size != int(embedding_size):
            raise TeacherError(
                f"{self.path}: teacher embedding size {size} does not match the student's {int(embedding_size)}"
            )


def probe_images(input_shape):
    """Two deterministic images in [-1, 1] (a ramp and its negation) of ``input_shape`` (H, W, C)."""
    import numpy as np

    ramp = np.linspace(-1.0, 1.0, int(np.prod(input_shape)), dtype=np.float32).reshape(input_shape)
    return np.stack([ramp, -ramp])


def check_finite_output(teacher, input_shape, name: str) -> None:
    """Refuses a teacher whose embeddings of two probe images hold NaN or inf."""
    import numpy as np

    if not np.isfinite(np.asarray(teacher(probe_images(tuple(input_shape))))).all():
        raise TeacherError(f"{name}: the teacher's output on probe images is not finite; refusing it")


def check_finite_weights(variables, name: str) -> None:
    """Refuses a teacher with a NaN or infinite weight, naming the first such variable."""
    from pocketnet_tf.fitting.guard import first_non_finite

    variable = first_non_finite(variables)
    if variable is not None:
        raise TeacherError(f"{name}: teacher weight {variable.name} holds NaN or inf values; refusing it")


class KerasTeacher:
    """An in-memory Keras model used as a frozen teacher (inference mode, never trained)."""

    def __init__(self, model):
        self.model = model
        self.model.trainable = False
        self.path = None
        self.input_shape = tuple(model.input_shape[1:])
        self.embedding_size = model.output_shape[-1]
        self.variables = list(model.weights)

    def __call__(self, images):
        return self.model(images, training=False)

    def validate(self, input_shape, embedding_size) -> None:
        if tuple(self.input_shape) != tuple(input_shape) or self.embedding_size != embedding_size:
            raise TeacherError(
                f"teacher {self.model.name}: input {list(self.input_shape)} / embedding {self.embedding_size}, "
                f"student expects {list(input_shape)} / {embedding_size}"
            )
        check_finite_weights(self.variables, f"teacher {self.model.name}")


def as_teacher(teacher):
    """A path -> :class:`SavedModelTeacher`; a Keras model -> :class:`KerasTeacher`; else as is."""
    if teacher is None or isinstance(teacher, (SavedModelTeacher, KerasTeacher)):
        return teacher
    if isinstance(teacher, (str, os.PathLike)):
        return SavedModelTeacher(teacher)
    import keras

    if isinstance(teacher, keras.Model):
        return KerasTeacher(teacher)
    raise TypeError(f"teacher must be a SavedModel path or a keras.Model, received {type(teacher).__name__}")
