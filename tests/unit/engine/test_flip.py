"""``flip``: every second sample runs on the mirrored input (and reference) and is mirrored back."""

import pytest
import torch

from facesr.engine.options import SamplingOptions
from facesr.engine.run import super_resolve_tensors
from facesr.errors import FacesrError
from facesr.methods.base import Conditions
from facesr.methods.hub import load_model
from facesr.methods.regression import RegressionConfig, RegressionSR
from facesr.nets.regression import RegressionNetConfig


def test_a_regression_model_flipped_is_the_mean_of_it_and_its_mirror_image():
    torch.manual_seed(0)
    model = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=4, hr_size=32)).eval()
    lrs = [torch.rand(3, 8, 8), torch.rand(3, 8, 8)]
    opts = SamplingOptions(samples=2, flip=True, precision="fp32", batch_size=3)  # one batch mixes both kinds
    means, stds, kept = super_resolve_tensors(model, lrs, ["a", "b"], opts, "cpu", keep_samples=True)
    with torch.no_grad():
        for lr, mean, (plain, mirrored) in zip(lrs, means, kept):
            torch.testing.assert_close(plain, model.net(lr[None])[0].clamp(0, 1))
            torch.testing.assert_close(mirrored, model.net(lr.flip(-1)[None])[0].clamp(0, 1).flip(-1))
            torch.testing.assert_close(mean, (plain + mirrored) / 2)
            assert not torch.allclose(plain, mirrored)  # an untrained network is not symmetric


def test_the_reference_is_mirrored_with_the_input(monkeypatch):
    model = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=4, hr_size=32))
    seen = []

    def record(lr, cond, opts, gens, init):
        seen.append((lr.clone(), cond.ref.clone()))
        return torch.zeros(lr.shape[0], 3, 32, 32)

    monkeypatch.setattr(model, "super_resolve", record)
    lr, ref = torch.rand(3, 8, 8), torch.rand(3, 32, 32)
    super_resolve_tensors(model, [lr], ["a"], SamplingOptions(samples=2, flip=True, batch_size=1), "cpu",
                          conditions=[Conditions(None, ref)])
    (lr0, ref0), (lr1, ref1) = seen
    assert torch.equal(lr0[0], lr) and torch.equal(ref0[0], ref)
    assert torch.equal(lr1[0], lr.flip(-1)) and torch.equal(ref1[0], ref.flip(-1))


def test_flip_needs_two_samples_and_a_diffusion_sample_keeps_its_seed(tiny_model):
    with pytest.raises(FacesrError, match="needs samples 2 or more"):
        SamplingOptions(flip=True).validate()
    model = load_model(str(tiny_model))
    lr = [torch.rand(3, 16, 16)]
    common = dict(sampler="ddim", steps=2, strength=0.5, samples=2, precision="fp32")
    _, _, (plain,) = super_resolve_tensors(model, lr, ["a"], SamplingOptions(**common), "cpu", keep_samples=True)
    _, _, (flipped,) = super_resolve_tensors(model, lr, ["a"], SamplingOptions(**common, flip=True), "cpu", keep_samples=True)
    torch.testing.assert_close(flipped[0], plain[0])  # the first sample is untouched
    assert not torch.allclose(flipped[1], plain[1])


def test_the_python_api_takes_flip():
    import numpy as np

    import facesr

    torch.manual_seed(0)
    model = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=4, hr_size=32)).eval()
    for p in model.parameters():  # far from symmetric
        torch.nn.init.normal_(p, std=0.3)
    lr = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    plain = facesr.upscale([lr], model=model, samples=2, precision="fp32", check_outputs=False)[0].astype(int)
    mirrored = facesr.upscale([lr[:, ::-1].copy()], model=model, precision="fp32", check_outputs=False)[0][:, ::-1]
    both = facesr.upscale([lr], model=model, samples=2, flip=True, precision="fp32", check_outputs=False)[0].astype(int)
    assert np.abs(both - (plain + mirrored.astype(int)) / 2).max() <= 1 and np.abs(both - plain).max() > 1
