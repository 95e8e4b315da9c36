"""Key map and layout conversions, checked against PyTorch reference networks written from the spec.

Each agreement test fills the reference with random weights, BN statistics, BN affine parameters
and PReLU slopes, saves it with ``torch.save``, reads it back through the importer's file reader
and compares embeddings in inference mode.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch reference needs the torch test extra")

from pocketnet_tf.importers import state_dict_file, torch_checkpoint  # noqa: E402
from pocketnet_tf.models.iresnet import IResNet  # noqa: E402
from pocketnet_tf.models.pocketnet import PocketNet  # noqa: E402
from tests import torch_reference as ref  # noqa: E402
from tests.factory import random_images  # noqa: E402
from tests.importers.common import (  # noqa: E402
    ALL_PRIMITIVES_GENOTYPE, ATOL, SPEC_TSV, max_abs_diff, read_key_table, torch_state_dict,
)

TINY = dict(channels=4, num_cells=5, embedding_size=16, head_width=32, input_size=32)


def _import_through_file(model, module, tmp_path, name="backbone.pth"):
    path = tmp_path / name
    torch.save(module.state_dict(), path)
    return torch_checkpoint.assign_state_dict(model, state_dict_file.load_state_dict(path), source=str(path))


def _check_agreement(model, module, size, seed=0):
    images = random_images(2, size=size, seed=seed)
    expected = ref.embed(module, images)
    got = np.asarray(model(images, training=False))
    assert got.shape == expected.shape
    # The embedding must be O(1) for an absolute tolerance of 1e-4 to mean something.
    assert 0.1 < float(np.std(expected)) < 100.0
    diff = max_abs_diff(got, expected)
    assert diff <= ATOL, f"max |keras - torch| = {diff}"
    return diff


# ---------------------------------------------------------------------------------------------
# The original's layout


def test_reference_state_dict_equals_the_originals_keys_and_shapes():
    table = read_key_table()
    assert len(table) == 1275
    mine = torch_state_dict(ref.AugmentCNN(channels=16, num_cells=18, embedding_size=128))
    assert list(mine) == list(table)  # same keys in the same order
    assert mine == table  # and the same shapes and dtypes


def test_key_fixture_is_the_spec_dump():
    if not SPEC_TSV.is_file():
        pytest.skip(f"spec dump not checked out beside the repository ({SPEC_TSV})")
    assert read_key_table(SPEC_TSV) == read_key_table()


def test_weight_map_of_pocketnet_s128_covers_exactly_the_originals_keys():
    table = read_key_table()
    model = PocketNet()
    wmap = torch_checkpoint.weight_map(model)
    counters = {k for k in table if k.endswith(".num_batches_tracked")}
    assert len(counters) == 163
    assert set(wmap.optional) == counters
    assert set(wmap.keys()) == set(table) - counters
    assert len(wmap.tensors) == 1112
    assert {t.key: t.torch_shape for t in wmap.tensors} == {k: table[k][0] for k in wmap.keys()}
    # Every Keras variable is fed exactly once.
    fed = [id(t.variable) for t in wmap.tensors]
    assert len(set(fed)) == len(fed) == len(model.weights)


# ---------------------------------------------------------------------------------------------
# Agreement with the reference


@pytest.mark.parametrize("genotype", ["softmax_cifar10", "all_primitives"])
def test_tiny_pocketnet_matches_torch(genotype, tmp_path):
    geno = ALL_PRIMITIVES_GENOTYPE if genotype == "all_primitives" else genotype
    module = ref.randomize_(ref.AugmentCNN(genotype=geno, **TINY), seed=2)
    model = PocketNet(genotype=geno, **TINY)
    _import_through_file(model, module, tmp_path)
    _check_agreement(model, module, TINY["input_size"], seed=3)


def test_tiny_pocketnet_exercises_stride2_pools_and_factorized_reduce_edges():
    model = PocketNet(genotype=ALL_PRIMITIVES_GENOTYPE, **TINY)
    keys = torch_checkpoint.weight_map(model).keys()
    # Reduction cell 1: avg pool stride 2 (BN only), skip_connect stride 2 = FactorizedReduce.
    assert "cells.1.dag.0.0.bn.running_var" in keys and "cells.1.dag.0.0.net.0.weight" not in keys
    assert {"cells.1.dag.0.1.relu.weight", "cells.1.dag.0.1.conv11.weight", "cells.1.dag.0.1.conv22.weight"} <= set(keys)
    # Normal cell 0: a stride-1 skip is an identity without tensors.
    assert not any(k.startswith("cells.0.dag.1.0.") for k in keys)
    # FactorizedReduce pre-processing after a reduction cell.
    assert "cells.2.preproc0.conv21.weight" in keys and "cells.2.preproc0.net.0.weight" not in keys


def test_iresnet18_matches_torch(tmp_path):
    # 48x48 input: the final map is 3x3x512, so the NCHW -> NHWC permutation of the fc rows is
    # exercised at a fraction of the 112x112 cost (iresnet50 at 112 runs in the slow test).
    module = ref.randomize_(ref.IResNet(depth=18, embedding_size=128, input_size=48), seed=4, input_size=48)
    model = IResNet(depth=18, embedding_size=128, input_size=48)
    report = _import_through_file(model, module, tmp_path)
    assert report.assigned + report.dropped + 1 == len(module.state_dict())  # + features.weight (ones)
    _check_agreement(model, module, 48, seed=5)
    # Negative control: the same weights with fc rows left in PyTorch's (c, h, w) order disagree.
    model.get_layer("fc").kernel.assign(module.fc.weight.detach().numpy().T)
    images = random_images(2, size=48, seed=5)
    assert max_abs_diff(model(images, training=False), ref.embed(module, images)) > 0.1


@pytest.mark.slow
def test_iresnet50_matches_torch(tmp_path):
    module = ref.randomize_(ref.IResNet(depth=50, embedding_size=512), seed=6, input_size=112)
    model = IResNet(depth=50, embedding_size=512)
    _import_through_file(model, module, tmp_path)
    diff = _check_agreement(model, module, 112, seed=7)
    print(f"iresnet50 max |keras - torch| = {diff:.3g}")


def test_iresnet_fc_rows_are_permuted_from_nchw():
    model = IResNet(depth=18, embedding_size=3, input_size=32)  # final map 2x2x512
    fc = torch_checkpoint.weight_map(model).tensors
    fc = next(t for t in fc if t.key == "fc.weight")
    c, h, w = 512, 2, 2
    weight = np.arange(3 * c * h * w, dtype=np.float32).reshape(3, c * h * w)
    kernel = fc.to_keras(weight)
    # Keras row (h, w, c) must hold PyTorch column c*h*w-index (c, h, w).
    for hh, ww, cc in [(0, 0, 0), (0, 1, 5), (1, 0, 511), (1, 1, 300)]:
        np.testing.assert_array_equal(kernel[(hh * w + ww) * c + cc], weight[:, cc * h * w + hh * w + ww])
    np.testing.assert_array_equal(fc.to_torch(kernel), weight)


# ---------------------------------------------------------------------------------------------
# Export (Keras -> PyTorch layout)


def test_export_loads_strictly_into_the_reference_and_agrees(tmp_path):
    model = PocketNet(genotype=ALL_PRIMITIVES_GENOTYPE, **TINY)
    rng = np.random.default_rng(8)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.path.endswith("kernel"):
            depthwise = "/depthwise" in variable.path or variable.path.endswith("gdc/kernel")
            fan_in = shape[0] * shape[1] if depthwise else int(np.prod(shape[:-1]))
            variable.assign(rng.normal(0.0, fan_in**-0.5, shape).astype(np.float32))
        elif "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        elif "alpha" in variable.path or "moving_mean" in variable.path or "beta" in variable.path:
            variable.assign(rng.uniform(-0.2, 0.4, shape).astype(np.float32))
    exported = torch_checkpoint.export_state_dict(model)
    module = ref.AugmentCNN(genotype=ALL_PRIMITIVES_GENOTYPE, **TINY)
    assert set(exported) == set(module.state_dict())
    module.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()}, strict=True)
    _check_agreement(model, module, TINY["input_size"], seed=9)
    # And back: a fresh model gets bit-identical weights.
    again = PocketNet(genotype=ALL_PRIMITIVES_GENOTYPE, **TINY)
    torch_checkpoint.assign_state_dict(again, exported)
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_iresnet_export_writes_ones_for_the_frozen_scale():
    model = IResNet(depth=18, embedding_size=8, input_size=16)
    exported = torch_checkpoint.export_state_dict(model, include_counters=False)
    np.testing.assert_array_equal(exported["features.weight"], np.ones(8, np.float32))
    assert not any(k.endswith("num_batches_tracked") for k in exported)
    assert set(exported) == {
        k for k in ref.IResNet(depth=18, embedding_size=8, input_size=16).state_dict()
        if not k.endswith("num_batches_tracked")
    }


# ---------------------------------------------------------------------------------------------
# Failure modes


def _tiny_pair(seed=10):
    module = ref.randomize_(ref.AugmentCNN(genotype="softmax_cifar10", **TINY), seed=seed)
    state = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    return PocketNet(genotype="softmax_cifar10", **TINY), state


def test_missing_extra_and_misshaped_tensors_are_all_listed_and_nothing_is_assigned():
    model, state = _tiny_pair()
    before = [v.numpy().copy() for v in model.weights]
    del state["cells.3.dag.0.1.net.1.weight"]
    state["cells.0.dag.9.0.net.0.weight"] = np.zeros(4, np.float32)
    state["tail.6.weight"] = np.zeros((8, 32, 1, 1), np.float32)
    state["stem.1.num_batches_tracked"] = np.zeros((2,), np.int64)
    with pytest.raises(torch_checkpoint.StateDictMismatchError) as info:
        torch_checkpoint.assign_state_dict(model, state, source="ckpt.pth")
    message = str(info.value)
    assert message.startswith("ckpt.pth: checkpoint does not match PocketNet(channels=4, num_cells=5")
    assert "1 missing, 1 unexpected, 2 wrong shape" in message
    assert "missing      cells.3.dag.0.1.net.1.weight  expected [16, 1, 7, 7]" in message
    assert "unexpected   cells.0.dag.9.0.net.0.weight  found [4]" in message
    assert "wrong shape  tail.6.weight  expected [16, 32, 1, 1], found [8, 32, 1, 1]" in message
    assert "wrong shape  stem.1.num_batches_tracked  expected [], found [2]" in message
    assert "hint:" not in message
    for b, v in zip(before, model.weights):
        np.testing.assert_array_equal(b, v.numpy())


def test_embedding_size_mismatch_gives_a_hint():
    model, state = _tiny_pair()
    other = PocketNet(genotype="softmax_cifar10", **{**TINY, "embedding_size": 8})
    with pytest.raises(torch_checkpoint.StateDictMismatchError) as info:
        torch_checkpoint.assign_state_dict(other, state)
    message = str(info.value)
    assert ": 5 wrong shape\n" in message and "missing" not in message
    assert "tail.7.running_var  expected [8], found [16]" in message
    assert message.endswith("(--embedding_size=16)")


def test_non_float_and_non_finite_tensors_are_refused():
    model, state = _tiny_pair()
    state["stem.0.weight"] = state["stem.0.weight"].astype(np.int32)
    state["tail.2.running_var"][3] = np.nan
    with pytest.raises(torch_checkpoint.StateDictMismatchError) as info:
        torch_checkpoint.assign_state_dict(model, state)
    message = str(info.value)
    assert "wrong dtype  stem.0.weight  expected a floating-point tensor, found int32" in message
    assert "bad values   tail.2.running_var  contains NaN or infinity" in message


def test_counters_are_optional():
    model, state = _tiny_pair()
    for key in [k for k in state if k.endswith("num_batches_tracked")]:
        del state[key]
    report = torch_checkpoint.assign_state_dict(model, state)
    assert report.dropped == 0 and report.assigned == len(model.weights)


def test_iresnet_features_weight_must_be_ones():
    module = ref.randomize_(ref.IResNet(depth=18, embedding_size=8, input_size=16), seed=11)
    state = {k: v.numpy().copy() for k, v in module.state_dict().items()}
    model = IResNet(depth=18, embedding_size=8, input_size=16)
    torch_checkpoint.assign_state_dict(model, state)  # ones: fine
    np.testing.assert_array_equal(model.get_layer("features").moving_mean.numpy(), state["features.running_mean"])
    state["features.weight"][2] = 0.5
    with pytest.raises(torch_checkpoint.StateDictMismatchError) as info:
        torch_checkpoint.assign_state_dict(model, state, source="teacher.pth")
    assert "bad values   features.weight  must be all 1" in str(info.value)
    assert "max deviation 0.5" in str(info.value)


def test_models_without_a_layout_are_refused():
    from pocketnet_tf.models.mobilefacenet import MobileFaceNet

    with pytest.raises(ValueError, match="no PyTorch checkpoint layout for MobileFaceNet"):
        torch_checkpoint.weight_map(MobileFaceNet())


# ---------------------------------------------------------------------------------------------
# Other presets: counts from the spec (§4, §5.1, §6.7), no forward pass


def _assert_map_equals_reference(model, module):
    wmap = torch_checkpoint.weight_map(model)
    reference = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    mapped = {t.key: t.torch_shape for t in wmap.tensors} | wmap.optional
    assert mapped == reference
    return wmap


def test_pocketnet_m128_layout():
    with torch.device("meta"):  # shapes only, no initialisation
        module = ref.AugmentCNN(channels=32, num_cells=9, embedding_size=128)
    assert len(module.state_dict()) == 627
    assert sum(p.numel() for p in module.parameters()) == 1_686_656
    wmap = _assert_map_equals_reference(PocketNet(channels=32, num_cells=9, embedding_size=128), module)
    assert len(wmap.optional) == 82


@pytest.mark.slow
def test_iresnet100_teacher_layout():
    with torch.device("meta"):
        module = ref.IResNet(depth=100, embedding_size=128)
    assert len(module.state_dict()) == 925
    assert sum(p.numel() for p in module.parameters()) == 55_521_216
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == 55_521_088
    wmap = _assert_map_equals_reference(IResNet(depth=100, embedding_size=128), module)
    frozen = [t for t in wmap.tensors if t.variable is None]
    assert [t.key for t in frozen] == ["features.weight"]
