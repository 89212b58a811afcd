"""Few-step deterministic samplers (Euler, Heun, DPM-Solver++(2M)) and the Karras grid.

Reference: data N(mu, s0^2) per pixel has the exact denoiser D(x, s) = mu + s0^2 / (s0^2 + s^2) (x - mu),
so the probability-flow ODE dx/ds = (x - D) / s = (x - mu) s / (s0^2 + s^2) integrates to
x(s) = mu + (x(s_max) - mu) sqrt(s0^2 + s^2) / sqrt(s0^2 + s_max^2).
"""

import dataclasses
import math

import pytest
import torch

from facesr.cli import build_parser
from facesr.diffusion.samplers import SAMPLERS, sample_ddim, sample_dpmpp_2m, sample_euler, sample_heun
from facesr.diffusion.schedules import DDPMConfig, DDPMSchedule, karras_sigmas
from facesr.errors import FacesrError
from facesr.engine.options import SamplingOptions

MU, S0, SMIN, SMAX = 0.3, 0.5, 0.02, 20.0
DETERMINISTIC = {"euler": sample_euler, "heun": sample_heun, "dpmpp-2m": sample_dpmpp_2m}
# the samplers of a denoiser and a sigma grid (the "sde" ones, pc and ode, run a model's SDE: test_pc.py)
GRID_SAMPLERS = [n for n in SAMPLERS.names() if SAMPLERS.get(n).grid != "sde"]


def evaluations(name, steps):
    return SAMPLERS.get(name).evaluations(steps, SamplingOptions(sampler=name, steps=steps))


def gauss_denoiser(x, sigma):
    s2 = sigma.view(-1, 1, 1, 1) ** 2
    return MU + S0**2 / (S0**2 + s2) * (x - MU)


def ode_solution(x, sigma, sigma_max=SMAX):
    return MU + (x - MU) * math.sqrt(S0**2 + sigma**2) / math.sqrt(S0**2 + sigma_max**2)


def start(n=9):
    return MU + math.sqrt(S0**2 + SMAX**2) * torch.linspace(-2, 2, n, dtype=torch.float64).view(-1, 1, 1, 1)


def fake_denoiser(x, sigma):
    return torch.tanh(x) * 0.5 + 0.1 * torch.log1p(sigma).view(-1, 1, 1, 1).to(x.dtype)


