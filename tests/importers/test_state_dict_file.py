"""Reading state_dicts from disk: torch.save files (weights-only) and safetensors."""

import os
import pickle

import numpy as np
import pytest

from pocketnet_tf.importers.state_dict_file import load_state_dict
from tests.importers.common import write_safetensors


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch.save files need the torch test extra")


class _RunsCommand:
    """Pickles to a call of os.system: loading it unsafely would create ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    pass


def test_plain_state_dict_round_trips_values_and_dtypes(torch, tmp_path):
    state = {
        "a.weight": torch.randn(3, 2, 1, 1),
        "a.half": torch.randn(4).half(),
        "a.bf16": torch.randn(5).bfloat16(),
        "bn.num_batches_tracked": torch.tensor(7),
    }
    torch.save(state, tmp_path / "x.pth")
    got = load_state_dict(tmp_path / "x.pth")
    assert list(got) == list(state)
    np.testing.assert_array_equal(got["a.weight"], state["a.weight"].numpy())
    for key in ("a.half", "a.bf16"):
        assert got[key].dtype == np.float32
        np.testing.assert_array_equal(got[key], state[key].float().numpy())
    assert got["bn.num_batches_tracked"].dtype == np.int64 and got["bn.num_batches_tracked"] == 7


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "nested"])
def test_wrapped_checkpoints_and_ddp_prefix_are_unwrapped(torch, tmp_path, wrapper):
    inner = {"module.conv.weight": torch.ones(2, 1, 1, 1), "module.bn.running_var": torch.ones(2)}
    if wrapper == "nested":
        obj = {"model": {"state_dict": inner}, "epoch": 3}
    else:
        obj = {wrapper: inner, "epoch": 3, "optimizer": {"lr": 0.1}}
    torch.save(obj, tmp_path / "ckpt.pth")
    got = load_state_dict(tmp_path / "ckpt.pth")
    assert sorted(got) == ["bn.running_var", "conv.weight"]


def test_a_key_with_and_without_the_ddp_prefix_is_an_error(torch, tmp_path):
    torch.save({"module.w": torch.ones(1), "w": torch.ones(1)}, tmp_path / "dup.pth")
    with pytest.raises(ValueError, match=r"dup\.pth: key 'w' appears both with and without the 'module\.' prefix"):
        load_state_dict(tmp_path / "dup.pth")


def test_entries_that_are_not_tensors_are_named(torch, tmp_path):
    torch.save({"w": torch.ones(1), "epoch": 3, "note": "x"}, tmp_path / "mixed.pth")
    with pytest.raises(ValueError, match=r"mixed\.pth: .*these entries are not tensors: epoch \(int\), note \(str\)"):
        load_state_dict(tmp_path / "mixed.pth")
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list\.pth: expected a state_dict .*found list"):
        load_state_dict(tmp_path / "list.pth")


def test_pickled_callable_is_refused_without_running_it(torch, tmp_path):
    marker = tmp_path / "ran"
    torch.save({"w": torch.ones(1), "payload": _RunsCommand(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError) as info:
        load_state_dict(tmp_path / "evil.pth")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'evil.pth'}: refused to load")
    assert "system" in message and "nothing from the file was executed" in message
    assert not marker.exists()


def test_legacy_pickle_with_a_global_is_refused(torch, tmp_path):
    marker = tmp_path / "ran"
    with open(tmp_path / "legacy.pth", "wb") as f:
        pickle.dump({"w": _RunsCommand(marker)}, f, protocol=2)
    with pytest.raises(ValueError, match="refused to load"):
        load_state_dict(tmp_path / "legacy.pth")
    assert not marker.exists()


def test_pickled_class_instance_is_refused(torch, tmp_path):
    torch.save({"w": _Plain()}, tmp_path / "obj.pth")
    with pytest.raises(ValueError, match=r"obj\.pth: refused to load.*_Plain"):
        load_state_dict(tmp_path / "obj.pth")


def test_garbage_truncated_and_missing_files(torch, tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth: not a readable PyTorch checkpoint"):
        load_state_dict(tmp_path / "garbage.pth")
    torch.save({"w": torch.ones(100)}, tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.pth: not a readable PyTorch checkpoint"):
        load_state_dict(tmp_path / "cut.pth")
    with pytest.raises(FileNotFoundError, match=r"nope\.pth: no such checkpoint file"):
        load_state_dict(tmp_path / "nope.pth")


# ---------------------------------------------------------------------------------------------
# safetensors (read without torch)


def test_safetensors_values_dtypes_and_prefix(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.normal(size=(2, 3, 1, 1)).astype(np.float32)
    f16 = rng.normal(size=(4,)).astype(np.float16)
    # bfloat16 = the upper 16 bits of a float32; these values are exactly representable.
    bf16_values = np.array([1.0, -2.5, 0.15625, 2.0**65], np.float32)
    bf16_raw = (bf16_values.view(np.uint32) >> 16).astype("<u2").tobytes()
    write_safetensors(tmp_path / "w.safetensors", {
        "module.conv.weight": ("F32", f32.shape, f32.astype("<f4").tobytes()),
        "module.half": ("F16", f16.shape, f16.astype("<f2").tobytes()),
        "module.bf": ("BF16", (4,), bf16_raw),
        "module.bn.num_batches_tracked": ("I64", (), np.int64(9).astype("<i8").tobytes()),
    })
    got = load_state_dict(tmp_path / "w.safetensors")
    assert sorted(got) == ["bf", "bn.num_batches_tracked", "conv.weight", "half"]
    np.testing.assert_array_equal(got["conv.weight"], f32)
    np.testing.assert_array_equal(got["half"], f16.astype(np.float32))
    np.testing.assert_array_equal(got["bf"], bf16_values)
    assert got["bn.num_batches_tracked"].shape == () and got["bn.num_batches_tracked"] == 9


def test_safetensors_bf16_matches_torch(torch, tmp_path):
    values = torch.randn(6).bfloat16()
    raw = values.view(torch.int16).numpy().astype("<i2").tobytes()
    write_safetensors(tmp_path / "b.safetensors", {"x": ("BF16", (6,), raw)})
    np.testing.assert_array_equal(load_state_dict(tmp_path / "b.safetensors")["x"], values.float().numpy())


def test_corrupt_safetensors_are_refused(tmp_path):
    write_safetensors(tmp_path / "short.safetensors", {"x": ("F32", (4,), b"\0" * 12)})
    with pytest.raises(ValueError, match=r"short\.safetensors: tensor 'x': byte range \[0, 12\) does not fit shape \[4\]"):
        load_state_dict(tmp_path / "short.safetensors")
    write_safetensors(tmp_path / "dtype.safetensors", {"x": ("C64", (1,), b"\0" * 8)})
    with pytest.raises(ValueError, match=r"dtype\.safetensors: tensor 'x': unsupported dtype 'C64'"):
        load_state_dict(tmp_path / "dtype.safetensors")
    (tmp_path / "big.safetensors").write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match=r"big\.safetensors: not a safetensors file \(header length"):
        load_state_dict(tmp_path / "big.safetensors")
    (tmp_path / "json.safetensors").write_bytes((3).to_bytes(8, "little") + b"{x}")
    with pytest.raises(ValueError, match=r"json\.safetensors: corrupt safetensors header"):
        load_state_dict(tmp_path / "json.safetensors")


def test_a_tensor_that_is_not_dense_is_named(torch, tmp_path):
    torch.save({"w": torch.ones(2), "s": torch.eye(3).to_sparse()}, tmp_path / "sparse.pth")
    with pytest.raises(ValueError, match=r"sparse\.pth: tensor 's' \(torch\.float32, layout torch\.sparse_coo\) cannot be read"):
        load_state_dict(tmp_path / "sparse.pth")


@pytest.mark.parametrize("entry, message", [
    # 2**32 * 2**32 wraps to 0 in int64: the old size check passed and reshape raised bare ValueError.
    ({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}, "does not fit shape"),
    ({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}, "malformed safetensors entry"),
    ({"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}, "unsupported dtype"),
    ({"dtype": "F32", "shape": [2], "data_offsets": "ab"}, "malformed safetensors entry"),
])
def test_safetensors_entries_are_bounded_and_typed(tmp_path, entry, message):
    import json
    import struct

    text = json.dumps({"w": entry}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(8))
    with pytest.raises(ValueError, match=message) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


def test_safetensors_deeply_nested_header_is_an_error(tmp_path):
    import struct

    text = b'{"__metadata__": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(ValueError, match="deep.safetensors: corrupt safetensors header: not valid JSON .nesting deeper"):
        load_state_dict(path)
