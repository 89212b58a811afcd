"""What every conditional diffusion SR model shares: the LR protocol and the diffusion variable.

The condition is up(LR) in [0, 1]; the diffused variable x0 is either HR (``target = "image"``,
in [-1, 1]) or the scaled residual HR - up(LR) (``target = "residual"``). With k stacked frames
(MF-SR3, ``unet.cond_images = k``) the condition is all k upsampled frames and the target is the
middle one (index k // 2): the residual is taken against that frame. Needs ``self.cfg`` with
operator, scale, target, residual_scale; ``self.net`` with ``downsampling``; ``self.operator``.
"""

from __future__ import annotations

import torch

from facesr.config import from_dict, to_dict
from facesr.data.datasets import middle_channels, middle_frame
from facesr.data.resample import quantize


class DiffusionSRMixin:
    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        """Upsampled LR in [0, 1] (the network's condition image)."""
        return self.operator.up(lr).clamp(0, 1)

    def target_frame(self, up: torch.Tensor) -> torch.Tensor:
        """The upsampled image the output corresponds to: ``up`` itself, or its middle frame."""
        return middle_frame(up)

    def adapt_init_state(self, state: dict) -> dict:
        """Weights of a single-frame model made to fit this k-frame model (``init_from``): the input
        convolution's condition weights go to the middle frame, the other frames' weights start at 0,
        so training starts from exactly the single-frame model applied to the middle frame."""
        key = "net.unet.conv_in.weight"
        k, w = self.cfg.unet.cond_images, state.get(key)
        if k == 1 or w is None or w.shape[1] != 6:
            return state
        new = torch.zeros(w.shape[0], 3 * k + 3, *w.shape[2:], dtype=w.dtype)
        new[:, middle_channels(k)] = w[:, :3]
        new[:, 3 * k :] = w[:, 3:]
        return {**state, key: new}

    def encode(self, hr: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.cfg.target == "image":
            return hr * 2 - 1
        return (hr - self.target_frame(up)) * 2 * self.cfg.residual_scale

    def decode(self, x0: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.cfg.target == "image":
            return (x0 + 1) / 2
        return self.target_frame(up) + x0 / (2 * self.cfg.residual_scale)

    def degrade(self, hr: torch.Tensor, keys=None, seed: int = 0):
        """LR for HR images with the model's operator, quantised to 8 bits; deterministic (record None)."""
        return quantize(self.operator.down(hr)), None

    def input_problem(self, h: int, w: int) -> str | None:
        """Why an LR image of h x w cannot be processed, or None."""
        div, s = self.net.downsampling, self.cfg.scale
        if (h * s) % div or (w * s) % div:
            return f"{w}x{h} input gives a {w * s}x{h * s} output, which must be divisible by {div}"
        return None

    @torch.no_grad()
    def super_resolve(self, lr, sampler="ddim", steps=50, eta=None, generator=None, vector=None,
                      precision="fp32", strength=1.0, init=None, pc=None, guidance=0.0):
        """LR (B, 3k, h, w) in [0, 1] (k = cond_images stacked frames) to SR (B, 3, h*s, w*s) in [0, 1], with any sampler of
        ``facesr.diffusion.dispatch`` (``pc``: its PCOptions for "pc" / "ode").

        ``generator``: one torch.Generator, or a list with one per sample.
        ``strength`` < 1 warm-starts: sampling begins at that fraction of the noise schedule from a
        noised fast estimate ``init`` (an HR-size image in [0, 1]; default: bicubic up(LR)),
        skipping the high-noise steps where a network is least reliable.
        ``guidance`` w > 0 (FASR): classifier-free guidance on the identity vector, D(v) + w (D(v) - D(0)),
        two network evaluations per step; the zero vector is the null identity a model sees in training
        with ``data.vector_dropout``.
        """
        from facesr.diffusion import dispatch
        from facesr.diffusion.denoiser import guided
        from facesr.errors import FacesrError

        problem = self.input_problem(lr.shape[-2], lr.shape[-1])
        if problem:
            raise FacesrError(problem)
        up = self.condition(lr)
        frame = self.target_frame(up)
        estimate = self.encode(frame if init is None else init.to(up), up) if strength < 1 else None
        denoiser = self.denoiser(up, vector, precision=precision)
        if guidance and vector is not None:
            denoiser = guided(denoiser, self.denoiser(up, torch.zeros_like(vector), precision=precision), guidance)
        x0 = dispatch.sample(denoiser, frame, sampler, steps, self.sigma_grid,
                             self.prior_std_ve(), strength, estimate, generator, eta, self.sde_view(), pc)
        return self.decode(x0, up).clamp(0, 1)

    def network_evaluations(self, opts) -> int:
        guiding = opts.guidance and self.cfg.unet.vector_dim
        return 2 * opts.network_evaluations if guiding else opts.network_evaluations

    def config_dict(self) -> dict:
        return {"method": self.method, "config": to_dict(self.cfg)}

    @classmethod
    def from_config_dict(cls, data: dict, where: str = "config.json"):
        return cls(from_dict(cls.config_class, data["config"], where))
