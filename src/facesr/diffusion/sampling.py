"""One entry point that runs any declared sampler on any diffusion model.

A model hands the samplers a ``DiffusionProcess``: its denoiser D(x, sigma) -> x0 in VE
coordinates, its noise grid and prior, and, for the SDE samplers, its SDE and (score models) its
native score. Grid samplers get the denoiser and a sigma grid; "sde" samplers (``facesr.diffusion.pc``)
get the process itself. A warm start (strength < 1) noises an estimate to the starting level instead
of drawing the prior.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from facesr.diffusion.wrappers import Denoiser, gradient_guided, guided
from facesr.diffusion.noise import randn_like
from facesr.diffusion.samplers import SAMPLERS
from facesr.diffusion.sde import SDE, ScoreFn


@dataclass
class DiffusionProcess:
    denoiser: Denoiser
    sigma_grid: Callable[..., torch.Tensor]  # (steps, strength, karras) -> decreasing sigmas ending in 0
    prior_std_ve: float  # std of the prior in VE coordinates
    sde: SDE | None = None  # for the "sde" samplers (SR3: the VP SDE of its linear schedule)
    score: ScoreFn | None = None  # the native score in the SDE's coordinates; None: Tweedie from the denoiser

    def guided(self, null: "DiffusionProcess", weight: float) -> "DiffusionProcess":
        """Classifier-free guidance: D + w (D - D_null), and the same extrapolation of the score."""
        score = None if self.score is None else guided(self.score, null.score, weight)
        return DiffusionProcess(guided(self.denoiser, null.denoiser, weight), self.sigma_grid, self.prior_std_ve,
                                self.sde, score)

    def gradient_guided(self, objective: Callable, weight: float) -> "DiffusionProcess":
        """Guidance by the gradient of ``objective`` of the denoised estimate (``wrappers.gradient_guided``);
        the SDE samplers then take the score from the guided denoiser (Tweedie)."""
        return DiffusionProcess(gradient_guided(self.denoiser, objective, weight), self.sigma_grid, self.prior_std_ve,
                                self.sde, None)


def sample(process: DiffusionProcess, like: torch.Tensor, options, estimate: torch.Tensor | None = None,
           generator=None) -> torch.Tensor:
    """x0 (VE coordinates) with ``options.sampler`` at ``options.steps`` and ``options.strength``;
    ``estimate``: the x0 to warm-start from (strength < 1)."""
    spec = SAMPLERS.get(options.sampler)
    noise = randn_like(like, generator)
    if spec.grid == "sde":
        return spec.fn(process, noise, options.steps, options.strength, estimate, generator, **spec.kwargs(options))
    sigmas = process.sigma_grid(options.steps, options.strength, spec.grid == "karras")
    x = estimate + float(sigmas[0]) * noise if options.strength < 1 else noise * process.prior_std_ve
    return spec.fn(process.denoiser, x, sigmas, generator=generator, **spec.kwargs(options))
