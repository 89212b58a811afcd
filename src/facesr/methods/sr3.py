"""SR3: a conditional DDPM for face SR (Saharia et al.), as one saveable model.

The model owns everything inference and evaluation need: the network, the noise
schedule, the operator that made the LR images (so LR-consistency uses it), and
how HR images map to the diffusion variable x0:

- ``target = "image"`` (SR3 parity): x0 = HR in [-1, 1].
- ``target = "residual"`` (facesr default): x0 = residual_scale * (HR - up(LR)) in
  [-1, 1] units. The condition is unchanged; only the diffused variable is the
  detail bicubic misses, which trains much faster on a CPU budget.

With ``base`` (a regression network's architecture, saved with the model and frozen), up(LR) is that
network's output instead of bicubic: the condition, the warm start and the frame of the residual. The
model then diffuses only what the regression output misses, so its posterior mean starts at the
regression's and its samples add detail around it. ``base_from`` names the regression model whose
weights fill ``base`` when training starts; after that they travel in the model's own weights.

``distill_from`` (sampler distillation) is every diffusion method's: see ``facesr.methods.diffusion_sr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from facesr.config import ConfigValueError
from facesr.degrade.resample import make_operator
from facesr.diffusion.sampling import DiffusionProcess
from facesr.diffusion.schedules import DDPMConfig, DDPMSchedule
from facesr.diffusion.wrappers import EpsDenoiser
from facesr.errors import FacesrError
from facesr.methods.base import register_method
from facesr.methods.diffusion_sr import DiffusionSR, Distillation
from facesr.nets.regression import NETS, RegressionNetConfig
from facesr.nets.unet import ConditionalUNet, UNetConfig
from facesr.runtime import autocast


@dataclass
class SR3Config(Distillation):
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DDPMConfig = field(default_factory=DDPMConfig)
    operator: str = "bicubic"
    scale: int = 8
    hr_size: int = 128
    target: str = "residual"
    residual_scale: float = 4.0
    loss: str = "l1"  # SR3 uses L1 on epsilon
    per_batch_t: bool = False  # SR3 parity: one timestep per batch
    base: RegressionNetConfig | None = None  # residual over this frozen regression network's output
    base_from: str | None = None  # the regression model (name or folder) whose weights fill base at step 0
    # the face networks base_from was trained with (its identity_networks), recorded at step 0:
    # the model's outputs carry them, so a judge built on one is not independent of this model either
    base_identity_networks: tuple[str, ...] = ()
    identity_weight: float = 0.0  # x gamma x the identity loss of the denoised estimate against the HR
    # init_from a single-frame model into k frames: "middle" (its condition weights on the middle frame, the
    # others at 0: exactly that model at step 0) or "spread" (1/k of them on every frame: it starts by averaging)
    frame_init: str = "middle"

    def __post_init__(self):
        if self.base is not None and self.unet.cond_images != 1:
            raise FacesrError("base (a regression network under the diffusion) takes one frame; cond_images must be 1")
        if self.base_from is not None and self.base is None:
            raise FacesrError("base_from names the weights of base: set base (the regression network's architecture)")
        if self.unet.time_embedding != "positional":
            raise FacesrError("SR3 conditions on sqrt(gamma) with a positional embedding; set time_embedding 'positional'")
        if self.target not in ("image", "residual"):
            raise FacesrError(f"target must be 'image' or 'residual', got {self.target!r}")
        if self.loss not in ("l1", "l2"):
            raise FacesrError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.frame_init not in ("middle", "spread"):
            raise FacesrError(f"frame_init must be 'middle' or 'spread', got {self.frame_init!r}")
        if not (isinstance(self.identity_weight, (int, float)) and 0 <= self.identity_weight < float("inf")):
            raise ConfigValueError("identity_weight", f"must be a number >= 0, got {self.identity_weight!r}")
        self.check_distillation()
        if self.distill_from is not None and self.identity_weight > 0:
            raise FacesrError("distill_from and identity_weight: the distillation loss is the teacher's draw alone")
        make_operator(self.operator, self.scale)


@register_method("sr3")
class SR3(DiffusionSR):
    config_class = SR3Config
    process_fields = DiffusionSR.process_fields + ("base", "diffusion")

    def __init__(self, cfg: SR3Config):
        super().__init__(cfg)
        self.frame_init = cfg.frame_init
        self.net = ConditionalUNet(cfg.unet)
        self.schedule = DDPMSchedule(cfg.diffusion)
        self.base = None
        if cfg.base is not None:
            self.base = NETS.get(cfg.base.arch)(cfg.base, cfg.scale)
            self.base.requires_grad_(False)

    def condition_image(self, lr: torch.Tensor) -> torch.Tensor:
        """up(LR): bicubic, or the frozen base network's output (fp32, in [0, 1]). The base runs once per distinct
        LR of the batch: the K samples of a face share its pass."""
        if self.base is None:
            return self.upsample(lr)
        distinct, index = torch.unique(lr, dim=0, return_inverse=True)
        with torch.no_grad(), torch.autocast(lr.device.type, enabled=False):
            return self.base(distinct.float()).clamp(0, 1)[index]

    def prepare_training(self) -> list[str]:
        """At step 0: copy ``base_from``'s network weights into ``base`` (checked to be the same network); then
        the teacher of ``distill_from`` (``DiffusionSR.prepare_training``)."""
        lines = self._take_base() if self.base is not None and self.cfg.base_from is not None else []
        return lines + super().prepare_training()

    def _take_base(self) -> list[str]:
        from facesr.methods.hub import load_model

        src = load_model(self.cfg.base_from, flag="base_from")
        src_net = getattr(src.cfg, "net", None)
        if src.method != "regression" or src_net != self.cfg.base or src.scale != self.scale:
            raise FacesrError(f"base_from {self.cfg.base_from}: not a x{self.scale} regression model with the network "
                              f"of base ({self.cfg.base})")
        self.base.load_state_dict(src.net.state_dict())
        self.cfg.base_identity_networks = tuple(src.identity_networks)
        trained = f"; trained with {', '.join(src.identity_networks)}" if src.identity_networks else ""
        return [f"base: the network of {self.cfg.base_from}, frozen{trained}"]

    def carry_records(self, saved: dict) -> None:
        super().carry_records(saved)
        self.cfg.base_identity_networks = tuple(saved.get("config", {}).get("base_identity_networks", ()))

    # --- data <-> diffusion variable -------------------------------------------------
    def clip_fn(self, up: torch.Tensor):
        """Bound x0 so the decoded image stays in [0, 1] (SR3 clamps x0 to [-1, 1])."""
        if self.cfg.target == "image":
            return lambda x0: x0.clamp(-1, 1)
        frame = self.target_frame(up)
        lo = self.encode(torch.zeros_like(frame), up)
        hi = self.encode(torch.ones_like(frame), up)
        return lambda x0: torch.maximum(torch.minimum(x0, hi), lo)

    def noise_input(self, sqrt_gamma: torch.Tensor) -> torch.Tensor:
        """What the network's time embedding sees: noise_embedding_scale * sqrt(gamma)."""
        return sqrt_gamma.reshape(-1).float() * self.cfg.unet.noise_embedding_scale

    # --- training --------------------------------------------------------------------
    @property
    def identity_networks(self) -> tuple[str, ...]:
        from facesr.identity.loss import NETWORK

        trained = (NETWORK,) if self.cfg.identity_weight > 0 else ()
        return tuple(dict.fromkeys(super().identity_networks + trained + tuple(self.cfg.base_identity_networks)))

    def training_condition(self, batch: dict) -> torch.Tensor:
        return batch["up"] if self.base is None else self.condition_image(batch["lr"])

    def denoising_loss(self, hr, up, generator=None, vector=None):
        """SR3 epsilon loss with continuous noise levels sqrt(gamma) ~ U(sqrt_ab_t, sqrt_ab_{t-1}); with
        ``identity_weight`` w, plus w x mean(gamma x identity loss of the denoised face against the HR)."""
        from facesr.diffusion.losses import sr3_eps_loss

        x0 = self.encode(hr, up)
        cond = up * 2 - 1

        def eps_fn(x_t, sqrt_gamma):
            return self.net(x_t, self.noise_input(sqrt_gamma), cond, vector)

        x0_loss = self.identity_x0_loss(hr, up) if self.cfg.identity_weight > 0 else None
        return sr3_eps_loss(eps_fn, x0, self.schedule, generator, self.cfg.loss, self.cfg.per_batch_t, x0_loss)

    def identity_x0_loss(self, hr, up):
        """(x0_hat, gamma) -> w x mean(gamma x identity loss of the decoded face against ``hr``), w = identity_weight."""
        from facesr.identity.loss import identity_losses

        if hr.shape[-2:] != (self.hr_size, self.hr_size):
            raise FacesrError(f"identity_weight needs whole {self.hr_size}-px faces, not {hr.shape[-1]}-px patches: "
                              f"set data.patch_size to 0 or {self.hr_size}")

        def x0_loss(x0_hat, gamma):
            face = self.decode(x0_hat, up)  # not clamped: out-of-range pixels keep their gradient
            return self.cfg.identity_weight * (gamma * identity_losses(face, hr)).mean()

        return x0_loss

    # --- sampling --------------------------------------------------------------------
    def denoiser(self, up: torch.Tensor, vector=None, clip: bool = True, precision: str = "fp32") -> EpsDenoiser:
        cond = up * 2 - 1

        def eps_fn(x_t, sqrt_gamma):
            with autocast(up.device, precision):
                return self.net(x_t, self.noise_input(sqrt_gamma), cond, vector).float()

        return EpsDenoiser(eps_fn, self.clip_fn(up) if clip else None)

    def process(self, up, vector=None, precision: str = "fp32") -> DiffusionProcess:
        """The clipped epsilon denoiser; the SDE samplers see the VP SDE of a linear schedule through it."""
        return DiffusionProcess(self.denoiser(up, vector, precision=precision), self.sigma_grid, self.prior_std_ve(),
                                self.sde_view())

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

    def prior_std_ve(self) -> float:
        """The DDPM prior N(0, I) in VE coordinates: std sqrt(1 + sigma_{T-1}^2)."""
        return float(torch.sqrt(1 + self.schedule.sigmas()[-1] ** 2))
