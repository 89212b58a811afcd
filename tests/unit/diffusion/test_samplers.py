"""Samplers in VE coordinates against the DDPM posterior in VP coordinates, and exact denoisers."""

import math

import pytest
import torch

from facesr.diffusion.wrappers import EpsDenoiser
from facesr.diffusion.samplers import ancestral_step_sizes, sample_ancestral, sample_ddim
from facesr.diffusion.schedules import DDPMConfig, DDPMSchedule

SCHEDULES = [DDPMSchedule(DDPMConfig("linear", 20, 1e-3, 0.3)), DDPMSchedule(DDPMConfig("cosine", 20))]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=1):
    return torch.randn(shape, generator=gen(seed), dtype=torch.float64)


def z_like(x, generator):
    """The sampler's noise: standard normals drawn in the default dtype on the CPU, then cast."""
    return torch.randn(x.shape, generator=generator).to(x.dtype)


def fake_denoiser(x, sigma):
    """A deterministic, nonlinear stand-in for a network: depends on x and sigma."""
    return torch.tanh(x) * 0.5 + 0.1 * torch.log1p(sigma).view(-1, 1, 1, 1).to(x.dtype)


@pytest.mark.parametrize("sigma, sigma_next, eta", [(5.0, 3.0, 1.0), (2.0, 1.9, 0.5), (0.3, 0.01, 0.0),
                                                    (10.0, 0.5, 1.0), (1.0, 0.0, 1.0)])
def test_ancestral_step_sizes(sigma, sigma_next, eta):
    down, up = ancestral_step_sizes(sigma, sigma_next, eta)
    assert down**2 + up**2 == pytest.approx(sigma_next**2, rel=1e-12, abs=1e-15)
    assert up**2 == pytest.approx(eta**2 * sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2, rel=1e-12, abs=1e-15)
    if eta == 0:
        assert up == 0 and down == pytest.approx(sigma_next)


def ddpm_step(sched, t, x_t, x0, z):
    """x_{t-1} = c0 x0 + ct x_t + sqrt(var) z (DDPM eq. 6-7), in VP coordinates."""
    c0, ct, var = sched.posterior(t)
    return c0 * x0 + ct * x_t + var.sqrt() * z


@pytest.mark.parametrize("sched", SCHEDULES, ids=["linear", "cosine"])
@pytest.mark.parametrize("t", [0, 1, 7, 19])
def test_one_ancestral_step_is_the_ddpm_posterior_step(sched, t):
    sig = sched.sigmas()
    sigma_prev = sig[t - 1] if t else torch.tensor(0.0, dtype=torch.float64)
    x_t = randn(2, 3, 4, 4)
    x = x_t / sched.sqrt_alpha_bar[t]
    out = sample_ancestral(fake_denoiser, x, torch.stack([sig[t], sigma_prev]), generator=gen(7))

    x0 = fake_denoiser(x, sig[t].expand(2))
    z = z_like(x, gen(7))
    want = ddpm_step(sched, t, x_t, x0, z) / sched.sqrt_alpha_bar_prev[t]
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sched", SCHEDULES, ids=["linear", "cosine"])
def test_full_ancestral_chain_is_the_ddpm_chain(sched):
    x_t = randn(2, 1, 3, 3)
    out = sample_ancestral(fake_denoiser, x_t / sched.sqrt_alpha_bar[-1], sched.sigma_grid(), generator=gen(3))

    g, sig = gen(3), sched.sigmas()
    for t in reversed(range(sched.timesteps)):
        x0 = fake_denoiser(x_t / sched.sqrt_alpha_bar[t], sig[t].expand(2))
        z = z_like(x_t, g) if t > 0 else torch.zeros_like(x_t)
        x_t = ddpm_step(sched, t, x_t, x0, z)
    torch.testing.assert_close(out, x_t, rtol=1e-9, atol=1e-9)


def test_ddim_eta0_is_deterministic_and_ignores_the_generator():
    sigmas = SCHEDULES[1].sigma_grid(8)
    x = randn(2, 3, 4, 4) * sigmas[0]
    a = sample_ddim(fake_denoiser, x, sigmas, eta=0.0, generator=gen(1))
    b = sample_ddim(fake_denoiser, x, sigmas, eta=0.0, generator=gen(2))
    c = sample_ddim(fake_denoiser, x, sigmas, eta=0.0)
    assert torch.equal(a, b) and torch.equal(a, c)
    d = sample_ddim(fake_denoiser, x, sigmas, eta=1.0, generator=gen(1))
    e = sample_ddim(fake_denoiser, x, sigmas, eta=1.0, generator=gen(2))
    assert not torch.equal(d, e)


