"""Continuous-time SDEs (dossier §1.4): marginals against simulation, discretisations, adapters."""

import math

import pytest
import torch

from facesr.diffusion.sde import SubVPSDE, VESDE, VPSDE, denoiser_from_score, make_sde, score_from_denoiser
from facesr.errors import FacesrError

NAMES = ["ve", "vp", "subvp"]
MU, S0 = 0.3, 0.5  # Gaussian data N(MU, S0^2) per pixel


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_score(sde):
    """Exact score of p_t = N(a MU, a^2 S0^2 + s^2)."""

    def score(x, t):
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        a, s = sde.mean_coef(t).view(-1, 1, 1, 1), sde.std(t).view(-1, 1, 1, 1)
        return (-(x - a * MU) / (a**2 * S0**2 + s**2)).to(x.dtype)

    return score


def gaussian_denoiser(x, sigma):
    """Exact VE-coordinate denoiser E[x0 | x0 + sigma n] for x0 ~ N(MU, S0^2)."""
    s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1, 1) ** 2
    return (MU + S0**2 / (S0**2 + s2) * (x - MU)).to(x.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_marginals_match_a_simulation_of_the_forward_sde(name):
    """Euler-Maruyama on 20000 scalar paths from x(0) ~ N(a(0) x0, std(0)^2); VE starts at std sigma_min."""
    sde, x0, n, paths = make_sde(name), 1.0, 2000, 20_000
    g = gen(1)
    x = sde.mean_coef(0.0) * x0 + sde.std(0.0) * torch.randn(paths, 1, 1, 1, generator=g, dtype=torch.float64)
    checks = {200: 0.1, 600: 0.3, 1000: 0.5, 2000: 1.0}
    dt = 1.0 / n
    for i in range(n):
        drift, diff = sde.sde(x, torch.full((paths,), i * dt, dtype=torch.float64))
        x = x + drift * dt + diff.view(-1, 1, 1, 1) * math.sqrt(dt) * torch.randn(x.shape, generator=g, dtype=x.dtype)
        if i + 1 in checks:
            t = torch.tensor(checks[i + 1], dtype=torch.float64)
            mean, std = sde.marginal_prob(torch.tensor(x0, dtype=torch.float64), t)
            assert abs(x.mean().item() - mean.item()) < 0.03 * std.item(), (name, t)
            assert x.std().item() == pytest.approx(std.item(), rel=0.03), (name, t)


def test_subvp_std_has_no_square_root():
    vp, sub = VPSDE(), SubVPSDE()
    t = torch.linspace(0.01, 1, 50, dtype=torch.float64)
    m = -(t**2) * (20 - 0.1) / 4 - t * 0.1 / 2
    torch.testing.assert_close(sub.mean_coef(t), torch.exp(m))
    torch.testing.assert_close(sub.std(t), 1 - torch.exp(2 * m))
    torch.testing.assert_close(vp.std(t), torch.sqrt(1 - torch.exp(2 * m)))
    assert (sub.std(t) < vp.std(t)).all()


@pytest.mark.parametrize("name", NAMES)
def test_sigma_and_t_of_sigma_are_inverse(name):
    sde = make_sde(name)
    t = torch.linspace(0, 1, 41, dtype=torch.float64)
    torch.testing.assert_close(sde.t_of_sigma(sde.sigma(t)), t, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sde.sigma(t), sde.std(t) / sde.mean_coef(t))
    sig = torch.logspace(math.log10(max(sde.sigma(0.01).item(), 1e-3)), math.log10(sde.sigma(1.0).item()), 30,
                         dtype=torch.float64)
    torch.testing.assert_close(sde.sigma(sde.t_of_sigma(sig)), sig, rtol=1e-9, atol=0)


@pytest.mark.parametrize("sigma_min, factor", [(0.01, 4.573), (0.001, 5.052)])
def test_ve_diffusion_factor(sigma_min, factor):
    sde = VESDE(sigma_min=sigma_min, sigma_max=348)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    _, g = sde.sde(torch.zeros(3, 1, 1, 1), t)
    assert (g / sde.sigma(t)).tolist() == pytest.approx([factor] * 3, abs=5e-4)
    torch.testing.assert_close(sde.sigma(t), sigma_min * (348 / sigma_min) ** t)


def test_defaults_and_prior():
    ve, vp, sub = make_sde("ve"), make_sde("vp"), make_sde("subvp")
    assert (ve.sigma_min, ve.sigma_max, ve.N, ve.eps) == (0.01, 348.0, 2000, 1e-5)
    assert (vp.beta_min, vp.beta_max, vp.N, vp.eps) == (0.1, 20.0, 2000, 1e-3)
    assert (sub.beta_min, sub.beta_max, sub.N, sub.eps) == (0.1, 20.0, 2000, 1e-3)
    assert make_sde("ve", sigma_min=0.001).sigma_min == 0.001
    assert (ve.prior_std, vp.prior_std, sub.prior_std) == (348.0, 1.0, 1.0)
    x = ve.prior_sampling((20_000, 1, 1, 1), gen(0))
    assert x.std().item() == pytest.approx(348, rel=0.02)
    y = vp.prior_sampling((2, 3), [gen(4), gen(5)], dtype=torch.float64)
    assert torch.equal(y[1], torch.randn(3, generator=gen(5)).double())
    with pytest.raises(FacesrError):
        make_sde("vesde")
    with pytest.raises(FacesrError):
        make_sde("vp", sigma_min=0.1)
    assert make_sde("vp", N=100).with_N(70).N == 70 and make_sde("vp", N=100).with_N(70).beta_max == 20


def test_ve_discretize_uses_the_floor_indexed_grid():
    sde = VESDE(N=50)
    grid = torch.exp(torch.linspace(math.log(0.01), math.log(348), 50, dtype=torch.float64))
    x = torch.randn(3, 1, 2, 2)
    t = torch.tensor([0.0, 0.5 / 49, 10.7 / 49], dtype=torch.float64)  # k = 0, 0, 10
    f, G = sde.discretize(x, t)
    assert torch.equal(f, torch.zeros_like(x))
    torch.testing.assert_close(G, torch.stack([grid[0], grid[0], torch.sqrt(grid[10] ** 2 - grid[9] ** 2)]))


def test_vp_discretize_is_ddpm():
    sde = VPSDE(N=40)
    betas = torch.linspace(0.1 / 40, 20 / 40, 40, dtype=torch.float64)
    x = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    t = torch.tensor([0.0, 25.5 / 39], dtype=torch.float64)  # k = 0, 25
    f, G = sde.discretize(x, t)
    b = betas[[0, 25]]
    torch.testing.assert_close(f, (torch.sqrt(1 - b) - 1).view(-1, 1, 1, 1) * x)
    torch.testing.assert_close(G, torch.sqrt(b))
    torch.testing.assert_close(sde.langevin_alpha(t), 1 - b)


def test_subvp_discretize_is_euler():
    sde = SubVPSDE(N=40)
    x, t = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.tensor([0.2, 0.9], dtype=torch.float64)
    drift, g = sde.sde(x, t)
    f, G = sde.discretize(x, t)
    torch.testing.assert_close(f, drift / 40)
    torch.testing.assert_close(G, g / math.sqrt(40))
    beta = 0.1 + t * 19.9
    torch.testing.assert_close(g**2, beta * (1 - torch.exp(-2 * 0.1 * t - 19.9 * t**2)))
    torch.testing.assert_close(sde.langevin_alpha(t), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pf", [False, True])
def test_reverse_sde_and_discretisation(name, pf):
    sde = make_sde(name, N=100)
    x, t = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.tensor([0.3, 0.8], dtype=torch.float64)
    score = gaussian_score(sde)
    rsde = sde.reverse(score, probability_flow=pf)
    w = 0.5 if pf else 1.0
    for fwd, rev in [(sde.sde, rsde.sde), (sde.discretize, rsde.discretize)]:
        f, g = fwd(x, t)
        rf, rg = rev(x, t)
        torch.testing.assert_close(rf, f - w * g.view(-1, 1, 1, 1) ** 2 * score(x, t))
        assert rg.shape == g.shape == (2,)
        torch.testing.assert_close(rg, torch.zeros_like(g) if pf else g)


@pytest.mark.parametrize("name", NAMES)
def test_score_from_exact_denoiser_is_the_closed_form_score(name):
    sde = make_sde(name)
    x = torch.randn(5, 2, 3, 3, generator=gen(2), dtype=torch.float64) * 3
    t = torch.tensor([sde.eps, 0.01, 0.2, 0.6, 1.0], dtype=torch.float64)
    # (a D - x) / s^2 cancels: subVP's std(eps) = 1e-4 leaves ~8 digits in float64
    torch.testing.assert_close(score_from_denoiser(gaussian_denoiser, sde)(x, t), gaussian_score(sde)(x, t),
                               rtol=1e-6, atol=1e-9)
    # and back: the score model seen as a denoiser is the exact denoiser
    sig = sde.sigma(t)
    torch.testing.assert_close(denoiser_from_score(gaussian_score(sde), sde)(x, sig), gaussian_denoiser(x, sig),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_adapters_round_trip_a_nonlinear_model(name):
    sde = make_sde(name)

    def score(x, t):
        return torch.tanh(x) * (1 + torch.as_tensor(t, dtype=x.dtype).view(-1, 1, 1, 1)) - 0.2 * x

    x = torch.randn(4, 1, 3, 3, generator=gen(3), dtype=torch.float64)
    t = torch.tensor([0.01, 0.1, 0.5, 0.99], dtype=torch.float64)
    again = score_from_denoiser(denoiser_from_score(score, sde), sde)
    torch.testing.assert_close(again(x, t), score(x, t), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_denoiser_from_score_rejects_sigmas_outside_the_range(name):
    sde = make_sde(name)
    d = denoiser_from_score(gaussian_score(sde), sde)
    with pytest.raises(FacesrError):
        d(torch.zeros(1, 1, 2, 2), sde.sigma(1.0) * 1.5)
