"""Samplers: plain functions of a denoiser D(x, sigma) -> x0 and a decreasing sigma grid.

Grids end in sigma = 0, where the last step returns the denoised estimate.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from facesr.diffusion.denoiser import Denoiser


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


SAMPLERS = {"ddim": sample_ddim, "ancestral": sample_ancestral}
