"""Samplers: plain functions of a denoiser D(x, sigma) -> x0 and a decreasing sigma grid.

Grids end in sigma = 0, where the last step returns the denoised estimate.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from facesr.diffusion.denoiser import Denoiser
from facesr.errors import FacesrError


def randn_like(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn on the CPU (same numbers on any device).

    ``generator`` may be one torch.Generator or a list with one per sample, which
    makes each sample's noise independent of how inputs were batched.
    """
    if isinstance(generator, (list, tuple)):
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in generator])
    else:
        noise = torch.randn(x.shape, generator=generator)
    return noise.to(device=x.device, dtype=x.dtype)


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


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
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
        if callback is not None:
            callback(i, x, x0)
    return x


def sample_ancestral(denoiser, x, sigmas, generator=None, callback=None):
    """SR3's ancestral DDPM sampler.

    In VE coordinates the DDPM posterior q(x_{t-1} | x_t, x0_hat) has mean
    x0 + (s_next^2 / s^2)(x - x0) and variance s_next^2 (s^2 - s_next^2) / s^2,
    which is DDIM with eta = 1 on the same grid (tested against the DDPM formula).
    On a subsampled grid this is the respaced DDPM chain.
    """
    return sample_ddim(denoiser, x, sigmas, eta=1.0, generator=generator, callback=callback)


def _sigma(x: torch.Tensor, s: float) -> torch.Tensor:
    return torch.full((x.shape[0],), s, dtype=torch.float64)


@torch.no_grad()
def sample_euler(denoiser, x, sigmas, generator=None, callback=None):
    """Euler on the probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, eq. 4).

    The step x + (s_next - s)(x - x0)/s is written as x0 + (s_next/s)(x - x0), i.e. DDIM with
    eta = 0, so the step to sigma = 0 returns x0 exactly. One evaluation per step; deterministic.
    """
    sigmas = sigmas.tolist()
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoiser(x, _sigma(x, s))
        x = x0 + (s_next / s) * (x - x0)
        if callback is not None:
            callback(i, x, x0)
    return x


@torch.no_grad()
def sample_heun(denoiser, x, sigmas, generator=None, callback=None):
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
        if callback is not None:
            callback(i, x, x0)
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoiser, x, sigmas, generator=None, callback=None):
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
        if callback is not None:
            callback(i, x, x0)
    return x


SAMPLERS = {"ddim": sample_ddim, "ancestral": sample_ancestral, "euler": sample_euler, "heun": sample_heun,
            "dpmpp-2m": sample_dpmpp_2m}
KARRAS_SAMPLERS = ("heun", "dpmpp-2m")  # run on the Karras sigma grid by SR3.super_resolve


def network_evaluations(sampler: str, steps: int) -> int:
    """Denoiser calls for a grid of ``steps`` levels (plus the final 0): Heun 2 * steps - 1, others steps."""
    if sampler not in SAMPLERS:
        raise FacesrError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    return 2 * steps - 1 if sampler == "heun" else steps
