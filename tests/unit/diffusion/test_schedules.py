"""DDPM noise schedules against closed forms and slow loops."""

import math

import pytest
import torch

from facesr.diffusion.schedules import DDPMConfig, DDPMSchedule, sigma_to_sqrt_alpha_bar
from facesr.errors import FacesrError

CONFIGS = [DDPMConfig("linear", 50), DDPMConfig("linear", 100, 1e-4, 2e-2), DDPMConfig("cosine", 50),
           DDPMConfig("cosine", 100, cosine_s=0.02)]


def cfg_id(cfg):
    return f"{cfg.schedule}-{cfg.timesteps}"


def reference_betas(cfg: DDPMConfig) -> list[float]:
    T = cfg.timesteps
    if cfg.schedule == "linear":
        return [cfg.linear_start + (cfg.linear_end - cfg.linear_start) * i / (T - 1) for i in range(T)]

    def f(t):
        return math.cos((t / T + cfg.cosine_s) / (1 + cfg.cosine_s) * math.pi / 2) ** 2

    return [min(1 - f(t) / f(t - 1), 0.999) for t in range(1, T + 1)]


def reference_alpha_bar(betas) -> list[float]:
    out, prod = [], 1.0
    for b in betas:
        prod *= 1 - b
        out.append(prod)
    return out


def close(a, b, rtol=1e-10, atol=0.0):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                          rtol=rtol, atol=atol)


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_betas_and_alpha_bar_match_slow_reference(cfg):
    sched = DDPMSchedule(cfg)
    betas = reference_betas(cfg)
    ab = reference_alpha_bar(betas)
    assert sched.betas.dtype == torch.float64 and sched.betas.shape == (cfg.timesteps,)
    assert close(sched.betas, betas, atol=1e-15)
    assert close(sched.alpha_bar, ab)
    assert close(sched.alpha_bar_prev, [1.0] + ab[:-1])
    assert close(sched.sqrt_alpha_bar, [math.sqrt(a) for a in ab])
    assert close(sched.sqrt_alpha_bar_prev, [1.0] + [math.sqrt(a) for a in ab[:-1]])
    assert (sched.betas > 0).all() and (sched.betas <= 0.999).all()


def test_linear_betas_are_linspace():
    sched = DDPMSchedule(DDPMConfig("linear", 7, 0.1, 0.4))
    assert close(sched.betas, [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4])


def test_cosine_clips_last_beta():
    sched = DDPMSchedule(DDPMConfig("cosine", 50))
    assert sched.betas[-1].item() == pytest.approx(0.999)  # alpha_bar(T) = 0 -> beta = 1, clipped


def test_sr3_linear_2000():
    sched = DDPMSchedule(DDPMConfig("linear", 2000, 1e-6, 1e-2))
    assert sched.sqrt_alpha_bar[-1].item() == pytest.approx(6.6e-3, rel=0.05)


