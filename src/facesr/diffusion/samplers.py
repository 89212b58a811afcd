"""Samplers: plain functions of a denoiser D(x, sigma) -> x0 and a decreasing sigma grid.

Grids end in sigma = 0, where the last step returns the denoised estimate. Each sampler declares its
facts once, with ``@sampler(name, grid=..., options=..., evaluations=...)``: the grid it runs on
("linear": the model's own noise levels, "karras": Karras et al.'s rho = 7 grid, "sde": the model's
SDE, see ``facesr.diffusion.pc``), the sampling options it reads and its network evaluations for a
number of steps. ``SAMPLERS`` holds the declarations; CLI choices and benchmark keys come from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from facesr.diffusion.wrappers import Denoiser
from facesr.diffusion.noise import randn_like
from facesr.registry import Registry

SAMPLERS = Registry("sampler", modules=("facesr.diffusion.samplers", "facesr.diffusion.pc"))
GRIDS = ("linear", "karras", "sde")


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    fn: Callable
    grid: str
    options: tuple[str, ...]  # names of the sampling options it takes (attributes of SamplingOptions)
    evaluations: Callable[[int, object], int]  # (steps, options) -> network evaluations per sample
    help: str

    def kwargs(self, options) -> dict:
        """The options it takes, from a SamplingOptions-like object (None values left to the default)."""
        values = {k: getattr(options, k) for k in self.options}
        return {k: v for k, v in values.items() if v is not None}


def sampler(name: str, grid: str = "linear", options: tuple[str, ...] = (), evaluations=None, help: str = ""):
    """Declare a sampler function (see the module docstring); one evaluation per step by default."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}")

    def deco(fn):
        SAMPLERS.register(name, SamplerSpec(name, fn, grid, tuple(options), evaluations or (lambda steps, o: steps),
                                            help or (fn.__doc__ or "").split("\n")[0]))
        return fn

    return deco


def ancestral_step_sizes(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """Split the move sigma -> sigma_next into a deterministic part and fresh noise.

    sigma_up^2 = eta^2 * sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2 is the DDPM
    posterior variance in VE coordinates (eta = 1) and DDIM's sigma_eta in general.
    """
    if sigma_next == 0:
        return 0.0, 0.0
    up = eta * math.sqrt(max(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2, 0.0))
    down = math.sqrt(max(sigma_next**2 - up**2, 0.0))
    return down, up


@sampler("ddim", options=("eta",))
@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021) with stochasticity ``eta``; eta = 0 is deterministic.

    x_next = x0 + sigma_down * (x - x0) / sigma + sigma_up * z.
    """
    sigmas = sigmas.tolist()
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, torch.full((x.shape[0],), s, dtype=torch.float64))
        down, up = ancestral_step_sizes(s, s_next, eta)
        x = x0 + (down / s) * (x - x0)
        if up > 0:
            x = x + up * randn_like(x, generator)
    return x


@sampler("ancestral")
def sample_ancestral(denoiser, x, sigmas, generator=None):
    """SR3's ancestral DDPM sampler.

    In VE coordinates the DDPM posterior q(x_{t-1} | x_t, x0_hat) has mean
    x0 + (s_next^2 / s^2)(x - x0) and variance s_next^2 (s^2 - s_next^2) / s^2,
    which is DDIM with eta = 1 on the same grid (tested against the DDPM formula).
    On a subsampled grid this is the respaced DDPM chain.
    """
    return sample_ddim(denoiser, x, sigmas, eta=1.0, generator=generator)


def _sigma(x: torch.Tensor, s: float) -> torch.Tensor:
    return torch.full((x.shape[0],), s, dtype=torch.float64)


@sampler("euler")
@torch.no_grad()
def sample_euler(denoiser, x, sigmas, generator=None):
    """Euler on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, eq. 4).

    The step x + (s_next - s)(x - x0)/s is written as x0 + (s_next/s)(x - x0), i.e. DDIM with
    eta = 0, so the step to sigma = 0 returns x0 exactly. One evaluation per step; deterministic.
    """
    sigmas = sigmas.tolist()
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _sigma(x, s))
        x = x0 + (s_next / s) * (x - x0)
    return x


@sampler("heun", grid="karras", evaluations=lambda steps, o: 2 * steps - 1)
@torch.no_grad()
def sample_heun(denoiser, x, sigmas, generator=None):
    """Heun's 2nd-order method, Karras et al. 2022 Alg. 1 without churn (deterministic).

    Euler step, then a correction with the average of the slopes at both ends; the step
    to sigma = 0 stays Euler (the slope there is undefined). 2 * steps - 1 evaluations.
    """
    sigmas = sigmas.tolist()
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _sigma(x, s))
        x_euler = x0 + (s_next / s) * (x - x0)  # = x + (s_next - s) d, d = (x - x0) / s
        if s_next == 0:
            x = x_euler
        else:
            d, d_next = (x - x0) / s, (x_euler - denoiser(x_euler, _sigma(x, s_next))) / s_next
            x = x + (s_next - s) * (d + d_next) / 2
    return x


@sampler("dpmpp-2m", grid="karras")
@torch.no_grad()
def sample_dpmpp_2m(denoiser, x, sigmas, generator=None):
    """DPM-Solver++(2M), Lu et al. 2022 Alg. 2, in VE coordinates (alpha = 1, lambda = -log sigma).

    x_next = (s_next / s) x + (1 - e^{-h}) D with h = lambda_next - lambda and
    D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev, r = h_prev / h. The first step (no x0_prev) is
    first order (= DDIM); so is the step to sigma = 0 (h = inf, r -> 0), which returns x0.
    One evaluation per step.
    """
    sigmas = sigmas.tolist()
    x0_prev, h_prev = None, None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _sigma(x, s))
        if s_next == 0:
            x = x0
        else:
            h = math.log(s / s_next)
            d = x0
            if x0_prev is not None:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (s_next / s) * x - math.expm1(-h) * d
            x0_prev, h_prev = x0, h
    return x
