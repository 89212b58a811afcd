"""The identity loss (GFPGAN-style): 1 - cosine of dlib's ResNet descriptors of the SR output and the HR.

The network is the frozen PyTorch port (``dlib_resnet``), loaded once per device and kept outside the
model being trained: it is neither saved with the model nor seen by its optimiser or EMA. A model
trained with it names "dlib" among its ``identity_networks``, and its dlib figures are then marked as
judged by the network it was trained with (README, "two judges").
"""

from __future__ import annotations

import torch

NETWORK = "dlib"  # the embedder spec whose network the loss uses
_nets: dict[str, torch.nn.Module] = {}


def identity_network(device) -> torch.nn.Module:
    key = str(device)
    if key not in _nets:
        from facesr.identity.dlib_resnet import load_dlib_resnet

        _nets[key] = load_dlib_resnet().to(device)
    return _nets[key]


def identity_losses(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """1 - cos(dlib(sr), dlib(hr)) per chip, (N,); chips (N, 3, H, W) in [0, 1], computed in fp32.
    Gradients reach ``sr`` only."""
    net = identity_network(sr.device)
    with torch.autocast(sr.device.type, enabled=False):
        with torch.no_grad():
            target = net.embed_chips(hr.float())
        return 1 - (net.embed_chips(sr.float()) * target).sum(1)


def identity_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The mean of ``identity_losses`` over the batch."""
    return identity_losses(sr, hr).mean()
