"""What every conditional diffusion SR method shares: the LR condition, the diffusion variable, sampling.

The condition is up(LR) in [0, 1]; the diffused variable x0 is either HR (``target = "image"``,
in [-1, 1]) or the scaled residual HR - up(LR) (``target = "residual"``). With k stacked frames
(MF-SR3, ``unet.cond_images = k``) the condition is all k upsampled frames and the target is the
middle one (index k // 2): the residual is taken against that frame. A subclass builds its network
in ``self.net`` and hands the samplers its ``process(up, vector, precision)``.

Sampler distillation (``Distillation``, in every diffusion method's config): with ``distill_from`` the training
loss is a sampler's, not the data's. One DDIM step of this model from a warm start is pulled toward the frozen
teacher's ``distill_steps``-step DDIM draw from the same noisy start, so a few-step recipe averages samples that
look like multi-step draws. ``distill_denoise_weight`` w > 0 adds w x the model's own denoising loss on the same
batch, to keep the student a model of the data (one trained on the distillation loss alone makes worse multi-step
draws than its teacher).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facesr.config import ConfigValueError, at_least
from facesr.diffusion.sampling import DiffusionProcess, sample
from facesr.errors import FacesrError
from facesr.io.frames import middle_channels, middle_frame
from facesr.methods.base import Conditions, Needs, SRMethod


@dataclass(kw_only=True)
class Distillation:
    """The sampler-distillation fields of a diffusion method's config."""

    # the model (name or folder; the same kind, network and target) whose ``distill_steps``-step DDIM draw from
    # ``distill_strength`` this one learns to make in one step from the same noisy start (set init_from to it)
    distill_from: str | None = None
    distill_steps: int = 8
    distill_strength: float = 0.5
    # w: plus w x this model's own denoising loss (the data's) on the same batch; 0 = the distillation loss alone
    distill_denoise_weight: float = 0.0
    # the face networks the teacher was conditioned on, trained with or guided by, recorded at step 0: its draws
    # carry them, so a judge built on one is not independent of the student either
    teacher_identity_networks: tuple[str, ...] = ()

    def check_distillation(self) -> None:
        if isinstance(self.distill_steps, bool) or not isinstance(self.distill_steps, int) or self.distill_steps < 1:
            raise ConfigValueError("distill_steps", f"must be an integer >= 1, got {self.distill_steps!r}")
        if not (isinstance(self.distill_strength, (int, float)) and 0 < self.distill_strength < 1):
            raise ConfigValueError("distill_strength", f"must be in (0, 1) (a warm start), got {self.distill_strength!r}")
        at_least(self, "distill_denoise_weight", 0)


