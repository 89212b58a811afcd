"""Regression SR networks: MSRResNet and EDSR (as in BasicSR), for any integer scale.

Both take the small LR image (B, 3, h, w) in [0, 1] and return (B, 3, h*s, w*s).
The upsampler factors the scale into x2 and x3 pixel-shuffle stages (x8 = three x2
stages); any other prime factor gets one stage of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facesr.config import ConfigValueError
from facesr.errors import FacesrError
from facesr.nets import NETS

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def pixel_shuffle_factors(scale: int) -> list[int]:
    if scale < 1 or int(scale) != scale:
        raise FacesrError(f"scale must be a positive integer, got {scale}")
    factors, n = [], int(scale)
    for p in (2, 3):
        while n % p == 0:
            factors.append(p)
            n //= p
    if n > 1:
        factors.append(n)
    return factors


class ResidualBlockNoBN(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus the identity (no batch norm)."""

    def __init__(self, num_feat: int, res_scale: float = 1.0, init_scale: float | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.res_scale = res_scale
        if init_scale is not None:  # MSRResNet: Kaiming init scaled down (BasicSR default_init_weights)
            for conv in (self.conv1, self.conv2):
                nn.init.kaiming_normal_(conv.weight)
                conv.weight.data.mul_(init_scale)
                nn.init.zeros_(conv.bias)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x))) * self.res_scale


def upsampler(num_feat: int, scale: int, act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for f in pixel_shuffle_factors(scale):
        layers += [nn.Conv2d(num_feat, num_feat * f * f, 3, 1, 1), nn.PixelShuffle(f)]
        if act:
            layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


@dataclass
class RegressionNetConfig:
    arch: str = "msrresnet"  # or "edsr"
    num_feat: int = 64
    num_blocks: int = 16
    res_scale: float = 1.0  # EDSR only

    def __post_init__(self):
        if self.arch not in NETS:
            raise ConfigValueError("arch", f"must be one of {', '.join(map(repr, NETS.names()))}, got {self.arch!r}")
        if not _whole(self.num_feat) or self.num_feat < 1:
            raise ConfigValueError("num_feat", f"must be an integer of at least 1, got {self.num_feat!r}")
        if not _whole(self.num_blocks) or self.num_blocks < 0:
            raise ConfigValueError("num_blocks", f"must be an integer of at least 0, got {self.num_blocks!r}")
        if not isinstance(self.res_scale, (int, float)) or not math.isfinite(self.res_scale) or self.res_scale <= 0:
            raise ConfigValueError("res_scale", f"must be a positive number, got {self.res_scale!r}")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class MSRResNet(nn.Module):
    """SRResNet without batch norm; adds the bilinear upsampling of the input (BasicSR MSRResNet)."""

    def __init__(self, num_feat=64, num_blocks=16, scale=4):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat, init_scale=0.1) for _ in range(num_blocks)])
        self.upsample = upsampler(num_feat, scale, act=True)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        for conv in (self.conv_first, self.conv_hr, self.conv_last, *[m for m in self.upsample if isinstance(m, nn.Conv2d)]):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        out = self.upsample(self.body(feat))
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


class EDSR(nn.Module):
    """EDSR (BasicSR): mean-shifted input x255, residual body with a long skip, pixel-shuffle upsampler."""

    def __init__(self, num_feat=64, num_blocks=16, scale=4, res_scale=1.0, img_range=255.0):
        super().__init__()
        self.img_range = img_range
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_blocks)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = upsampler(num_feat, scale, act=False)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x):
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / self.img_range + self.mean


@NETS.register("msrresnet")
def build_msrresnet(cfg: RegressionNetConfig, scale: int) -> nn.Module:
    return MSRResNet(cfg.num_feat, cfg.num_blocks, scale)


@NETS.register("edsr")
def build_edsr(cfg: RegressionNetConfig, scale: int) -> nn.Module:
    return EDSR(cfg.num_feat, cfg.num_blocks, scale, cfg.res_scale)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
