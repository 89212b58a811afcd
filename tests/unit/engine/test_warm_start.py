"""Warm start from a regression model's output (``init``) instead of bicubic."""

import re

import pytest
import torch

from facesr.cli import main
from facesr.errors import FacesrError
from facesr.engine.options import SamplingOptions
from facesr.engine.run import super_resolve_tensors
from facesr.methods.hub import load_model
from facesr.methods.regression import RegressionConfig, RegressionSR
from facesr.nets.regression import RegressionNetConfig


def shifted_regression_model(folder, scale=8, shift=0.2):
    """An untrained MSRResNet whose output is bilinear up(LR) + ``shift``: far from bicubic, known in advance."""
    model = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=scale))
    torch.nn.init.zeros_(model.net.conv_last.weight)
    torch.nn.init.constant_(model.net.conv_last.bias, shift)
    model.save_pretrained(folder)
    return folder


def test_small_strength_returns_the_init_estimate(tiny_model, tmp_path):
    sr3 = load_model(str(tiny_model))
    init = load_model(str(shifted_regression_model(tmp_path / "reg")))
    lr = [torch.rand(3, 16, 16) * 0.5]
    common = dict(sampler="ddim", steps=1, eta=0.0, strength=0.02, precision="fp32")
    from_init = super_resolve_tensors(sr3, lr, ["a.png"], SamplingOptions(init=str(tmp_path / "reg"), **common), "cpu")[0]
    from_bicubic = super_resolve_tensors(sr3, lr, ["a.png"], SamplingOptions(**common), "cpu")[0]
    estimate = init.super_resolve(lr[0][None], None, SamplingOptions(**common))[0]
    bicubic = sr3.upsample(lr[0][None])[0]
    # near strength 0 a sampler returns (almost) the noised estimate it started from
    assert (from_init - estimate).abs().mean() < 0.02
    assert (from_bicubic - bicubic).abs().mean() < 0.02
    assert (from_init - from_bicubic).abs().mean() > 0.15


def test_init_is_ignored_from_pure_noise(tiny_model, tmp_path):
    sr3 = load_model(str(tiny_model))
    shifted_regression_model(tmp_path / "reg")
    lr = [torch.rand(3, 16, 16)]
    opts = dict(sampler="ddim", steps=2, strength=1.0, precision="fp32")
    a = super_resolve_tensors(sr3, lr, ["a.png"], SamplingOptions(init=str(tmp_path / "reg"), **opts), "cpu")[0]
    b = super_resolve_tensors(sr3, lr, ["a.png"], SamplingOptions(**opts), "cpu")[0]
    assert torch.equal(a, b)


def test_mismatched_or_non_regression_init_is_refused(tiny_model, tmp_path):
    sr3 = load_model(str(tiny_model))
    shifted_regression_model(tmp_path / "x4", scale=4)
    lr = [torch.rand(3, 16, 16)]
    with pytest.raises(FacesrError, match="scale 4 does not match"):
        super_resolve_tensors(sr3, lr, ["a"], SamplingOptions(steps=1, strength=0.5, init=str(tmp_path / "x4")), "cpu")
    with pytest.raises(FacesrError, match="must be a single-image regression model"):
        super_resolve_tensors(sr3, lr, ["a"], SamplingOptions(steps=1, strength=0.5, init=str(tiny_model)), "cpu")


def test_cli_init_recorded_and_bad_init_is_one_line(tiny_model, tmp_path, sample_faces, capsys):
    import json

    reg = shifted_regression_model(tmp_path / "reg")
    ev = tmp_path / "ev"
    args = ["evaluate", "--run", "--hr", str(sample_faces), "--model", str(tiny_model), "--limit", "1",
            "--steps", "1", "--strength", "0.3", "-o", str(ev)]
    assert main(args + ["--init", str(reg)]) == 0
    assert json.loads((ev / "summary.json").read_text())["init"] == str(reg)
    capsys.readouterr()
    code = main(["upscale", str(next(sample_faces.glob("*.png"))), "-o", str(tmp_path / "up"), "--model", str(tiny_model), "--steps", "1",
                 "--strength", "0.3", "--init", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and re.match(r"facesr upscale: error: (--)?init ", err[0]) and "missing" in err[0]
