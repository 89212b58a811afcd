"""PC and probability-flow samplers on Gaussian data N(MU, S0^2), whose score is known for every SDE.

Samples are (32, 1, 32, 32): 32768 values, d = 1024 per sample. Scalar samples (d = 1) would make
per-sample Langevin norms degenerate: the step 2 (snr |z| / |s|)^2 blows up near the mean, and the
norm noise biases the variance by O(2/d) (≈ +3% at d = 64); the reference runs at d = 49152.
"""

import pytest
import torch

from facesr.diffusion.pc import euler_maruyama, langevin, ode_sample, pc_sample, pc_time_grid, reverse_diffusion
from facesr.diffusion.sde import make_sde, score_from_denoiser
from facesr.errors import FacesrError

NAMES = ["ve", "vp", "subvp"]
MU, S0 = 0.3, 0.5
SHAPE = (32, 1, 32, 32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian_score(sde):
    """Exact score of p_t = N(a MU, a^2 S0^2 + s^2)."""

    def score(x, t):
        a, s = sde.mean_coef(t).view(-1, 1, 1, 1), sde.std(t).view(-1, 1, 1, 1)
        return (-(x - a * MU) / (a**2 * S0**2 + s**2)).to(x.dtype)

    return score


def gaussian_denoiser(x, sigma):
    s2 = sigma.view(-1, 1, 1, 1) ** 2
    return (MU + S0**2 / (S0**2 + s2) * (x - MU)).to(x.dtype)


def assert_gaussian(x, tol=0.03):
    """Mean within tol * S0 of MU and std within tol (relative) of S0."""
    assert abs(x.mean().item() - MU) < tol * S0, x.mean().item()
    assert x.std().item() == pytest.approx(S0, rel=tol)


# Stochastic samplers on N = 300 steps; probability flow with the SDE's own N = 2000, because its
# first-order error is ~11% of the std at N = 300 for VE (it shrinks as 1/N: ~1.7% at 2000).
CASES = {
    "rd+langevin": dict(steps=300),
    "em+none": dict(steps=300, predictor="euler_maruyama", corrector="none"),
    "pf-rd": dict(predictor="reverse_diffusion", corrector="none", probability_flow=True),
    "pf-em": dict(predictor="euler_maruyama", corrector="none", probability_flow=True),  # crashed in the reference
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", NAMES)
def test_pc_samples_the_data_distribution(name, case):
    sde = make_sde(name)
    x, _ = pc_sample(gaussian_score(sde), sde, shape=SHAPE, generator=gen(1), **CASES[case])
    assert x.shape == SHAPE and x.dtype == torch.float32
    assert_gaussian(x)


@pytest.mark.parametrize("method, steps", [("heun", 100), ("rk45", None)])
@pytest.mark.parametrize("name", NAMES)
def test_ode_samples_the_data_distribution(name, method, steps):
    sde = make_sde(name)
    x, nfe = ode_sample(gaussian_score(sde), sde, shape=SHAPE, generator=gen(1), method=method, steps=steps)
    assert_gaussian(x)
    if method == "rk45":
        assert 10 < nfe < 1000


@pytest.mark.parametrize("name", NAMES)
def test_score_from_exact_denoiser_samples_the_data_distribution(name):
    """The adapter end to end: a VE-coordinate denoiser drives every SDE's PC sampler."""
    sde = make_sde(name)
    x = sde.prior_sampling(SHAPE, gen(2), dtype=torch.float64)
    ref, _ = pc_sample(gaussian_score(sde), sde, x, steps=300, generator=gen(3))
    out, _ = pc_sample(score_from_denoiser(gaussian_denoiser, sde), sde, x, steps=300, generator=gen(3))
    assert_gaussian(out)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, predictor", [("ve", reverse_diffusion), ("subvp", euler_maruyama)])
def test_pc_is_corrector_then_predictor_on_the_resampled_grid(name, predictor):
    """Replay by hand: at each t, Langevin first, then the predictor of the SDE re-discretised with N = steps."""
    sde, steps = make_sde(name), 6

    def score(x, t):  # nonlinear, so the order of the updates matters
        return -torch.tanh(x) * (1 + t.view(-1, 1, 1, 1)) - 0.3 * x

    x = sde.prior_sampling((2, 1, 3, 3), gen(0), dtype=torch.float64)
    out, _ = pc_sample(score, sde, x, predictor=predictor.__name__, snr=0.2, steps=steps, generator=gen(1))
    small, g, y = sde.with_N(steps), gen(1), x
    for t in torch.linspace(1, sde.eps, steps, dtype=torch.float64):
        vt = t.expand(2)
        y, _ = langevin(small, score, y, vt, snr=0.2, generator=g)
        y, y_mean = predictor(small.reverse(score), y, vt, generator=g)
    torch.testing.assert_close(out, y_mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_snr_zero_corrector_is_no_corrector(name):
    sde = make_sde(name, N=50)
    x = sde.prior_sampling((4, 1, 4, 4), gen(0), dtype=torch.float64)
    t = torch.full((4,), 0.5, dtype=torch.float64)
    y, y_mean = langevin(sde, gaussian_score(sde), x, t, snr=0.0, n_steps=2, generator=gen(1))
    assert torch.equal(y, x) and torch.equal(y_mean, x)
    kw = dict(predictor="reverse_diffusion", probability_flow=True)
    a, nfe_a = pc_sample(gaussian_score(sde), sde, x, corrector="langevin", snr=0.0, generator=gen(1), **kw)
    b, nfe_b = pc_sample(gaussian_score(sde), sde, x, corrector="none", generator=gen(1), **kw)
    assert torch.equal(a, b) and (nfe_a, nfe_b) == (100, 50)


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_norms_make_samples_independent_of_the_batch(name):
    sde = make_sde(name, N=30)
    score = gaussian_score(sde)
    seeds = [10, 11, 12]

    def run(idx, batch_norms):
        x = sde.prior_sampling((len(idx), 1, 6, 6), [gen(seeds[i]) for i in idx], dtype=torch.float64)
        return pc_sample(score, sde, x, snr=0.16, n_steps=2, batch_norms=batch_norms,
                         generator=[gen(100 + seeds[i]) for i in idx])[0]

    batched = run([0, 1, 2], False)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], run([i], False), rtol=1e-12, atol=1e-12)
    shared = run([0, 1, 2], True)
    assert not torch.allclose(shared[:1], run([0], True), rtol=1e-3, atol=1e-3)


def test_nfe_counts():
    sde = make_sde("ve", N=20)
    calls = []

    def score(x, t):
        calls.append(1)
        return gaussian_score(sde)(x, t)

    x = sde.prior_sampling((2, 1, 4, 4), gen(0))
    for kw, want in [(dict(), 40), (dict(n_steps=3), 80), (dict(corrector="none"), 20),
                     (dict(corrector="none", predictor="euler_maruyama"), 20), (dict(steps=7, n_steps=2), 21)]:
        calls.clear()
        _, nfe = pc_sample(score, sde, x, generator=gen(1), **kw)
        assert nfe == len(calls) == want, kw
    for kw, want in [(dict(method="euler", steps=9), 10), (dict(method="heun", steps=9), 19),
                     (dict(method="heun", steps=9, denoise=False), 18)]:
        calls.clear()
        _, nfe = ode_sample(score, sde, x, **kw)
        assert nfe == len(calls) == want, kw
    calls.clear()
    _, nfe = ode_sample(score, sde, x, method="rk45")
    assert nfe == len(calls) > 0


@pytest.mark.parametrize("name", NAMES)
def test_probability_flow_is_deterministic(name):
    sde = make_sde(name, N=40)
    x = sde.prior_sampling((3, 1, 4, 4), gen(0))
    for predictor in ["reverse_diffusion", "euler_maruyama"]:
        a, _ = pc_sample(gaussian_score(sde), sde, x, predictor=predictor, corrector="none",
                         probability_flow=True, generator=gen(1))
        b, _ = pc_sample(gaussian_score(sde), sde, x, predictor=predictor, corrector="none",
                         probability_flow=True, generator=gen(2))
        assert torch.equal(a, b)
    c, _ = pc_sample(gaussian_score(sde), sde, x, corrector="none", generator=gen(1))
    d, _ = pc_sample(gaussian_score(sde), sde, x, corrector="none", generator=gen(2))
    assert not torch.equal(c, d)


def recording_score(sde, seen: list):
    """The Gaussian score, recording (t, x) of every call."""
    score = gaussian_score(sde)

    def recording(x, t):
        seen.append((float(t[0]), x.clone()))
        return score(x, t)

    return recording


def test_denoise_returns_the_last_x_mean_and_every_step_runs():
    sde = make_sde("vp", N=25)
    x = sde.prior_sampling((2, 1, 3, 3), gen(0))
    seen = []
    out, calls = pc_sample(recording_score(sde, seen), sde, x, generator=gen(1))
    # every time of the grid, in order: the corrector's evaluation, then the predictor's
    ts = torch.linspace(sde.T, sde.eps, 25, dtype=torch.float64).tolist()
    assert [t for t, _ in seen] == [t for t in ts for _ in range(2)] and calls == 50
    # the output is the last predictor's x_mean: x - f + G^2 s at the last time, without its noise
    t_last, x_last = seen[-1]
    rev_f, rev_G = sde.reverse(gaussian_score(sde)).discretize(x_last, torch.full((2,), t_last, dtype=torch.float64))
    torch.testing.assert_close(out, x_last - rev_f, rtol=0, atol=1e-6)
    raw_seen = []
    raw, _ = pc_sample(recording_score(sde, raw_seen), sde, x, generator=gen(1), denoise=False)
    assert torch.equal(raw_seen[-1][1], x_last)  # the same chain: denoise changes only what is returned
    noise = (raw - out) / rev_G.view(-1, 1, 1, 1)  # the final predictor noise G z, z ~ N(0, 1)
    assert not torch.equal(raw, out) and torch.isfinite(noise).all() and 0.2 < noise.std().item() < 3


def test_bad_names_raise():
    sde = make_sde("ve", N=5)
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(FacesrError):
        pc_sample(gaussian_score(sde), sde, x, predictor="ancestral")
    with pytest.raises(FacesrError):
        pc_sample(gaussian_score(sde), sde, x, corrector="ald")
    with pytest.raises(FacesrError):
        ode_sample(gaussian_score(sde), sde, x, method="dopri")
    with pytest.raises(FacesrError):
        pc_sample(gaussian_score(sde), sde, None)
    with pytest.raises(FacesrError):  # DDPM betas beta_max / N would exceed 1
        pc_sample(gaussian_score(sde), make_sde("vp"), x, steps=20)


@pytest.mark.parametrize("name", ["ve", "vp"])
def test_warm_start_grid_has_the_requested_steps_below_the_start(name):
    """Every (steps, start) gives at least `steps` times in [eps, t_start], on an evenly spaced grid
    (a warm start used to get an empty grid); one step of a warm start is refused with a reason."""
    sde = make_sde(name)
    for strength in (0.05, 0.3, 0.5, 0.7, 0.95):
        with pytest.raises(FacesrError, match="at least 2 steps"):
            pc_time_grid(sde, 1, strength)
        for steps in range(2, 12):
            discretised, ts = pc_time_grid(sde, steps, strength)
            assert len(ts) >= steps and ts[0] <= strength + 1e-12 and ts[-1] == pytest.approx(sde.eps)
            full = torch.linspace(sde.T, sde.eps, discretised.N, dtype=torch.float64)
            assert torch.allclose(torch.tensor(ts, dtype=torch.float64), full[-len(ts):])
