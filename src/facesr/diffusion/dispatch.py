"""One entry point that runs any sampler on any diffusion model.

Grid samplers (DDIM, ancestral, Euler, Heun, DPM-Solver++) need the model's denoiser and a sigma
grid; the SDE samplers ("pc", "ode") need the denoiser and an SDE whose marginals match the model's
noise levels (a score model's own SDE; for SR3's linear DDPM schedule, the VP SDE it discretises).
A warm start (strength < 1) noises an estimate to the starting level instead of drawing the prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facesr.diffusion.samplers import KARRAS_SAMPLERS, SAMPLERS, randn_like
from facesr.errors import FacesrError

SDE_SAMPLERS = ("pc", "ode")
ALL_SAMPLERS = tuple(sorted(SAMPLERS)) + SDE_SAMPLERS


@dataclass
class PCOptions:
    """Options of the SDE samplers (dossier 1.6): predictor, corrector, the snr "r", ODE method."""

    predictor: str = "reverse_diffusion"  # or "euler_maruyama", "none"
    corrector: str = "langevin"  # or "none"
    snr: float = 0.075  # r: larger is smoother (higher PSNR), can lower identity similarity
    corrector_steps: int = 1
    probability_flow: bool = False
    ode_method: str = "heun"  # or "euler", "rk45"


def sde_evaluations(sampler: str, steps: int, pc: PCOptions) -> int:
    """Network evaluations of an SDE sampler with ``steps`` grid points (rk45: adaptive, reported as steps)."""
    if sampler == "pc":
        return steps * (1 + (pc.corrector_steps if pc.corrector != "none" else 0))
    return 2 * steps if pc.ode_method == "heun" else steps


def sample(denoiser, like: torch.Tensor, sampler: str, steps: int, sigma_grid, prior_std_ve: float,
           strength: float = 1.0, estimate: torch.Tensor | None = None, generator=None, eta=None,
           sde=None, pc: PCOptions | None = None) -> torch.Tensor:
    """x0 (VE coordinates) from a denoiser D(x, sigma) -> x0.

    ``sigma_grid(steps, strength, karras)``: the model's decreasing noise grid ending in 0.
    ``prior_std_ve``: std of the prior in VE coordinates. ``estimate``: x0 to warm-start from.
    """
    noise = randn_like(like, generator)
    if sampler in SDE_SAMPLERS:
        return _sample_sde(denoiser, noise, sampler, steps, strength, estimate, generator, sde, pc or PCOptions())
    if sampler not in SAMPLERS:
        raise FacesrError(f"unknown sampler {sampler!r}; choose one of {', '.join(ALL_SAMPLERS)}")
    sigmas = sigma_grid(steps, strength, sampler in KARRAS_SAMPLERS)
    x = estimate + float(sigmas[0]) * noise if strength < 1 else noise * prior_std_ve
    kwargs = {"eta": eta} if sampler == "ddim" and eta is not None else {}
    return SAMPLERS[sampler](denoiser, x, sigmas, generator=generator, **kwargs)


def _sample_sde(denoiser, noise, sampler, steps, strength, estimate, generator, sde, pc: PCOptions):
    from facesr.diffusion.pc import ode_sample, pc_sample, pc_time_grid
    from facesr.diffusion.sde import bcast, score_from_denoiser

    if sde is None:
        raise FacesrError(f"sampler {sampler!r} needs an SDE view of the model (SR3: linear schedule only)")
    t0 = None
    if strength < 1:
        t0 = strength * sde.T
        if sampler == "pc":
            t0 = pc_time_grid(sde, steps, t0)[1][0]  # noise exactly to the first grid time
        t = torch.full((noise.shape[0],), t0, dtype=torch.float64)
        x = bcast(sde.mean_coef(t), noise) * estimate + bcast(sde.std(t), noise) * noise
    else:
        x = noise * sde.prior_std
    score = score_from_denoiser(denoiser, sde)
    if sampler == "ode":
        x0, _ = ode_sample(score, sde, x, method=pc.ode_method, steps=steps, t_start=t0)
        return x0
    x, _ = pc_sample(score, sde, x, predictor=pc.predictor, corrector=pc.corrector, snr=pc.snr, n_steps=pc.corrector_steps,
                     probability_flow=pc.probability_flow, steps=steps, generator=generator, t_start=t0)
    t_end = torch.full((x.shape[0],), sde.eps, dtype=torch.float64)
    return x / bcast(sde.mean_coef(t_end), x)  # the last x_mean is ~ a(eps) x0
