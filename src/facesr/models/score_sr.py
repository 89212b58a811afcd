"""Score-SDE face SR (SR-SDE, the base of FASR; dossier section 1) as one saveable model.

A conditional score network s(x_t, t | y) under the VE, VP or subVP SDE, trained by denoising
score matching with lambda(t) = std(t)^2: loss = reduce((s std + z)^2). Parameterisations:

- VE: Fourier embedding of log sigma, output divided by sigma (NCSN++ ``scale_by_sigma``; diffusers'
  UNet2DModel does exactly this for ``time_embedding_type="fourier"``): s = F(c_in x, sigma) / sigma.
  ``input_scaling`` (facesr default) feeds c_in x with c_in = 1 / sqrt(sigma^2 + 0.25) so the network
  sees unit-scale inputs at every noise level; the reference feeds x raw (``input_scaling: false``).
- VP / subVP: positional embedding of 999 t, epsilon prediction: s = -F(x_t, 999 t) / std(t).

The condition y (upsampled LR) is concatenated before the noisy image along channels, condition
first. The reference interleaves the channels [x_R, y_R, x_G, y_G, x_B, y_B] (dossier 1.2); only
its released checkpoints need that order, and facesr does not load them.

Samplers never ask which SDE they run: the model exposes the denoiser D(x, sigma) (Tweedie from the
score) and its SDE, and ``facesr.diffusion.dispatch`` runs any sampler on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from facesr.data.resample import make_operator
from facesr.diffusion.sde import bcast, denoiser_from_score, make_sde
from facesr.errors import FacesrError
from facesr.models.conditional_unet import ConditionalUNet, UNetConfig
from facesr.models.diffusion_sr import DiffusionSRMixin
from facesr.models.hub import PretrainedMixin
from facesr.runtime import autocast

SIGMA_DATA = 0.5


@dataclass
class ScoreSRConfig:
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(time_embedding="fourier"))
    sde: str = "ve"  # "ve", "vp" or "subvp"
    sde_params: dict = field(default_factory=dict)  # overrides: sigma_min, sigma_max, beta_min, beta_max, N, eps
    train_eps: float = 1e-5  # t ~ U(train_eps, 1) in training
    reduce: str = "mean"  # "mean" over pixels, or "sum" (x 1/2; the reference's VE setting)
    input_scaling: bool = True  # VE only: c_in = 1 / sqrt(sigma^2 + sigma_data^2)
    operator: str = "bicubic"
    scale: int = 8
    hr_size: int = 128
    target: str = "residual"  # as SR3: "image" or "residual" (HR - up(LR), scaled)
    residual_scale: float = 4.0

    def __post_init__(self):
        make_sde(self.sde, **self.sde_params)
        want = "fourier" if self.sde == "ve" else "positional"
        if self.unet.time_embedding != want:
            raise FacesrError(f"a {self.sde} score model uses the {want} time embedding (unet.time_embedding)")
        if self.reduce not in ("mean", "sum"):
            raise FacesrError(f"reduce must be 'mean' or 'sum', got {self.reduce!r}")
        if self.target not in ("image", "residual"):
            raise FacesrError(f"target must be 'image' or 'residual', got {self.target!r}")
        make_operator(self.operator, self.scale)


class ScoreSR(DiffusionSRMixin, PretrainedMixin, nn.Module):
    method = "score-sde"
    config_class = ScoreSRConfig

    def __init__(self, cfg: ScoreSRConfig):
        super().__init__()
        self.cfg = cfg
        self.net = ConditionalUNet(cfg.unet)
        self.sde = make_sde(cfg.sde, **cfg.sde_params)
        self.operator = make_operator(cfg.operator, cfg.scale)

    # --- the score -----------------------------------------------------------------------
    def score(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, vector=None) -> torch.Tensor:
        """s(x_t, t | cond) in the SDE's own coordinates; ``cond`` in [-1, 1]."""
        t = t.reshape(-1).expand(x_t.shape[0])
        if self.cfg.sde == "ve":
            sigma = self.sde.sigma(t)
            x_in = x_t / bcast(torch.sqrt(sigma**2 + SIGMA_DATA**2), x_t) if self.cfg.input_scaling else x_t
            return self.net(x_in, sigma, cond, vector).float()  # the UNet divides by sigma itself
        return -self.net(x_t, 999 * t, cond, vector).float() / bcast(self.sde.std(t), x_t)

    def forward(self, batch: dict, generator=None):
        """Denoising score matching, lambda(t) = std(t)^2: reduce((s std + z)^2), mean over the batch."""
        hr, up = batch["hr"], batch["up"]
        x0 = self.encode(hr, up)
        t = self.cfg.train_eps + (1 - self.cfg.train_eps) * torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
        z = torch.randn(x0.shape, generator=generator).to(x0)
        t = t.to(x0.device)
        mean, std = bcast(self.sde.mean_coef(t), x0) * x0, bcast(self.sde.std(t), x0)
        err = (self.score(mean + std * z, t, up * 2 - 1, batch.get("vector")) * std + z) ** 2
        per_sample = err.flatten(1).sum(1) / 2 if self.cfg.reduce == "sum" else err.flatten(1).mean(1)
        return per_sample.mean()

    # --- sampling ------------------------------------------------------------------------
    def denoiser(self, up, vector=None, precision: str = "fp32"):
        cond = up * 2 - 1

        def score_fn(x, t):
            with autocast(up.device, precision):
                return self.score(x, torch.as_tensor(t, dtype=torch.float64, device=x.device), cond, vector)

        return denoiser_from_score(score_fn, self.sde)

    def sigma_grid(self, steps: int, strength: float = 1.0, karras: bool = False) -> torch.Tensor:
        """Decreasing sigmas from sigma(strength) to sigma(eps), then 0 (log-uniform in t, or Karras)."""
        from facesr.diffusion.schedules import karras_sigmas

        if not 0 < strength <= 1 or steps < 1:
            raise FacesrError(f"need steps >= 1 and strength in (0, 1], got {steps}, {strength}")
        lo, hi = float(self.sde.sigma(self.sde.eps)), float(self.sde.sigma(strength))
        if karras:
            return karras_sigmas(steps, lo, hi)
        t = torch.linspace(strength, self.sde.eps, steps, dtype=torch.float64)
        return torch.cat([self.sde.sigma(t), torch.zeros(1, dtype=torch.float64)])

    def sde_view(self):
        return self.sde

    def prior_std_ve(self) -> float:
        t1 = torch.tensor([1.0], dtype=torch.float64)
        return float(self.sde.prior_std / self.sde.mean_coef(t1))
