"""Regression SR (MSRResNet / EDSR) as a saveable facesr model.

The LR protocol is either a deterministic operator (``operator``) or, for blind
models, a seeded second-order degradation (``degradation`` preset) applied to the
HR batch during training; evaluation draws it per image from the image's name, and
the drawn parameters are recorded so the test set can be regenerated exactly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import torch
from torch import nn

from facesr.config import from_dict, to_dict
from facesr.data.resample import make_operator, quantize
from facesr.errors import FacesrError
from facesr.models.hub import PretrainedMixin
from facesr.models.regression_nets import RegressionNetConfig, build_regression_net
from facesr.runtime import autocast


@dataclass
class RegressionConfig:
    net: RegressionNetConfig = field(default_factory=RegressionNetConfig)
    scale: int = 8
    hr_size: int = 128
    operator: str = "bicubic"  # deterministic LR protocol, and the upsampler for warm starts
    degradation: str | None = None  # "deepfacesr" or "realesrgan": blind second-order LR
    usm_target: bool = False  # L1 against the USM-sharpened target (the seed's choice; off by default)

    def __post_init__(self):
        make_operator(self.operator, self.scale)
        if self.degradation not in (None, "deepfacesr", "realesrgan"):
            raise FacesrError(f"degradation must be null, 'deepfacesr' or 'realesrgan', got {self.degradation!r}")


def name_seed(key: str, seed: int = 0) -> int:
    return (zlib.crc32(key.encode()) + 1_000_003 * seed) % (2**31 - 1)


class RegressionSR(PretrainedMixin, nn.Module):
    method = "regression"
    config_class = RegressionConfig

    def __init__(self, cfg: RegressionConfig):
        super().__init__()
        self.cfg = cfg
        self.net = build_regression_net(cfg.net, cfg.scale)
        self.operator = make_operator(cfg.operator, cfg.scale)
        self.degradation = None
        if cfg.degradation:
            from facesr.data.degradations import SecondOrderConfig, SecondOrderDegradation

            self.degradation = SecondOrderDegradation(SecondOrderConfig.preset(cfg.degradation, cfg.scale))

    def condition(self, lr: torch.Tensor) -> torch.Tensor:
        return self.operator.up(lr).clamp(0, 1)

    def degrade(self, hr: torch.Tensor, keys: list[str], seed: int = 0):
        """LR for HR images (B, 3, H, W) and the record of how it was made (None if deterministic)."""
        if self.degradation is None:
            return quantize(self.operator.down(hr)), None
        lrs, records = [], []
        for img, key in zip(hr, keys):
            lr, params = self.degradation(img[None], name_seed(key, seed))
            lrs.append(lr[0])
            records.append(params[0])
        return torch.stack(lrs), records

    def forward(self, batch: dict, generator=None):
        """L1 between the network output and the (optionally USM-sharpened) HR target."""
        hr = batch["hr"]
        if self.degradation is not None:
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            lr, _ = self.degradation(hr, seed)
        else:
            lr = batch["lr"]
        target = hr
        if self.cfg.usm_target:
            from facesr.data.degradations import usm_sharpen

            target = usm_sharpen(hr)
        return (self.net(lr).float() - target).abs().mean()

    @torch.no_grad()
    def super_resolve(self, lr, *_, precision="fp32", **__):
        """One forward pass; sampling options do not apply to a regression model."""
        with autocast(lr.device, precision):
            return self.net(lr).float().clamp(0, 1)

    def network_evaluations(self, opts) -> int:
        return 1  # one forward pass, whatever the sampling options

    def input_problem(self, h: int, w: int) -> str | None:
        return None  # fully convolutional: any size

    def config_dict(self) -> dict:
        return {"method": self.method, "config": to_dict(self.cfg)}

    @classmethod
    def from_config_dict(cls, data: dict, where: str = "config.json") -> "RegressionSR":
        return cls(from_dict(RegressionConfig, data["config"], where))