def test_per_sample_generators_make_noise_independent_of_batching():
    sigmas = SCHEDULES[0].sigma_grid(6)
    x = randn(3, 2, 4, 4) * sigmas[0]
    batched = sample_ancestral(fake_denoiser, x, sigmas, generator=[gen(10), gen(11), gen(12)])
    for i in range(3):
        alone = sample_ancestral(fake_denoiser, x[i : i + 1], sigmas, generator=[gen(10 + i)])
        torch.testing.assert_close(batched[i : i + 1], alone, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(batched[0], batched[1])
    same = sample_ancestral(fake_denoiser, x[:1].expand(2, -1, -1, -1), sigmas, generator=[gen(5), gen(5)])
    assert torch.equal(same[0], same[1])


def test_noise_does_not_depend_on_dtype():
    sigmas = SCHEDULES[1].sigma_grid(5)
    x = randn(2, 1, 4, 4) * sigmas[0]
    a = sample_ancestral(fake_denoiser, x, sigmas, generator=gen(3))
    b = sample_ancestral(fake_denoiser, x.float(), sigmas, generator=gen(3))
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_point_mass_is_recovered_exactly(eta):
    target = randn(1, 3, 5, 5, seed=4)
    sigmas = SCHEDULES[0].sigma_grid(6)
    x = target + sigmas[0] * randn(3, 3, 5, 5)
    out = sample_ddim(lambda x, s: target.expand_as(x), x, sigmas, eta=eta, generator=gen(0))
    assert torch.equal(out, target.expand_as(out))


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_output_is_last_denoised_estimate(eta):
    seen = []  # (sigma, x, x0) of every denoiser call

    def recording(x, sigma):
        x0 = fake_denoiser(x, sigma)
        seen.append((float(sigma[0]), x.clone(), x0.clone()))
        return x0

    sigmas = SCHEDULES[1].sigma_grid(5)
    out = sample_ddim(recording, randn(2, 2, 3, 3) * sigmas[0], sigmas, eta=eta, generator=gen(0))
    assert [s for s, _, _ in seen] == sigmas[:-1].tolist()  # one evaluation per step, at its level
    assert torch.equal(out, seen[-1][2]) and not torch.equal(out, seen[-1][1])


@pytest.mark.parametrize("sampler", [sample_ddim, sample_ancestral])
def test_gaussian_data_is_sampled_exactly(sampler):
    """Data N(mu, s0^2): the exact denoiser is linear; samples must have mean mu and std s0."""
    mu, s0 = 0.3, 0.5
    sigmas = DDPMSchedule(DDPMConfig("linear", 1000, 1e-4, 2e-2)).sigma_grid()

    def denoiser(x, sigma):
        s2 = sigma.view(-1, 1, 1, 1) ** 2
        return mu + s0**2 / (s0**2 + s2) * (x - mu)

    x = mu + math.sqrt(s0**2 + sigmas[0].item() ** 2) * randn(20_000, 1, 1, 1, seed=5)
    out = sampler(denoiser, x, sigmas, generator=gen(6))
    assert out.mean().item() == pytest.approx(mu, abs=0.02)
    assert out.std().item() == pytest.approx(s0, rel=0.03)


# --- EpsDenoiser -------------------------------------------------------------------------


def test_eps_denoiser_recovers_x0_from_true_noise():
    x0, eps = randn(3, 2, 4, 4, seed=1), randn(3, 2, 4, 4, seed=2)
    sigma = torch.tensor([0.1, 1.0, 30.0], dtype=torch.float64)
    x = x0 + sigma.view(-1, 1, 1, 1) * eps
    calls = []

    def eps_fn(x_t, sqrt_gamma):
        calls.append((x_t, sqrt_gamma))
        return eps

    den = EpsDenoiser(eps_fn)
    assert den.evaluations == 0
    torch.testing.assert_close(den(x, sigma), x0, rtol=0, atol=1e-12)
    x_t, sqrt_gamma = calls[0]
    torch.testing.assert_close(sqrt_gamma, 1 / torch.sqrt(1 + sigma**2))
    torch.testing.assert_close(x_t, x / torch.sqrt(1 + sigma**2).view(-1, 1, 1, 1))
    den(x, sigma)
    assert den.evaluations == 2


def test_eps_denoiser_scalar_sigma_broadcasts():
    x0, eps = randn(2, 1, 3, 3, seed=1), randn(2, 1, 3, 3, seed=2)
    sgs = []
    den = EpsDenoiser(lambda x_t, sg: sgs.append(sg) or eps)
    torch.testing.assert_close(den(x0 + 2.0 * eps, 2.0), x0)
    assert sgs[0].shape == (2,) and torch.allclose(sgs[0], torch.full((2,), 1 / math.sqrt(5), dtype=torch.float64))


def test_eps_denoiser_applies_clip():
    x0 = torch.tensor([-3.0, -0.5, 0.5, 3.0], dtype=torch.float64).view(1, 1, 1, 4)
    den = EpsDenoiser(lambda x_t, sg: torch.zeros_like(x_t), clip=lambda v: v.clamp(-1, 1))
    torch.testing.assert_close(den(x0, torch.tensor([0.5])), x0.clamp(-1, 1))
    assert EpsDenoiser(lambda x_t, sg: torch.zeros_like(x_t))(x0, 0.5).abs().max().item() == 3.0
