"""Moving a restored face toward an identity without leaving its LR: projected gradient ascent on dlib's cosine.

Each step moves the image up the gradient of cos(dlib(x), target), smoothed by a Gaussian (the identity a face
network reads sits in the face's coarse structure; the unsmoothed gradient also writes thin line textures), scaled
so that the step's root mean square over the pixels is ``step`` (of the [0, 1] range), and then projects the image
back onto the faces its LR allows (``LRProtocol.project``: the LR band is the LR's, only detail above it moves).

It uses dlib's network, so what it moves toward must be judged by another: an output refined this way names dlib
among its model's ``identity_networks``. The ArcFace judge responds to the change
(benchmarks/results/refsr-vae-x8.md, "identity refinement"), also when the chip is shrunk to 32 px before judging,
so the judge reads a coarse change of the face, not only a fine pattern that fools it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facesr.errors import FacesrError


@dataclass
class IdentityRefine:
    """``steps`` projected gradient steps (0: off) of root-mean-square size ``step`` each, gradient smoothed by a
    Gaussian of ``blur`` pixels (0: none), ``rounds`` of back-projection after each step."""

    steps: int = 0
    step: float = 0.0025
    blur: float = 1.5
    rounds: int = 3

    def __post_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise FacesrError(f"identity_refine.steps must be an integer >= 0, got {self.steps!r}")
        if not isinstance(self.rounds, int) or isinstance(self.rounds, bool) or self.rounds < 1:
            raise FacesrError(f"identity_refine.rounds must be an integer >= 1, got {self.rounds!r}")
        for name in ("step", "blur"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e3:
                raise FacesrError(f"identity_refine.{name} must be a number >= 0, got {value!r}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), reflected borders; ``sigma`` 0 returns ``x``."""
    if sigma <= 0:
        return x
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def toward_identity(x: torch.Tensor, lr: torch.Tensor, target: torch.Tensor, protocol, refine: IdentityRefine,
                    network=None) -> torch.Tensor:
    """``x`` (B, 3, H, W) in [0, 1] after ``refine.steps`` steps up cos(dlib(x), target), each followed by
    back-projection onto ``lr`` (B, 3, h, w) with ``protocol`` (an ``LRProtocol`` with a known operator). Rows
    of ``target`` (B, 128) that are all zero (the null identity) are left as they are. ``network``: the
    differentiable embedder (default: dlib's port, ``identity.loss.identity_network``). Computed in fp32."""
    if not refine.steps:
        return x
    if network is None:
        from facesr.identity.loss import identity_network

        network = identity_network(x.device)
    target = F.normalize(target.float().to(x.device), dim=1)
    moving = (target.abs().sum(1) > 0).view(-1, 1, 1, 1)
    lr = lr.float().to(x.device)
    with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
        for _ in range(refine.steps):
            z = x.detach().float().requires_grad_(True)
            (grad,) = torch.autograd.grad((network.embed_chips(z) * target).sum(), z)
            grad = gaussian_blur(grad, refine.blur)
            rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
            stepped = protocol.project(z.detach() + refine.step * grad / rms, lr, refine.rounds).clamp(0, 1)
            x = torch.where(moving, stepped, x.float())
    return x.detach()
