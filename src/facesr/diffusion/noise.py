"""Noise that does not depend on batching or device."""

from __future__ import annotations

import torch


def randn_like(x: torch.Tensor, generator=None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn on the CPU (same numbers on any device).

    ``generator`` may be one torch.Generator or a list with one per sample, which
    makes each sample's noise independent of how inputs were batched.
    """
    if isinstance(generator, (list, tuple)):
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in generator])
    else:
        noise = torch.randn(x.shape, generator=generator)
    return noise.to(device=x.device, dtype=x.dtype)
