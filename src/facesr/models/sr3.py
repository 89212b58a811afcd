"""SR3: a conditional DDPM for face SR (Saharia et al.), as one saveable model.

The model owns everything inference and evaluation need: the network, the noise
schedule, the operator that made the LR images (so LR-consistency uses it), and
how HR images map to the diffusion variable x0:

- ``target = "image"`` (SR3 parity): x0 = HR in [-1, 1].
- ``target = "residual"`` (facesr default): x0 = residual_scale * (HR - up(LR)) in
  [-1, 1] units. The condition is unchanged; only the diffused variable is the
  detail bicubic misses, which trains much faster on a CPU budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from facesr.config import from_dict, to_dict
from facesr.data.resample import make_operator, quantize
from facesr.diffusion.denoiser import EpsDenoiser
from facesr.diffusion.schedules import DDPMConfig, DDPMSchedule
from facesr.errors import FacesrError
from facesr.models.conditional_unet import ConditionalUNet, UNetConfig
from facesr.models.hub import PretrainedMixin
from facesr.runtime import autocast


@dataclass
class SR3Config:
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DDPMConfig = field(default_factory=DDPMConfig)
    operator: str = "bicubic"
    scale: int = 8
    hr_size: int = 128
    target: str = "residual"
    residual_scale: float = 4.0
    loss: str = "l1"  # SR3 uses L1 on epsilon
    per_batch_t: bool = False  # SR3 parity: one timestep per batch

    def __post_init__(self):
        if self.unet.time_embedding != "positional":
            raise FacesrError("SR3 conditions on sqrt(gamma) with a positional embedding; set time_embedding 'positional'")
        if self.target not in ("image", "residual"):
            raise FacesrError(f"target must be 'image' or 'residual', got {self.target!r}")
        if self.loss not in ("l1", "l2"):
            raise FacesrError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        make_operator(self.operator, self.scale)


class SR3(PretrainedMixin, nn.Module):
    method = "sr3"
    config_class = SR3Config

    def __init__(self, cfg: SR3Config):
        super().__init__()
        self.cfg = cfg
        self.net = ConditionalUNet(cfg.unet)
        self.schedule = DDPMSchedule(cfg.diffusion)
        self.operator = make_operator(cfg.operator, cfg.scale)

    # --- data <-> diffusion variable -------------------------------------------------
    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        """Upsampled LR in [0, 1] (the network's condition image)."""
        return self.operator.up(lr).clamp(0, 1)

    def encode(self, hr: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.cfg.target == "image":
            return hr * 2 - 1
        return (hr - up) * 2 * self.cfg.residual_scale

    def decode(self, x0: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.cfg.target == "image":
            return (x0 + 1) / 2
        return up + x0 / (2 * self.cfg.residual_scale)

    def clip_fn(self, up: torch.Tensor):
        """Bound x0 so the decoded image stays in [0, 1] (SR3 clamps x0 to [-1, 1])."""
        if self.cfg.target == "image":
            return lambda x0: x0.clamp(-1, 1)
        lo = self.encode(torch.zeros_like(up), up)
        hi = self.encode(torch.ones_like(up), up)
        return lambda x0: torch.maximum(torch.minimum(x0, hi), lo)

    def degrade(self, hr: torch.Tensor, keys=None, seed: int = 0):
        """LR for HR images with the model's operator, quantised to 8 bits; deterministic (record None)."""
        return quantize(self.operator.down(hr)), None

    def noise_input(self, sqrt_gamma: torch.Tensor) -> torch.Tensor:
        """What the network's time embedding sees: noise_embedding_scale * sqrt(gamma)."""
        return sqrt_gamma.reshape(-1).float() * self.cfg.unet.noise_embedding_scale

    # --- training --------------------------------------------------------------------
    def forward(self, batch: dict, generator=None):
        """The training loss of a batch {"hr", "up", ...}; called through the (possibly
        DDP-wrapped) module so that gradients are synchronised."""
        return self.loss(batch["hr"], batch["up"], generator, batch.get("vector"))

    def loss(self, hr, up, generator=None, vector=None):
        """SR3 epsilon loss with continuous noise levels sqrt(gamma) ~ U(sqrt_ab_t, sqrt_ab_{t-1})."""
        from facesr.diffusion.losses import sr3_eps_loss

        x0 = self.encode(hr, up)
        cond = up * 2 - 1

        def eps_fn(x_t, sqrt_gamma):
            return self.net(x_t, self.noise_input(sqrt_gamma), cond, vector)

        return sr3_eps_loss(eps_fn, x0, self.schedule, generator, self.cfg.loss, self.cfg.per_batch_t)

    # --- sampling --------------------------------------------------------------------
    def denoiser(self, up: torch.Tensor, vector=None, clip: bool = True, precision: str = "fp32") -> EpsDenoiser:
        cond = up * 2 - 1

        def eps_fn(x_t, sqrt_gamma):
            with autocast(up.device, precision):
                return self.net(x_t, self.noise_input(sqrt_gamma), cond, vector).float()

        return EpsDenoiser(eps_fn, self.clip_fn(up) if clip else None)

    def sde_view(self):
        """The VP SDE that SR3's linear DDPM schedule discretises (beta_min = T beta_start,
        beta_max = T beta_end), for the SDE samplers; None for other schedules."""
        from facesr.diffusion.sde import VPSDE

        d = self.cfg.diffusion
        if d.schedule != "linear":
            return None
        return VPSDE(beta_min=d.timesteps * d.linear_start, beta_max=d.timesteps * d.linear_end, N=d.timesteps)

    def sigma_grid(self, steps: int, strength: float = 1.0, karras: bool = False) -> torch.Tensor:
        return self.schedule.karras_grid(steps, strength) if karras else self.schedule.sigma_grid(steps, strength)

    @torch.no_grad()
    def super_resolve(self, lr, sampler="ddim", steps=50, eta=None, generator=None, vector=None,
                      precision="fp32", strength=1.0, init=None, pc=None):
        """LR (B, 3, h, w) in [0, 1] to SR (B, 3, h*s, w*s) in [0, 1] with ``steps`` noise levels.

        Any sampler of ``facesr.diffusion.dispatch``: grid samplers on the DDPM noise levels ("heun"
        and "dpmpp-2m" on a Karras grid), "pc" / "ode" on the equivalent VP SDE (``pc``: PCOptions).
        ``generator``: one torch.Generator, or a list with one per sample.
        ``strength`` < 1 warm-starts: sampling begins at timestep strength * (T - 1) from a
        noised fast estimate ``init`` (an HR-size image in [0, 1]; default: bicubic up(LR)),
        skipping the high-noise steps where an epsilon network is least reliable.
        """
        from facesr.diffusion import dispatch

        problem = self.input_problem(lr.shape[-2], lr.shape[-1])
        if problem:
            raise FacesrError(problem)
        up = self.condition(lr)
        estimate = self.encode(up if init is None else init.to(up), up) if strength < 1 else None
        prior_std = float(torch.sqrt(1 + self.schedule.sigmas()[-1] ** 2))  # DDPM prior N(0, I), VE coordinates
        x0 = dispatch.sample(self.denoiser(up, vector, precision=precision), up, sampler, steps, self.sigma_grid,
                             prior_std, strength, estimate, generator, eta, self.sde_view(), pc)
        return self.decode(x0, up).clamp(0, 1)

    def network_evaluations(self, opts) -> int:
        return opts.network_evaluations

    def input_problem(self, h: int, w: int) -> str | None:
        """Why an LR image of h x w cannot be processed, or None."""
        div = self.net.downsampling
        if (h * self.cfg.scale) % div or (w * self.cfg.scale) % div:
            return f"{w}x{h} input gives a {w * self.cfg.scale}x{h * self.cfg.scale} output, which must be divisible by {div}"
        return None

    # --- persistence -----------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"method": self.method, "config": to_dict(self.cfg)}

    @classmethod
    def from_config_dict(cls, data: dict, where: str = "config.json") -> "SR3":
        return cls(from_dict(SR3Config, data["config"], where))