class DiffusionSR(SRMethod):
    uses_sampler = True
    bytes_per_output_pixel = 2200  # the UNet's activations (see SRMethod.memory_per_face)

    @property
    def needs(self) -> Needs:
        u = self.cfg.unet
        return Needs(vector_dim=u.vector_dim, vector_embedder=u.vector_embedder if u.vector_dim else None,
                     frames=u.cond_images)

    def process(self, up: torch.Tensor, vector=None, precision: str = "fp32") -> DiffusionProcess:
        raise NotImplementedError

    def condition_image(self, lr: torch.Tensor) -> torch.Tensor:
        """up(LR), the condition and the frame of the residual: the LR protocol's upsampling by default."""
        return self.upsample(lr)

    def target_frame(self, up: torch.Tensor) -> torch.Tensor:
        """The upsampled image the output corresponds to: ``up`` itself, or its middle frame."""
        return middle_frame(up)

    # the config fields that define the sampled process: a teacher must agree with its student on them
    process_fields: tuple[str, ...] = ("unet", "target", "residual_scale", "scale", "operator")

    frame_init = "middle"  # how adapt_init_state spreads single-frame weights (SR3: its config's frame_init)

    def adapt_init_state(self, state: dict) -> dict:
        """Weights of a single-frame model made to fit this k-frame model (``init_from``). "middle": the input
        convolution's condition weights go to the middle frame, the other frames' weights start at 0, so
        training starts from exactly the single-frame model applied to the middle frame. "spread": every
        frame gets 1/k of them, so it starts from the single-frame model applied to the frames' mean."""
        key = "net.unet.conv_in.weight"
        k, w = self.cfg.unet.cond_images, state.get(key)
        if k == 1 or w is None or w.shape[1] != 6:
            return state
        new = torch.zeros(w.shape[0], 3 * k + 3, *w.shape[2:], dtype=w.dtype)
        if self.frame_init == "spread":
            new[:, : 3 * k] = w[:, :3].repeat(1, k, 1, 1) / k
        else:
            new[:, middle_channels(k)] = w[:, :3]
        new[:, 3 * k :] = w[:, 3:]
        return {**state, key: new}

    # --- sampler distillation ---------------------------------------------------------
    @property
    def identity_networks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(super().identity_networks + tuple(self.cfg.teacher_identity_networks)))

    def prepare_training(self) -> list[str]:
        """At step 0: load and check ``distill_from``, and record the face networks it carries."""
        if self.cfg.distill_from is None:
            return []
        teacher = self.teacher(torch.device("cpu"))
        self.cfg.teacher_identity_networks = tuple(teacher.identity_networks)
        return [f"teacher: {self.cfg.distill_from}, {self.cfg.distill_steps} DDIM steps from strength "
                f"{self.cfg.distill_strength}, frozen"]

    def carry_records(self, saved: dict) -> None:
        self.cfg.teacher_identity_networks = tuple(saved.get("config", {}).get("teacher_identity_networks", ()))

    def teacher(self, device) -> "DiffusionSR":
        """``distill_from``, frozen, loaded once and kept outside this module (not trained, not saved)."""
        cached = self.__dict__.get("_teacher")
        if cached is None:
            from facesr.methods.hub import load_model

            cached = load_model(self.cfg.distill_from, flag="distill_from")
            differ = ["method"] if cached.method != self.method else []
            differ += [k for k in self.process_fields if getattr(self.cfg, k) != getattr(cached.cfg, k, None)]
            if differ:
                raise FacesrError(f"distill_from {self.cfg.distill_from}: not this model's kind of {self.method} "
                                  f"model (differs in {', '.join(differ)})")
            cached.eval().requires_grad_(False)
            self.__dict__["_teacher"] = cached
        return cached.to(device)

    # --- training --------------------------------------------------------------------------
    def training_condition(self, batch: dict) -> torch.Tensor:
        """up(LR) of a training batch, the condition the network sees."""
        return batch["up"]

    def denoising_loss(self, hr, up, generator=None, vector=None) -> torch.Tensor:
        """The method's own diffusion loss of HR given the condition ``up``."""
        raise NotImplementedError

    def training_loss(self, batch: dict, generator=None):
        """The denoising loss; with ``distill_from``, the distillation loss (plus ``distill_denoise_weight`` x the
        denoising loss). ``forward`` calls it, so DDP synchronises gradients."""
        up, vector = self.training_condition(batch), batch.get("vector")
        if self.cfg.distill_from is None:
            return self.denoising_loss(batch["hr"], up, generator, vector)
        loss = self.distill_loss(up, generator, vector)
        w = self.cfg.distill_denoise_weight
        return loss + w * self.denoising_loss(batch["hr"], up, generator, vector) if w else loss

    def one_step_draws(self, options) -> bool:
        """Whether one DDIM step (``options``) makes a draw rather than an estimate of the mean: this model was
        distilled to make its teacher's multi-step draws in one step, and ``options`` start where it learnt to."""
        return (self.cfg.distill_from is not None and options.sampler == "ddim" and options.steps == 1
                and abs(options.strength - self.cfg.distill_strength) < 1e-9)

    def distill_loss(self, up, generator=None, vector=None):
        """L1 in x0 between this model's one step and the teacher's ``distill_steps``-step DDIM draw, both from
        the same start: the warm-start estimate noised to ``distill_strength`` of the noise range."""
        from facesr.diffusion.noise import randn_like
        from facesr.diffusion.samplers import sample_ddim

        estimate = self.encode(self.target_frame(up), up)
        sigmas = self.sigma_grid(self.cfg.distill_steps, self.cfg.distill_strength)
        x = estimate + float(sigmas[0]) * randn_like(estimate, generator)
        target = sample_ddim(self.teacher(up.device).process(up, vector).denoiser, x, sigmas)  # no_grad inside
        sigma = torch.full((x.shape[0],), float(sigmas[0]), dtype=torch.float64)
        return (self.process(up, vector).denoiser(x, sigma) - target).abs().mean()

    # --- data <-> diffusion variable ------------------------------------------------------
    def encode(self, hr: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.cfg.target == "image":
            return hr * 2 - 1
        return (hr - self.target_frame(up)) * 2 * self.cfg.residual_scale

    def decode(self, x0: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.cfg.target == "image":
            return (x0 + 1) / 2
        return self.target_frame(up) + x0 / (2 * self.cfg.residual_scale)

    def input_problem(self, h: int, w: int) -> str | None:
        div, s = self.net.downsampling, self.cfg.scale
        if (h * s) % div or (w * s) % div:
            return f"{w}x{h} input gives a {w * s}x{h * s} output, which must be divisible by {div}"
        return None

    @torch.no_grad()
    def super_resolve(self, lr, conditions: Conditions | None = None, options=None, generator=None, init=None):
        """Any declared sampler (``options.sampler``, ``steps``, ``strength``, ``guidance``, ...).

        ``strength`` < 1 warm-starts: sampling begins at that fraction of the noise schedule from a
        noised fast estimate ``init`` (an HR-size image in [0, 1]; default: bicubic up(LR)), skipping
        the high-noise steps where a network is least reliable. ``guidance`` w > 0 (FASR):
        classifier-free guidance on the identity vector, D(v) + w (D(v) - D(0)), two network
        evaluations per step; the zero vector is the null identity a model sees in training with
        ``data.vector_dropout``. ``identity_gradient`` w > 0 (FASR on dlib vectors): gradient guidance
        toward the vector through the differentiable dlib ResNet (``identity_objective``). ``identity_scale`` s
        (FASR): the network sees s v, between the null identity (0) and the references' vector (1).
        """
        problem = self.input_problem(lr.shape[-2], lr.shape[-1])
        if problem:
            raise FacesrError(problem)
        vector = conditions.vector if conditions is not None else None
        if vector is not None and options.identity_scale != 1:
            vector = vector * options.identity_scale
        up = self.condition_image(lr)
        frame = self.target_frame(up)
        estimate = self.encode(frame if init is None else init.to(up), up) if options.strength < 1 else None
        process = self.process(up, vector, options.precision)
        if options.guidance and vector is not None:
            process = process.guided(self.process(up, torch.zeros_like(vector), options.precision), options.guidance)
        if options.identity_gradient:
            process = process.gradient_guided(self.identity_objective(vector, up), options.identity_gradient)
        x0 = sample(process, frame, options, estimate, generator)
        return self.decode(x0, up).clamp(0, 1)

    def identity_objective(self, vector, up: torch.Tensor):
        """x0 -> cos(dlib(decode(x0)), vector) per image, for ``identity_gradient``: the model's condition must
        be a dlib vector (the differentiable network is dlib's; any other vector lives in another space)."""
        from facesr.identity.loss import NETWORK, identity_network

        if vector is None or self.needs.vector_embedder != NETWORK:
            raise FacesrError(f"identity_gradient guides toward a {NETWORK} identity vector: {self.name} takes "
                              f"{self.needs.vector_embedder or 'none'}")
        net = identity_network(up.device)
        target = torch.nn.functional.normalize(vector.float(), dim=1)
        return lambda x0: (net.embed_chips(self.decode(x0, up)) * target).sum(1)  # unclamped: gradients everywhere

    def network_evaluations(self, options) -> int:
        guiding = options.guidance and self.cfg.unet.vector_dim
        return 2 * options.network_evaluations if guiding else options.network_evaluations
