"""Score-SDE SR model: config rules, the DSM loss, samplers, training through the common loop."""

import json

import pytest
import torch

from facesr.cli import main
from facesr.diffusion.sde import bcast
from facesr.diffusion.wrappers import EpsScore, VEScore
from facesr.engine.options import SamplingOptions
from facesr.errors import FacesrError
from facesr.nets.unet import UNetConfig
from facesr.methods.score_sde import ScoreSR, ScoreSRConfig


def tiny(sde="ve", **kw):
    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), time_embedding="fourier" if sde == "ve" else "positional")
    return ScoreSR(ScoreSRConfig(unet=unet, sde=sde, hr_size=32, **kw)).eval()


def sr(model, lr, generator, **options):
    """super_resolve without conditions, in fp32, with the given sampling options."""
    return model.super_resolve(lr, None, SamplingOptions(precision="fp32", **options), generator)


def test_embedding_must_match_the_sde():
    with pytest.raises(FacesrError, match="fourier"):
        ScoreSRConfig(unet=UNetConfig(time_embedding="positional"), sde="ve")
    with pytest.raises(FacesrError, match="positional"):
        ScoreSRConfig(unet=UNetConfig(time_embedding="fourier"), sde="vp")
    with pytest.raises(FacesrError):
        ScoreSRConfig(sde="ve", sde_params={"bogus": 1})


@pytest.mark.parametrize("sde", ["ve", "vp", "subvp"])
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_dsm_loss_is_zero_for_the_exact_conditional_score(sde, reduce):
    """With s(x_t, t) = -(x_t - a x0) / std^2 (the target of denoising score matching) the loss vanishes."""
    m = tiny(sde, reduce=reduce)
    hr, up = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    x0 = m.encode(hr, up)

    def exact(x_t, t, cond, vector=None):
        a, std = bcast(m.sde.mean_coef(t), x_t), bcast(m.sde.std(t), x_t)
        return -(x_t - a * x0) / std**2

    m.score = exact
    assert m({"hr": hr, "up": up}, torch.Generator().manual_seed(0)) < 1e-8


@pytest.mark.parametrize("sde, param", [("ve", VEScore), ("vp", EpsScore), ("subvp", EpsScore)])
def test_the_score_is_the_parameterisation_of_the_backbone(sde, param):
    m = tiny(sde)
    assert isinstance(m.param, param) and m.param.sde is m.sde
    x, cond = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    with torch.no_grad():
        got = m.score(x, t, cond)
        if sde == "ve":  # F(c_in x, sigma), the backbone dividing by sigma itself
            sigma = m.sde.sigma(t)
            want = m.net(x / bcast(torch.sqrt(sigma**2 + 0.25), x), sigma, cond).float()
        else:  # -F(x_t, 999 t) / std(t)
            want = -m.net(x, 999 * t, cond).float() / bcast(m.sde.std(t), x)
    torch.testing.assert_close(got, want)


