"""SR3's discrete DDPM noise schedules and the quantities derived from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facesr.errors import FacesrError


@dataclass
class DDPMConfig:
    schedule: str = "linear"  # "linear" (SR3 16->128) or "cosine" (MF-SR3)
    timesteps: int = 2000
    linear_start: float = 1e-6
    linear_end: float = 1e-2
    cosine_s: float = 8e-3


def make_betas(cfg: DDPMConfig) -> torch.Tensor:
    """Betas in float64, as in SR3's ``make_beta_schedule``."""
    T = cfg.timesteps
    if cfg.schedule == "linear":
        return torch.linspace(cfg.linear_start, cfg.linear_end, T, dtype=torch.float64)
    if cfg.schedule == "cosine":
        steps = torch.arange(T + 1, dtype=torch.float64) / T + cfg.cosine_s
        f = torch.cos(steps / (1 + cfg.cosine_s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise FacesrError(f"unknown noise schedule {cfg.schedule!r}; choose 'linear' or 'cosine'")


class DDPMSchedule:
    """alpha_bar_t for t = 0..T-1 (0-based, alpha_bar_{-1} := 1) and the posterior."""

    def __init__(self, cfg: DDPMConfig):
        self.cfg = cfg
        self.betas = make_betas(cfg)
        self.alphas = 1 - self.betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        # sqrt(alpha_bar) at the upper end of each step's interval: sqrt_gamma ~ U(lo, hi)
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_alpha_bar_prev = self.alpha_bar_prev.sqrt()

    @property
    def timesteps(self) -> int:
        return self.cfg.timesteps

    def posterior(self, t: int):
        """q(x_{t-1} | x_t, x0) = N(c0 * x0 + ct * x_t, var), SR3/DDPM eq. 7."""
        b, ab, ab_prev = self.betas[t], self.alpha_bar[t], self.alpha_bar_prev[t]
        c0 = b * ab_prev.sqrt() / (1 - ab)
        ct = (1 - ab_prev) * self.alphas[t].sqrt() / (1 - ab)
        var = b * (1 - ab_prev) / (1 - ab)
        return c0, ct, var

    def sigmas(self) -> torch.Tensor:
        """VE-coordinate noise levels sigma_t = sqrt((1 - ab) / ab), increasing in t."""
        return ((1 - self.alpha_bar) / self.alpha_bar).sqrt()

    def sigma_grid(self, steps: int | None = None, strength: float = 1.0) -> torch.Tensor:
        """Decreasing grid of ``steps`` levels from sigma_{t0} down to sigma_0, then 0.

        t0 = round(strength * (T - 1)); strength 1 starts from pure noise. With
        steps = T this is SR3's full ancestral chain; fewer steps pick evenly
        spaced timesteps (DDIM / respaced DDPM).
        """
        T = self.timesteps
        steps = T if steps is None else steps
        if not 0 < strength <= 1:
            raise FacesrError(f"strength must be in (0, 1], got {strength}")
        t0 = round(strength * (T - 1))
        if not 1 <= steps <= t0 + 1:
            raise FacesrError(f"steps must be between 1 and {t0 + 1} at strength {strength}, got {steps}")
        idx = torch.linspace(t0, 0, steps, dtype=torch.float64).round().long()
        idx = torch.unique_consecutive(idx)
        return torch.cat([self.sigmas()[idx], torch.zeros(1, dtype=torch.float64)])

    def karras_grid(self, steps: int, strength: float = 1.0) -> torch.Tensor:
        """``steps`` Karras levels (``karras_sigmas``) from sigma_{t0} down to sigma_0, then 0.

        Same start t0 = round(strength * (T - 1)) as ``sigma_grid``; the levels are
        continuous, which ``EpsDenoiser`` accepts (the network is trained on continuous gamma).
        """
        if not 0 < strength <= 1:
            raise FacesrError(f"strength must be in (0, 1], got {strength}")
        if steps < 1:
            raise FacesrError(f"steps must be at least 1, got {steps}")
        sig = self.sigmas()
        t0 = round(strength * (self.timesteps - 1))
        if t0 == 0 and steps > 1:
            raise FacesrError(f"strength {strength} starts at the lowest noise level; only steps=1 is possible")
        return karras_sigmas(steps, float(sig[0]), float(sig[t0]))


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho.

    ``n`` levels decreasing from sigma_max to sigma_min (float64), then a final 0.
    """
    if n < 1:
        raise FacesrError(f"steps must be at least 1, got {n}")
    if not 0 < sigma_min <= sigma_max or rho <= 0:
        raise FacesrError(f"need 0 < sigma_min <= sigma_max and rho > 0, got {sigma_min}, {sigma_max}, {rho}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    sigmas[0] = sigma_max  # exact endpoints despite the power round trip
    if n > 1:
        sigmas[-1] = sigma_min
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])


def sigma_to_sqrt_alpha_bar(sigma: torch.Tensor) -> torch.Tensor:
    return 1 / torch.sqrt(1 + sigma**2)