def test_closed_form_solves_the_probability_flow_ode():
    x = start()
    for s in [0.05, 0.7, 5.0]:
        h = 1e-5 * s
        slope = (ode_solution(x, s + h) - ode_solution(x, s - h)) / (2 * h)
        xs = ode_solution(x, s)
        rhs = (xs - gauss_denoiser(xs, torch.tensor([s], dtype=torch.float64))) / s
        torch.testing.assert_close(slope, rhs, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(ode_solution(x, SMAX), x)


def _error(sampler, intervals):
    grid = karras_sigmas(intervals + 1, SMIN, SMAX)[:-1]  # ends at SMIN: the ODE solution is defined there
    x = start()
    return (sampler(gauss_denoiser, x, grid) - ode_solution(x, SMIN)).abs().max().item()


@pytest.mark.parametrize("name, lo, hi", [("euler", 1.5, 2.6), ("heun", 3.0, 5.5), ("dpmpp-2m", 3.0, 5.5)])
def test_convergence_order_to_the_exact_ode_solution(name, lo, hi):
    """Halving every step (Karras grid with 2n intervals contains the n-interval one) divides the error by 2^order."""
    errs = [_error(DETERMINISTIC[name], n) for n in (16, 32, 64)]
    for coarse, fine in zip(errs, errs[1:]):
        assert lo < coarse / fine < hi, (name, errs)
    assert errs[-1] < (3e-2 if name == "euler" else 2e-3)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_step_to_zero_returns_the_denoised_estimate_at_sigma_min(name):
    """With a final 0 the output is D(x(sigma_min), sigma_min), the same for all samplers in the limit."""
    grid = karras_sigmas(21, SMIN, SMAX)
    x = start()
    full = DETERMINISTIC[name](gauss_denoiser, x, grid)
    at_min = DETERMINISTIC[name](gauss_denoiser, x, grid[:-1])
    sig = torch.tensor([SMIN], dtype=torch.float64)
    torch.testing.assert_close(full, gauss_denoiser(at_min, sig), rtol=0, atol=1e-13)
    limit = gauss_denoiser(ode_solution(x, SMIN), sig)
    assert (full - limit).abs().max() < (0.1 if name == "euler" else 0.02)


def test_the_grid_samplers_and_their_grids():
    assert set(GRID_SAMPLERS) == {"ddim", "ancestral", "euler", "heun", "dpmpp-2m"}
    assert {n: SAMPLERS.get(n).grid for n in SAMPLERS.names()} == {
        "ddim": "linear", "ancestral": "linear", "euler": "linear", "heun": "karras", "dpmpp-2m": "karras",
        "pc": "sde", "ode": "sde"}
    assert all(SAMPLERS.get(n).name == n and SAMPLERS.get(n).help for n in SAMPLERS.names())


@pytest.mark.parametrize("name", GRID_SAMPLERS)
def test_constant_denoiser_is_returned_exactly(name):
    target = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grid = karras_sigmas(6, 0.01, 50.0)
    x = target + 50.0 * torch.randn(3, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = SAMPLERS.get(name).fn(lambda x, s: target.expand_as(x), x, grid, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, target.expand_as(out))


def test_karras_sigmas():
    n, lo, hi, rho = 10, 0.002, 80.0, 7.0
    s = karras_sigmas(n, lo, hi, rho)
    assert s.dtype == torch.float64 and len(s) == n + 1 and s[-1] == 0
    assert s[0] == hi and s[n - 1] == lo
    assert torch.all(s[1:] < s[:-1])
    i = torch.arange(n, dtype=torch.float64)
    want = (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho  # eq. 5
    torch.testing.assert_close(s[:-1], want, rtol=1e-12, atol=0)
    steps = s[:-1] ** (1 / rho)
    torch.testing.assert_close(steps[1:] - steps[:-1], torch.full((n - 1,), (lo ** (1 / rho) - hi ** (1 / rho)) / (n - 1),
                                                                  dtype=torch.float64))
    torch.testing.assert_close(karras_sigmas(5, 1.0, 5.0, rho=1.0)[:-1], torch.linspace(5, 1, 5, dtype=torch.float64))
    assert karras_sigmas(1, lo, hi).tolist() == [hi, 0.0]
    with pytest.raises(FacesrError):
        karras_sigmas(0, lo, hi)


def test_karras_grid_spans_the_schedule_from_the_sigma_grid_start():
    sched = DDPMSchedule(DDPMConfig("linear", 50))
    for strength in (1.0, 0.5):
        k, g = sched.karras_grid(7, strength), sched.sigma_grid(7, strength)
        assert len(k) == 8 and k[0] == g[0] and k[-2] == sched.sigmas()[0] and k[-1] == 0
    with pytest.raises(FacesrError):
        sched.karras_grid(0)
    with pytest.raises(FacesrError):
        sched.karras_grid(3, strength=0)


def test_euler_is_ddim_eta0():
    grid = DDPMSchedule(DDPMConfig("cosine", 20)).sigma_grid(8)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * grid[0]
    torch.testing.assert_close(sample_euler(fake_denoiser, x, grid), sample_ddim(fake_denoiser, x, grid, eta=0.0),
                               rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", GRID_SAMPLERS)
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_network_evaluations_are_counted_honestly(name, steps):
    calls = []

    def counting(x, sigma):
        calls.append(float(sigma[0]))
        return fake_denoiser(x, sigma)

    grid = karras_sigmas(steps, 0.01, 10.0)
    SAMPLERS.get(name).fn(counting, torch.ones(1, 1, 2, 2, dtype=torch.float64), grid,
                          generator=torch.Generator().manual_seed(0))
    assert len(calls) == evaluations(name, steps) == (2 * steps - 1 if name == "heun" else steps)
    # one step per grid level, in order (Heun also evaluates at the next level), never at sigma = 0
    assert list(dict.fromkeys(calls)) == grid[:-1].tolist() and 0.0 not in calls
    assert SamplingOptions(sampler=name, steps=steps, samples=3).network_evaluations == 3 * len(calls)
    with pytest.raises(FacesrError, match="unknown sampler 'nope'"):
        SAMPLERS.get("nope")


def test_cli_offers_every_sampler():
    parser = build_parser("upscale")
    action = next(a for a in parser._subparsers._group_actions[0].choices["upscale"]._actions if a.dest == "sampler")
    assert set(action.choices) == set(SAMPLERS.names()) >= set(GRID_SAMPLERS) | {"pc", "ode"}


# --- SR3 ------------------------------------------------------------------------------------


def tiny_sr3():
    from facesr.nets.unet import UNetConfig
    from facesr.methods.sr3 import SR3, SR3Config

    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=())
    return SR3(SR3Config(unet=unet, diffusion=DDPMConfig(timesteps=50))).eval()


@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp-2m"])
def test_sr3_super_resolves_with_the_new_samplers(name, monkeypatch):
    m = tiny_sr3()
    seen = []
    make_process = m.process

    def recording_process(up, vector=None, precision="fp32"):
        """The model's process, its denoiser recording the noise level of every call."""
        process = make_process(up, vector, precision)
        denoiser = process.denoiser

        def recording(x, sigma):
            seen.append(float(torch.as_tensor(sigma).reshape(-1)[0]))
            return denoiser(x, sigma)

        return dataclasses.replace(process, denoiser=recording)

    monkeypatch.setattr(m, "process", recording_process)
    lr = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    opts = SamplingOptions(sampler=name, steps=3, precision="fp32")
    sr = m.super_resolve(lr, None, opts, torch.Generator().manual_seed(1))
    assert sr.shape == (2, 3, 32, 32) and torch.isfinite(sr).all()
    assert sr.min() >= 0 and sr.max() <= 1
    want = m.schedule.karras_grid(3) if name != "euler" else m.schedule.sigma_grid(3)
    assert list(dict.fromkeys(seen)) == want[:-1].tolist() and len(seen) == evaluations(name, 3)
    assert m.network_evaluations(opts) == len(seen)
    seen.clear()
    again = m.super_resolve(lr, None, dataclasses.replace(opts, strength=0.5), torch.Generator().manual_seed(1))
    assert again.shape == sr.shape and not torch.equal(again, sr)
    assert seen[0] == float(m.schedule.karras_grid(3, 0.5)[0] if name != "euler" else m.schedule.sigma_grid(3, 0.5)[0])