def test_cosine_2000():
    sched = DDPMSchedule(DDPMConfig("cosine", 2000))
    assert sched.betas[0].item() == pytest.approx(2.0e-5, rel=0.10)
    assert sched.sqrt_alpha_bar[999].item() == pytest.approx(0.70, abs=0.02)
    assert sched.sqrt_alpha_bar[-1].item() == pytest.approx(2.5e-5, rel=0.20)


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_posterior_matches_ddpm_formulas(cfg):
    sched = DDPMSchedule(cfg)
    betas = reference_betas(cfg)
    ab = reference_alpha_bar(betas)
    for t in range(cfg.timesteps):
        b, a_t, a_prev = betas[t], ab[t], (ab[t - 1] if t else 1.0)
        c0, ct, var = sched.posterior(t)
        assert close(c0, b * math.sqrt(a_prev) / (1 - a_t), rtol=1e-9)
        assert close(ct, (1 - a_prev) * math.sqrt(1 - b) / (1 - a_t), rtol=1e-9, atol=1e-15)
        assert close(var, b * (1 - a_prev) / (1 - a_t), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_posterior_composes_to_the_marginal(cfg):
    """x_t ~ q(x_t|x0) followed by q(x_{t-1}|x_t,x0) must give q(x_{t-1}|x0) = N(sqrt(ab_{t-1}) x0, 1-ab_{t-1})."""
    sched = DDPMSchedule(cfg)
    for t in range(cfg.timesteps):
        c0, ct, var = sched.posterior(t)
        ab, ab_prev = sched.alpha_bar[t], sched.alpha_bar_prev[t]
        assert close(c0 + ct * ab.sqrt(), ab_prev.sqrt(), rtol=1e-9)
        assert close(ct**2 * (1 - ab) + var, 1 - ab_prev, rtol=1e-9, atol=1e-15)


def test_posterior_monte_carlo():
    sched = DDPMSchedule(DDPMConfig("linear", 20, 1e-2, 0.2))
    g = torch.Generator().manual_seed(0)
    x0, t, n = 0.7, 9, 400_000
    c0, ct, var = sched.posterior(t)
    x_t = sched.sqrt_alpha_bar[t] * x0 + (1 - sched.alpha_bar[t]).sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    x_prev = c0 * x0 + ct * x_t + var.sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    assert x_prev.mean().item() == pytest.approx(sched.sqrt_alpha_bar_prev[t].item() * x0, abs=5e-3)
    assert x_prev.var().item() == pytest.approx(1 - sched.alpha_bar_prev[t].item(), rel=1e-2)


@pytest.mark.parametrize("cfg", CONFIGS[:3:2], ids=cfg_id)
@pytest.mark.parametrize("steps", [1, 2, 3, 7, 49, 50, None])
def test_sigma_grid(cfg, steps):
    sched = DDPMSchedule(cfg)
    grid = sched.sigma_grid(steps)
    expected_len = (steps or cfg.timesteps) + 1
    assert grid.shape == (expected_len,)
    assert grid[-1].item() == 0.0
    assert (grid[1:] < grid[:-1]).all()
    sigmas = [math.sqrt((1 - a) / a) for a in reference_alpha_bar(reference_betas(cfg))]
    assert grid[0].item() == pytest.approx(sigmas[-1], rel=1e-9)
    if expected_len > 2:
        assert grid[-2].item() == pytest.approx(sigmas[0], rel=1e-9)
    for s in grid[:-1].tolist():  # every level is one of the schedule's sigma_t
        assert min(abs(s - r) / r for r in sigmas) < 1e-9
    if steps is None:
        assert close(grid[:-1], sigmas[::-1], rtol=1e-9)


@pytest.mark.parametrize("steps", [0, -1, 51])
def test_sigma_grid_out_of_range(steps):
    with pytest.raises(FacesrError, match="steps"):
        DDPMSchedule(DDPMConfig("cosine", 50)).sigma_grid(steps)


def test_sigma_to_sqrt_alpha_bar_inverts_sigmas():
    sched = DDPMSchedule(CONFIGS[2])
    assert close(sigma_to_sqrt_alpha_bar(sched.sigmas()), sched.sqrt_alpha_bar, rtol=1e-12)


def test_unknown_schedule():
    with pytest.raises(FacesrError, match="sigmoid"):
        DDPMSchedule(DDPMConfig("sigmoid", 50))


@pytest.mark.parametrize("strength, steps", [(0.5, 10), (0.3, 1), (1.0, 7)])
def test_sigma_grid_warm_start_begins_at_strength(strength, steps):
    sched = DDPMSchedule(DDPMConfig("linear", 101))
    grid = sched.sigma_grid(steps, strength)
    assert grid[0] == sched.sigmas()[round(strength * 100)]
    assert len(grid) == steps + 1 and grid[-1] == 0 and bool((grid[:-1] > grid[1:]).all())
