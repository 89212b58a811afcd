"""Score-SDE face SR (SR-SDE, the base of FASR; dossier section 1) as one saveable model.

A conditional score network s(x_t, t | y) under the VE, VP or subVP SDE, trained by denoising
score matching with lambda(t) = std(t)^2: loss = reduce((s std + z)^2). Parameterisations:

- VE: Fourier embedding of log sigma, output divided by sigma (NCSN++ ``scale_by_sigma``; diffusers'
  UNet2DModel does exactly this for ``time_embedding_type="fourier"``): s = F(c_in x, sigma) / sigma.
  ``input_scaling`` (facesr default) feeds c_in x with c_in = 1 / sqrt(sigma^2 + 0.25) so the network
  sees unit-scale inputs at every noise level; the reference feeds x raw (``input_scaling: false``).
- VP / subVP: positional embedding of 999 t, epsilon prediction: s = -F(x_t, 999 t) / std(t).
- VE with ``preconditioning: "edm"`` (facesr's option, Karras et al. 2022): the denoiser is
  D = c_skip x + c_out F(c_in x, sigma) with c_skip = sd^2 / (sigma^2 + sd^2) and
  c_out = sigma sd / sqrt(sigma^2 + sd^2), and s = (D - x) / sigma^2. The reference form makes
  D = x - sigma F, so an error of F costs sigma times more in the x0 estimate at high noise.

Training noise and weight: the reference draws t ~ U(train_eps, 1) and weighs by lambda = std^2.
VE options: ``weighting: "edm"`` multiplies that by (sigma^2 + sd^2) / sd^2, i.e. the loss is
(sigma^2 + sd^2) / (sigma sd)^2 |D - x0|^2, which keeps the high noise levels (where the
condition, not the noisy image, carries the face) from vanishing in the sum; ``noise_sampling:
"lognormal"`` draws ln sigma ~ N(p_mean, p_std^2), clamped to the SDE's range. With the reference
settings, a VE model learns to denoise x_t long before it learns to use the LR image.

The condition y (upsampled LR) is concatenated before the noisy image along channels, condition
first. The reference interleaves the channels [x_R, y_R, x_G, y_G, x_B, y_B] (dossier 1.2); only
its released checkpoints need that order, and facesr does not load them.

Samplers never ask which SDE they run: the model exposes the denoiser D(x, sigma) (Tweedie from the
score) and its SDE, and ``facesr.diffusion.dispatch`` runs any sampler on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from facesr.degrade.resample import make_operator
from facesr.diffusion.losses import dsm_loss
from facesr.diffusion.sampling import DiffusionProcess
from facesr.diffusion.sde import denoiser_from_score, make_sde
from facesr.diffusion.wrappers import EpsScore, VEScore
from facesr.errors import FacesrError
from facesr.methods.base import register_method
from facesr.methods.diffusion_sr import DiffusionSR, Distillation
from facesr.nets.unet import ConditionalUNet, UNetConfig
from facesr.runtime import autocast

SIGMA_DATA = 0.5


@dataclass
class ScoreSRConfig(Distillation):
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
    # VE only (see the module docstring); the defaults are the reference's
    preconditioning: str = "score"  # "score" (s = F / sigma) or "edm" (c_skip, c_out; needs input_scaling)
    weighting: str = "sigma2"  # "sigma2" (lambda = std^2) or "edm" (x (sigma^2 + sd^2) / sd^2)
    noise_sampling: str = "uniform"  # "uniform" in t or "lognormal" in sigma
    p_mean: float = -1.2  # lognormal: mean and std of ln sigma
    p_std: float = 1.2

    def __post_init__(self):
        self.check_distillation()
        make_sde(self.sde, **self.sde_params)
        want = "fourier" if self.sde == "ve" else "positional"
        if self.unet.time_embedding != want:
            raise FacesrError(f"a {self.sde} score model uses the {want} time embedding (unet.time_embedding)")
        if self.reduce not in ("mean", "sum"):
            raise FacesrError(f"reduce must be 'mean' or 'sum', got {self.reduce!r}")
        if self.target not in ("image", "residual"):
            raise FacesrError(f"target must be 'image' or 'residual', got {self.target!r}")
        for name, allowed in (("preconditioning", ("score", "edm")), ("weighting", ("sigma2", "edm")),
                              ("noise_sampling", ("uniform", "lognormal"))):
            value = getattr(self, name)
            if value not in allowed:
                raise FacesrError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
            if value != allowed[0] and self.sde != "ve":
                raise FacesrError(f"{name} {value!r} is a VE option; the {self.sde} SDE uses {allowed[0]!r}")
        if self.preconditioning == "edm" and not self.input_scaling:
            raise FacesrError("preconditioning 'edm' scales the network input: set input_scaling to true")
        if self.p_std <= 0:
            raise FacesrError(f"p_std must be > 0, got {self.p_std}")
        make_operator(self.operator, self.scale)


@register_method("score-sde")
class ScoreSR(DiffusionSR):
    """The backbone ``net`` (a UNet) and its parameterisation ``param`` (VEScore or EpsScore) are apart:
    the score is ``param(backbone, x_t, t)``. Samplers never ask which SDE they run: the model hands
    them its DiffusionProcess (the denoiser by Tweedie from the score, the SDE, and the native score)."""

    config_class = ScoreSRConfig
    process_fields = DiffusionSR.process_fields + ("sde", "sde_params", "input_scaling", "preconditioning")

    def __init__(self, cfg: ScoreSRConfig):
        super().__init__(cfg)
        self.net = ConditionalUNet(cfg.unet)
        self.sde = make_sde(cfg.sde, **cfg.sde_params)
        if cfg.sde == "ve":
            self.param = VEScore(self.sde, cfg.input_scaling, cfg.preconditioning, SIGMA_DATA)
        else:
            self.param = EpsScore(self.sde)

    # --- the score -----------------------------------------------------------------------
    def score(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, vector=None) -> torch.Tensor:
        """s(x_t, t | cond) in the SDE's own coordinates; ``cond`` in [-1, 1]."""
        t = t.reshape(-1).expand(x_t.shape[0])
        return self.param(lambda x_in, noise: self.net(x_in, noise, cond, vector), x_t, t)

    def training_times(self, n: int, generator=None) -> torch.Tensor:
        """t for n training samples (float64): uniform in [train_eps, 1], or from ln sigma ~ N(p_mean, p_std^2)."""
        if self.cfg.noise_sampling == "uniform":
            return self.cfg.train_eps + (1 - self.cfg.train_eps) * torch.rand(n, generator=generator, dtype=torch.float64)
        log_sigma = self.cfg.p_mean + self.cfg.p_std * torch.randn(n, generator=generator, dtype=torch.float64)
        lo, hi = self.sde.sigma(torch.tensor(self.cfg.train_eps, dtype=torch.float64)), self.sde.sigma(torch.tensor(1.0, dtype=torch.float64))
        return self.sde.t_of_sigma(log_sigma.exp().clamp(float(lo), float(hi)))

    def denoising_loss(self, hr, up, generator=None, vector=None):
        """Denoising score matching (``facesr.diffusion.losses.dsm_loss``) at times from ``training_times``."""
        x0 = self.encode(hr, up)
        t = self.training_times(x0.shape[0], generator)
        z = torch.randn(x0.shape, generator=generator).to(x0)
        cond = up * 2 - 1
        return dsm_loss(lambda x, t: self.score(x, t, cond, vector), self.sde, x0, t.to(x0.device), z, self.cfg.reduce,
                        SIGMA_DATA if self.cfg.weighting == "edm" else None)

    # --- sampling ------------------------------------------------------------------------
    def process(self, up, vector=None, precision: str = "fp32") -> DiffusionProcess:
        cond = up * 2 - 1

        def score_fn(x, t):
            with autocast(up.device, precision):
                return self.score(x, torch.as_tensor(t, dtype=torch.float64, device=x.device), cond, vector)

        return DiffusionProcess(denoiser_from_score(score_fn, self.sde), self.sigma_grid, self.prior_std_ve(),
                                self.sde, score_fn)

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
