"""Training losses for diffusion models."""

from __future__ import annotations

import torch

from facesr.diffusion.schedules import DDPMSchedule
from facesr.diffusion.sde import SDE, bcast


def sr3_eps_loss(eps_fn, x0, schedule: DDPMSchedule, generator=None, kind="l1", per_batch_t=False, x0_loss=None):
    """SR3's continuous noise-level training.

    t ~ U{0..T-1} (one per sample; one per batch with ``per_batch_t`` for parity),
    sqrt_gamma ~ U(sqrt(ab_t), sqrt(ab_{t-1})), x_t = sqrt_gamma x0 + sqrt(1 - gamma) eps,
    and the loss is the mean |eps_hat - eps| (L1) or squared error (L2). ``x0_loss(x0_hat, gamma)``:
    a term on the denoised estimate x0_hat = (x_t - sqrt(1 - gamma) eps_hat) / sqrt_gamma, added to it
    (``gamma`` (B,), the signal fraction, to weigh it by: x0_hat is noise where gamma is small).
    """
    B = x0.shape[0]
    t = torch.randint(0, schedule.timesteps, (1 if per_batch_t else B,), generator=generator).expand(B)
    lo, hi = schedule.sqrt_alpha_bar[t], schedule.sqrt_alpha_bar_prev[t]
    u = torch.rand(B, generator=generator, dtype=torch.float64)
    sqrt_gamma = (lo + (hi - lo) * u).to(device=x0.device, dtype=torch.float32)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    g = sqrt_gamma.view(-1, 1, 1, 1)
    x_t = g * x0 + torch.sqrt(1 - g**2) * noise
    eps_hat = eps_fn(x_t, sqrt_gamma).float()
    err = eps_hat - noise
    loss = err.abs().mean() if kind == "l1" else (err**2).mean()
    if x0_loss is not None:
        loss = loss + x0_loss((x_t - torch.sqrt(1 - g**2) * eps_hat) / g, sqrt_gamma**2)
    return loss


def dsm_loss(score_fn, sde: SDE, x0, t, z, reduce: str = "mean", edm_sigma_data: float | None = None):
    """Denoising score matching with lambda(t) = std(t)^2 (Score-SDE): reduce((s std + z)^2) per sample,
    mean over the batch; ``reduce`` "mean" over pixels or "sum" (x 1/2, the reference's VE setting).
    ``edm_sigma_data``: weigh each sample by (sigma^2 + sd^2) / sd^2 (EDM weighting, VE)."""
    sigma = sde.std(t)  # VE: std = sigma
    mean, std = bcast(sde.mean_coef(t), x0) * x0, bcast(sigma, x0)
    err = (score_fn(mean + std * z, t) * std + z) ** 2
    per_sample = err.flatten(1).sum(1) / 2 if reduce == "sum" else err.flatten(1).mean(1)
    if edm_sigma_data is not None:
        per_sample = per_sample * ((sigma**2 + edm_sigma_data**2) / edm_sigma_data**2).to(per_sample)
    return per_sample.mean()