def test_dsm_loss_reduction_scales():
    m_mean, m_sum = tiny(reduce="mean"), tiny(reduce="sum")
    m_sum.load_state_dict(m_mean.state_dict())
    batch = {"hr": torch.rand(2, 3, 16, 16), "up": torch.rand(2, 3, 16, 16)}
    a = m_mean(batch, torch.Generator().manual_seed(0))
    b = m_sum(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(b, a * 3 * 16 * 16 / 2, rtol=1e-5)


@pytest.mark.parametrize("sde", ["ve", "vp", "subvp"])
@pytest.mark.parametrize("sampler", ["pc", "ode", "ddim", "dpmpp-2m"])
def test_every_sampler_runs(sde, sampler):
    m = tiny(sde)
    lr = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    out = sr(m, lr, torch.Generator().manual_seed(1), sampler=sampler, steps=3, predictor="euler_maruyama")
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("sde", ["ve", "vp"])
def test_warm_start_at_the_lowest_noise_returns_nearly_bicubic(sde):
    m = tiny(sde)
    lr = torch.rand(1, 3, 4, 4)
    strength = 2 * m.sde.eps
    out = sr(m, lr, torch.Generator().manual_seed(0), sampler="ddim", steps=1, strength=strength)
    assert (out - m.upsample(lr)).abs().max() < 0.05


def test_sigma_grid():
    m = tiny("ve")
    g = m.sigma_grid(5)
    assert len(g) == 6 and g[-1] == 0 and bool((g[:-1] > g[1:]).all())
    assert float(g[0]) == pytest.approx(348.0) and float(g[-2]) == pytest.approx(float(m.sde.sigma(m.sde.eps)))
    k = m.sigma_grid(5, strength=0.5, karras=True)
    assert float(k[0]) == pytest.approx(float(m.sde.sigma(0.5)))


def test_train_and_sample_through_the_cli(tmp_path, sample_faces):
    cfg = {
        "name": "ve", "method": "score-sde",
        "model": {"unet": {"block_out_channels": [32, 32], "attention_levels": [], "time_embedding": "fourier"},
                  "sde": "ve", "hr_size": 128},
        "data": {"train_dirs": [str(sample_faces)], "patch_size": 32},
        "optim": {"batch_size": 2, "max_steps": 2, "checkpoint_every": 2, "warmup_steps": 1, "mixed_precision": "no"},
    }
    path = tmp_path / "ve.json"
    path.write_text(json.dumps(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "step-00000002"
    ev = tmp_path / "ev"
    assert main(["evaluate", "--run", "--hr", str(sample_faces), "--model", str(ckpt), "--sampler", "pc", "--steps", "3",
                 "--snr", "0.16", "--limit", "2", "--precision", "fp32", "-o", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["network_evaluations"] == 6 and summary["images"] == 2  # 3 predictor + 3 corrector calls


def test_edm_preconditioning_gives_the_karras_denoiser():
    """With preconditioning 'edm', the model's denoiser is c_skip x + c_out F (F = sigma x the UNet's output)."""
    m = tiny(preconditioning="edm")
    up, x = torch.rand(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    cond = up * 2 - 1
    den = m.process(up).denoiser
    for sigma in (0.02, 0.7, 40.0):
        s = torch.full((2,), sigma, dtype=torch.float64)
        with torch.no_grad():
            F = m.net(x / (sigma**2 + 0.25) ** 0.5, s, cond).double() * sigma
            got = den(x, s)
        want = 0.25 / (sigma**2 + 0.25) * x + sigma * 0.5 / (sigma**2 + 0.25) ** 0.5 * F
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_edm_weighting_is_the_karras_loss():
    """weighting 'edm' = mean over pixels of (sigma^2 + sd^2) / (sigma sd)^2 |D - x0|^2, computed per sample."""
    m = tiny(preconditioning="edm", weighting="edm", noise_sampling="lognormal")
    hr, up = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        loss = m({"hr": hr, "up": up}, generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        x0 = m.encode(hr, up)
        t = m.training_times(4, g)
        z = torch.randn(x0.shape, generator=g)
        want = []
        for i in range(4):
            sigma = float(m.sde.sigma(t[i]))
            d = m.process(up[i:i + 1]).denoiser(x0[i:i + 1] + sigma * z[i:i + 1], torch.tensor([sigma], dtype=torch.float64))
            want.append((sigma**2 + 0.25) / (sigma**2 * 0.25) * ((d - x0[i:i + 1]) ** 2).mean())
    torch.testing.assert_close(loss, torch.stack(want).mean().to(loss), rtol=1e-3, atol=1e-5)


def test_lognormal_noise_sampling_matches_its_distribution():
    m = tiny(noise_sampling="lognormal", p_mean=-1.0, p_std=0.8)
    t = m.training_times(200_000, torch.Generator().manual_seed(0))
    log_sigma = m.sde.sigma(t).log()
    assert abs(float(log_sigma.mean()) + 1.0) < 0.01 and abs(float(log_sigma.std()) - 0.8) < 0.01
    assert float(t.min()) >= 0 and float(t.max()) <= 1


def test_edm_options_are_ve_only_and_need_input_scaling():
    with pytest.raises(FacesrError, match="VE option"):
        ScoreSRConfig(unet=UNetConfig(time_embedding="positional"), sde="vp", weighting="edm")
    with pytest.raises(FacesrError, match="input_scaling"):
        ScoreSRConfig(preconditioning="edm", input_scaling=False)
    with pytest.raises(FacesrError, match="noise_sampling"):
        ScoreSRConfig(noise_sampling="bogus")


def test_one_step_pc_warm_start_is_refused_with_a_reason():
    m = tiny()
    with pytest.raises(FacesrError, match="at least 2 steps"):
        sr(m, torch.rand(1, 3, 4, 4), torch.Generator().manual_seed(0), sampler="pc", steps=1, strength=0.5)
    out = sr(m, torch.rand(1, 3, 4, 4), torch.Generator().manual_seed(0), sampler="pc", steps=2, strength=0.5)
    assert out.shape == (1, 3, 32, 32)
