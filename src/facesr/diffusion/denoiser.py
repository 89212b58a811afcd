"""Wrappers that turn a trained network into the one denoiser interface D(x, sigma) -> x0."""

from __future__ import annotations

from typing import Callable, Protocol

import torch


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class EpsDenoiser:
    """A DDPM epsilon-network seen as a denoiser in VE coordinates.

    ``eps_fn(x_t, sqrt_gamma)`` predicts the noise of the DDPM state
    x_t = sqrt_gamma * x0 + sqrt(1 - gamma) * eps. With x = x_t / sqrt_gamma and
    sigma^2 = (1 - gamma) / gamma we have x = x0 + sigma * eps, so
    x0 = x - sigma * eps. ``clip`` optionally bounds x0 (SR3 clamps to [-1, 1]).
    """

    def __init__(self, eps_fn: Callable, clip: Callable | None = None):
        self.eps_fn = eps_fn
        self.clip = clip
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        sqrt_gamma = (1 / torch.sqrt(1 + sigma**2)).to(x.dtype)
        x_t = x * sqrt_gamma.view(-1, 1, 1, 1)
        eps = self.eps_fn(x_t, sqrt_gamma).to(x.dtype)
        self.evaluations += 1
        x0 = x - sigma.to(x.dtype).view(-1, 1, 1, 1) * eps
        return self.clip(x0) if self.clip is not None else x0


def guided(cond: Denoiser, null: Denoiser, weight: float) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022) in denoiser form: D_c + w (D_c - D_null).

    ``cond`` sees the condition, ``null`` the null condition; w = 0 gives ``cond`` itself. Since
    D = x + sigma^2 * score, this is the same extrapolation of the score, so it holds for every sampler.
    """

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x0 = cond(x, sigma)
        return x0 + weight * (x0 - null(x, sigma))

    return denoiser
