"""Optimizer and RNG state round-trips used by training checkpoints."""

import copy
import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from facesr.io.weights import load_safetensors, save_safetensors
from facesr.train.checkpoint import (
    _from_jsonable_numpy,
    _jsonable,
    _tuplify,
    optimizer_from_tensors,
    optimizer_to_tensors,
)


def train_steps(model, opt, n, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(8, 4, generator=g)
        opt.zero_grad()
        ((model(x) - x[:, :2]) ** 2).mean().backward()
        opt.step()


def restore(tensors, groups, model):
    """A fresh model/optimizer pair loaded the way load_checkpoint does it (groups via JSON)."""
    clone = copy.deepcopy(model)
    opt = torch.optim.Adam(clone.parameters(), lr=0.5)  # hyper-parameters come from the groups
    optimizer_from_tensors(opt, tensors, json.loads(json.dumps(groups)))
    return clone, opt


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=1e-3)
    train_steps(model, opt, 3, seed=1)
    return model, opt


@pytest.mark.parametrize("via_files", [False, True])
def test_adam_state_round_trip(tmp_path, trained, via_files):
    model, opt = trained
    tensors, groups = optimizer_to_tensors(opt)
    assert set(tensors) == {f"{i}.{k}" for i in (0, 1) for k in ("step", "exp_avg", "exp_avg_sq")}
    if via_files:
        save_safetensors(tensors, tmp_path / "opt.safetensors")
        tensors = load_safetensors(tmp_path / "opt.safetensors")
    else:  # the tensors alias the live optimizer state; a checkpoint is a snapshot of it
        tensors = {k: v.clone() for k, v in tensors.items()}
    clone, opt2 = restore(tensors, groups, model)

    sd1, sd2 = opt.state_dict(), opt2.state_dict()
    assert sd1["state"].keys() == sd2["state"].keys()
    for i, state in sd1["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(sd2["state"][i][key])), key
    assert opt2.param_groups[0]["lr"] == 1e-2 and tuple(opt2.param_groups[0]["betas"]) == (0.8, 0.95)

    train_steps(model, opt, 2, seed=2)
    train_steps(clone, opt2, 2, seed=2)
    for p, q in zip(model.parameters(), clone.parameters()):
        assert torch.equal(p, q)


def test_restored_state_matters(trained):
    """Control: a fresh Adam (no state) takes a different step, so the equality above is informative."""
    model, opt = trained
    clone = copy.deepcopy(model)
    fresh = torch.optim.Adam(clone.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=1e-3)
    train_steps(model, opt, 1, seed=2)
    train_steps(clone, fresh, 1, seed=2)
    assert not torch.equal(model.weight, clone.weight)


def through_json(state):
    return json.loads(json.dumps(_jsonable(state)))


@pytest.fixture
def keep_global_rng():
    py, npy = random.getstate(), np.random.get_state()
    yield
    random.setstate(py)
    np.random.set_state(npy)


def test_python_rng_round_trip(keep_global_rng):
    random.seed(123)
    random.random()
    state = through_json(random.getstate())
    expected = [random.random() for _ in range(5)] + [random.gauss(0, 1) for _ in range(3)]
    random.seed(999)
    random.setstate(_tuplify(state))
    assert [random.random() for _ in range(5)] + [random.gauss(0, 1) for _ in range(3)] == expected


@pytest.mark.parametrize("cached_gauss", [False, True])
def test_numpy_rng_round_trip(keep_global_rng, cached_gauss):
    np.random.seed(7)
    np.random.rand(3)
    if cached_gauss:
        np.random.standard_normal()  # legacy Box-Muller leaves the second normal cached
    state = np.random.get_state()
    assert state[3] == int(cached_gauss)
    saved = through_json(state)
    expected = (np.random.standard_normal(5), np.random.randint(0, 2**31, 5))
    np.random.seed(0)
    np.random.set_state(_from_jsonable_numpy(saved))
    got = (np.random.standard_normal(5), np.random.randint(0, 2**31, 5))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    np.random.set_state(_from_jsonable_numpy(saved))
    restored = np.random.get_state()
    assert restored[0] == state[0] and restored[2:] == state[2:]
    assert restored[1].dtype == state[1].dtype and np.array_equal(restored[1], state[1])


def test_jsonable_handles_numpy_scalars_and_nesting():
    obj = (np.int64(3), [np.float32(0.5), np.arange(3, dtype=np.uint32)], "s", None)
    out = _jsonable(obj)
    assert json.loads(json.dumps(out)) == [3, [0.5, [0, 1, 2]], "s", None]
    assert _tuplify([1, [2, [3]], "a"]) == (1, (2, (3,)), "a")
