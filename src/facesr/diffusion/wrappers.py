"""Parameterisations: wrappers that turn a backbone network into a denoiser or a score.

The backbone (a UNet) knows nothing of noise levels beyond its time input; these wrappers own the
preconditioning (EDM / k-diffusion style):

- ``EpsDenoiser``: a DDPM epsilon-network (SR3) as the denoiser D(x, sigma) -> x0 in VE coordinates;
- ``VEScore``: a VE score network, s = F(c_in x, sigma) (the backbone divides by sigma itself,
  NCSN++'s ``scale_by_sigma``), optionally EDM-preconditioned;
- ``EpsScore``: a VP / subVP epsilon-network as the score s = -F(x_t, 999 t) / std(t);
- ``guided``: classifier-free guidance of any of them;
- ``gradient_guided``: guidance of a denoiser by the gradient of a differentiable objective of its output.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from facesr.diffusion.sde import SDE, bcast


class Denoiser(Protocol):
    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor: ...


class EpsDenoiser:
    """A DDPM epsilon-network seen as a denoiser in VE coordinates.

    ``eps_fn(x_t, sqrt_gamma)`` predicts the noise of the DDPM state
    x_t = sqrt_gamma * x0 + sqrt(1 - gamma) * eps. With x = x_t / sqrt_gamma and
    sigma^2 = (1 - gamma) / gamma we have x = x0 + sigma * eps, so
    x0 = x - sigma * eps. ``clip`` optionally bounds x0 (SR3 clamps to [-1, 1]).
    """

    def __init__(self, eps_fn: Callable, clip: Callable | None = None):
        self.eps_fn = eps_fn
        self.clip = clip
        self.evaluations = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        sqrt_gamma = (1 / torch.sqrt(1 + sigma**2)).to(x.dtype)
        x_t = x * sqrt_gamma.view(-1, 1, 1, 1)
        eps = self.eps_fn(x_t, sqrt_gamma).to(x.dtype)
        self.evaluations += 1
        x0 = x - sigma.to(x.dtype).view(-1, 1, 1, 1) * eps
        return self.clip(x0) if self.clip is not None else x0


def guided(cond: Callable, null: Callable, weight: float) -> Callable:
    """Classifier-free guidance (Ho & Salimans 2022): f_c + w (f_c - f_null) for a denoiser or a score.

    ``cond`` sees the condition, ``null`` the null condition; w = 0 gives ``cond`` itself. Since
    D = x + sigma^2 * score, guiding the denoiser and guiding the score are the same extrapolation.
    """

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x0 = cond(x, sigma)
        return x0 + weight * (x0 - null(x, sigma))

    return denoiser


def gradient_guided(denoiser: Callable, objective: Callable, weight: float) -> Callable:
    """Guidance by the gradient of a differentiable objective of the denoised estimate:
    D' = D + w sigma g / rms(g), with g = grad f(D) per image (D's own Jacobian is not taken).

    The step is scale-free: it moves each estimate by w times the current noise level (root mean square
    over its pixels) up the objective, so it fades as sampling resolves the image. ``objective(x0) ->
    (B,)`` must be differentiable in x0 (e.g. the cosine of a face network's embedding of the decoded
    image to a target); a step costs one network evaluation plus one backward pass of the objective.
    """

    def denoiser_(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x0 = denoiser(x, sigma)
        with torch.enable_grad():
            z = x0.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(objective(z).sum(), z)
        rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
        s = torch.as_tensor(sigma, dtype=x0.dtype, device=x0.device).reshape(-1, 1, 1, 1)
        return x0 + weight * s * grad / rms

    return denoiser_


class VEScore:
    """s(x, t) for a VE backbone F(x_in, sigma) that returns F / sigma. ``input_scaling``: feed
    c_in x with c_in = 1 / sqrt(sigma^2 + sd^2). ``preconditioning = "edm"``: D = c_skip x + c_out F
    with c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), and s = (D - x) / sigma^2."""

    def __init__(self, sde: SDE, input_scaling: bool = True, preconditioning: str = "score", sigma_data: float = 0.5):
        self.sde, self.input_scaling, self.preconditioning, self.sd = sde, input_scaling, preconditioning, sigma_data

    def __call__(self, backbone: Callable, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        sd = self.sd
        sigma = self.sde.sigma(t)
        x_in = x_t / bcast(torch.sqrt(sigma**2 + sd**2), x_t) if self.input_scaling else x_t
        out = backbone(x_in, sigma).float()  # F / sigma: the backbone divides by sigma itself
        if self.preconditioning == "score":
            return out
        # (D - x) / sigma^2 with D = c_skip x + c_out F and F = sigma out, simplified
        v = bcast(sigma, x_t) ** 2 + sd**2
        return (sd * out / v.sqrt() - x_t / v).float()


class EpsScore:
    """s(x_t, t) = -F(x_t, 999 t) / std(t) for a VP / subVP epsilon backbone."""

    def __init__(self, sde: SDE):
        self.sde = sde

    def __call__(self, backbone: Callable, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -backbone(x_t, 999 * t).float() / bcast(self.sde.std(t), x_t)
