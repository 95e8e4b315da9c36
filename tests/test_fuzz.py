"""Property-based fuzzing of every parser of untrusted files (issue #12): random and mutated
inputs give only the project's own error types, naming the file, within a memory and time budget.

CI runs a fixed number of examples per parser, derandomised (the same inputs every run);
``pytest tests/test_fuzz.py --fuzz`` runs 50x as many, randomised (CONTRIBUTING.md).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pocketnet_tf import genotypes
from pocketnet_tf.data import recordio, tfrecord
from pocketnet_tf.data.bin_file import read_bin
from pocketnet_tf.export import metadata as metadata_lib
from pocketnet_tf.export import seal
from pocketnet_tf.importers.state_dict_file import load_state_dict

LONG = os.environ.get("POCKETNET_FUZZ") == "1"
#: Peak Python/numpy allocation allowed while parsing one input (all inputs here are < 64 KB).
MAX_TRACED_BYTES = 32 << 20


def budget(examples: int):
    """Hypothesis settings: ``examples`` derandomised in CI, 50x randomised with --fuzz; 5 s per example."""
    return settings(max_examples=examples * 50 if LONG else examples, derandomize=not LONG, database=None,
                    deadline=None if LONG else 5000,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# Mutations of a valid file: (op, position, bytes) applied in order.
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "repeat"]),
              st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=4,
)


def mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op, pos, blob in ops:
        pos = pos % (len(out) + 1)
        if op == "flip" and pos < len(out):
            out[pos] ^= 1 << (blob[0] % 8)
        elif op == "set":
            out[pos : pos + len(blob)] = blob
        elif op == "insert":
            out[pos:pos] = blob
        elif op == "delete":
            del out[pos : pos + blob[0] % 16 + 1]
        elif op == "truncate":
            del out[pos:]
        elif op == "repeat":
            out[pos:pos] = out[pos : pos + blob[0] % 64 + 1] * (1 + blob[-1] % 8)
    return bytes(out)


def refused_or_read(call, allowed, path):
    """Runs ``call``; it may succeed or raise ``allowed`` naming ``path``. Peak traced memory bounded."""
    tracemalloc.start()
    try:
        try:
            call()
        except allowed as err:
            assert str(path) in str(err), f"error does not name {path}: {err!r}"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_TRACED_BYTES, f"{peak} bytes traced"


# ------------------------------------------------------------------------------------ .bin


def _valid_bin() -> bytes:
    images = [b"\x89PNG" + bytes([i]) * 5 for i in range(4)]
    return pickle.dumps((images, [True, False]), protocol=2)


_BIN_SEEDS = [_valid_bin(), pickle.dumps(([b"a", b"b"], np.array([True])), protocol=2),
              pickle.dumps(([np.frombuffer(b"ab", np.uint8), b"c"], [np.bool_(True)]), protocol=4)]


@budget(300)
@given(seed=st.sampled_from(_BIN_SEEDS), ops=MUTATIONS)
def test_fuzz_bin_file(tmp_path, seed, ops):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(mutate(seed, ops))
    refused_or_read(lambda: read_bin(path), ValueError, path)


@budget(100)
@given(data=st.binary(max_size=256))
def test_fuzz_bin_file_random_bytes(tmp_path, data):
    path = tmp_path / "random.bin"
    path.write_bytes(b"\x80\x02" + data)
    refused_or_read(lambda: read_bin(path), ValueError, path)


# ------------------------------------------------------------------------------- genotypes

_GENOTYPE_ALPHABET = st.sampled_from(list("Genotype(normal=[('dw_conv_3x3', 0)]range,) 0123456789\"{}:\n-") + [
    "Genotype(", "range(", "normal_concat=", "'skip_connect'", "[[", "]]"])


@budget(300)
@given(seed=st.sampled_from([genotypes.SOFTMAX_CASIA_TEXT, genotypes.to_json(genotypes.SOFTMAX_CIFAR10)]),
       ops=MUTATIONS, suffix=st.sampled_from([".txt", ".json"]))
def test_fuzz_genotype_files(tmp_path, seed, ops, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(mutate(seed.encode(), ops))
    refused_or_read(lambda: genotypes.load(path), genotypes.GenotypeError, path)


@budget(200)
@given(pieces=st.lists(_GENOTYPE_ALPHABET, max_size=200))
def test_fuzz_genotype_text_from_tokens(pieces):
    text = "".join(pieces)
    try:
        genotypes.parse(text)
        genotypes.from_json(text)
    except genotypes.GenotypeError:
        pass


# ------------------------------------------------------------------------ RecordIO / TFRecord


@pytest.fixture(scope="module")
def rec_seed(tmp_path_factory):
    from tests.data.data_helpers import unique_images, write_rec

    root = tmp_path_factory.mktemp("rec_seed")
    write_rec(root, [0, 0, 1], unique_images(3, 4))
    return {name: (root / name).read_bytes() for name in ("train.rec", "train.idx", "property")}


def _read_all_records(directory):
    source = recordio.InsightFaceRecordSource(directory)
    try:
        for i in range(len(source)):
            try:
                source.read_image(i)
            except recordio.RecordIOError:
                pass  # a corrupt record is skipped by the pipeline, counted
    finally:
        source.close()


@budget(300)
@given(target=st.sampled_from(["train.rec", "train.idx", "property"]), ops=MUTATIONS)
def test_fuzz_recordio(tmp_path_factory, rec_seed, target, ops):
    directory = tmp_path_factory.mktemp("rec")
    for name, data in rec_seed.items():
        (directory / name).write_bytes(mutate(data, ops) if name == target else data)
    refused_or_read(lambda: _read_all_records(directory), ValueError, directory)


@pytest.fixture(scope="module")
def tfrecord_seed(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfr_seed") / "faces.tfrecord"
    with tfrecord.TFRecordWriter(path) as writer:
        for label in (0, 1, 1):
            writer.write(tfrecord.make_example(b"\x89PNG" + bytes([label]) * 8, label=label, height=4, width=4,
                                               source_id=f"img{label}", fmt="png"))
    return path.read_bytes()


def _read_tfrecord(path):
    source = tfrecord.TFRecordSource(path)
    for i in range(len(source)):
        try:
            source.read_image(i)
        except ValueError:
            pass
    assert source.labels.dtype == np.int64


@budget(200)
@given(ops=MUTATIONS)
def test_fuzz_tfrecord(tmp_path_factory, tfrecord_seed, ops):
    path = tmp_path_factory.mktemp("tfr") / "faces.tfrecord"
    path.write_bytes(mutate(tfrecord_seed, ops))
    refused_or_read(lambda: _read_tfrecord(path), ValueError, path)


# ----------------------------------------------------------------- bundle metadata / golden


def _seed_metadata() -> dict:
    return {
        "schema": "pocketnet_tf.tflite_metadata/1",
        "model": {"file": "model.tflite", "sha256": "ab" * 32, "mode": "int8", "size_bytes": 10},
        "input": {"shape": [1, 4, 4, 3], "dtype": "float32", "quantization": None, "layout": "NHWC",
                  "color": "RGB", "normalization": {"mean": 127.5, "std": 127.5}},
        "output": {"shape": [1, 2], "dtype": "float32", "quantization": None, "embedding_size": 2,
                   "l2_normalized": False},
        "alignment": {"template": [[1, 1], [2, 1], [1.5, 2], [1, 3], [2, 3]], "output_size": [4, 4]},
        "verification": {"metric": "cosine", "threshold": 0.3, "far_target": 0.001},
        "bundle": {"manifest": "manifest.json", "manifest_sha256": "cd" * 32},
    }


@budget(400)
@given(ops=MUTATIONS, app=st.booleans())
def test_fuzz_bundle_metadata_reader(tmp_path, ops, app):
    path = tmp_path / "metadata.json"
    path.write_bytes(mutate(json.dumps(_seed_metadata()).encode(), ops))

    def read():
        seal.check_metadata(seal.read_json(path), path, app=app)

    refused_or_read(read, seal.BundleError, path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@budget(300)
@given(field=st.sampled_from(["model", "input", "output", "alignment", "verification", "bundle", "schema"]),
       value=JSON_VALUES)
def test_fuzz_bundle_metadata_fields(tmp_path, field, value):
    meta = _seed_metadata()
    meta[field] = value
    try:
        seal.check_metadata(meta, "metadata.json", app=True)
    except seal.BundleError as err:
        assert str(err).startswith("metadata.json: ")


@budget(200)
@given(ops=MUTATIONS)
def test_fuzz_manifest_and_golden_index(tmp_path_factory, ops):
    """A tiny sealed directory whose manifest bytes are mutated and re-hashed into metadata.json:
    every manifest the seal parses gives a BundleError or opens."""
    import hashlib

    directory = tmp_path_factory.mktemp("bundle")
    (directory / "model.tflite").write_bytes(b"model")
    (directory / "golden").mkdir()
    (directory / "golden" / "golden.json").write_text("{}")
    meta = _seed_metadata()
    meta["model"]["sha256"] = hashlib.sha256(b"model").hexdigest()
    entry = seal.write_manifest(directory)
    raw = mutate((directory / "manifest.json").read_bytes(), ops)
    (directory / "manifest.json").write_bytes(raw)
    meta["bundle"] = {**entry, "manifest_sha256": hashlib.sha256(raw).hexdigest()}
    (directory / "metadata.json").write_text(json.dumps(meta))
    refused_or_read(lambda: seal.open_bundle(directory), seal.BundleError, directory)


@pytest.fixture(scope="module")
def tflite_seed():
    """A real converted model with embedded metadata (the tiny tflite of a 2-layer Keras model)."""
    import keras

    from tests.factory import convert_to_tflite

    inputs = keras.Input((4, 4, 3), batch_size=1)
    data = convert_to_tflite(keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs))))
    return metadata_lib.embed_metadata(data, _seed_metadata())


@budget(150)
@given(ops=MUTATIONS)
def test_fuzz_embedded_metadata_reader(tmp_path, tflite_seed, ops):
    path = tmp_path / "model.tflite"
    path.write_bytes(mutate(tflite_seed, ops))
    refused_or_read(lambda: metadata_lib.read_metadata_entries(path), ValueError, path)


# ---------------------------------------------------------------------------- state dicts


def _safetensors_seed() -> bytes:
    header = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [16, 20]}}
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + np.arange(4, dtype="<f4").tobytes() + b"\x80\x3f\x00\x40"


@budget(300)
@given(ops=MUTATIONS)
def test_fuzz_safetensors(tmp_path, ops):
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(mutate(_safetensors_seed(), ops))
    refused_or_read(lambda: load_state_dict(path), ValueError, path)


@pytest.fixture(scope="module")
def pth_seed(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="torch.save files need the torch test extra")
    path = tmp_path_factory.mktemp("pth") / "seed.pth"
    torch.save({"conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "bn.num": torch.tensor(3)}, path)
    return path.read_bytes()


@budget(60)
@given(ops=MUTATIONS)
def test_fuzz_torch_state_dict(tmp_path, pth_seed, ops):
    path = tmp_path / "fuzz.pth"
    path.write_bytes(mutate(pth_seed, ops))
    refused_or_read(lambda: load_state_dict(path), ValueError, path)
