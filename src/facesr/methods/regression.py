"""Regression SR (MSRResNet / EDSR) as a saveable facesr model.

The LR protocol is either a deterministic operator (``operator``) or, for blind
models, a seeded second-order degradation (``degradation`` preset) applied to the
HR batch during training; evaluation draws it per image from the image's name, and
the drawn parameters are recorded so the test set can be regenerated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from facesr.config import ConfigValueError
from facesr.degrade.protocol import LRProtocol
from facesr.degrade.resample import make_operator
from facesr.errors import FacesrError
from facesr.methods.base import Conditions, register_method, SRMethod
from facesr.nets.regression import NETS, RegressionNetConfig
from facesr.runtime import autocast


@dataclass
class RegressionConfig:
    net: RegressionNetConfig = field(default_factory=RegressionNetConfig)
    scale: int = 8
    hr_size: int = 128
    operator: str = "bicubic"  # deterministic LR protocol, and the upsampler for warm starts
    degradation: str | None = None  # blind LR: "deepfacesr"/"realesrgan" (second-order), "photo" (cut from a photo)
    usm_target: bool = False  # L1 against the USM-sharpened target (the seed's choice; off by default)
    # weight of the identity loss 1 - cos(dlib(SR), dlib(HR)) added to L1 (facesr.identity.loss); a model
    # trained with it is not judged independently by dlib
    identity_weight: float = 0.0

    def __post_init__(self):
        make_operator(self.operator, self.scale)
        if not (isinstance(self.identity_weight, (int, float)) and 0 <= self.identity_weight < float("inf")):
            raise ConfigValueError("identity_weight", f"must be a number >= 0, got {self.identity_weight!r}")
        if self.hr_size < 1 or self.hr_size % self.scale:
            raise ConfigValueError("hr_size", f"must be a positive multiple of the scale {self.scale}, got {self.hr_size}")
        if self.degradation is not None:
            from facesr.degrade.blind import DEGRADATIONS

            if self.degradation not in DEGRADATIONS:
                raise FacesrError(f"degradation must be null or one of {', '.join(map(repr, DEGRADATIONS.names()))}, "
                                  f"got {self.degradation!r}")


@register_method("regression")
class RegressionSR(SRMethod):
    config_class = RegressionConfig
    draws = False  # one deterministic forward pass

    def __init__(self, cfg: RegressionConfig):
        super().__init__(cfg)
        self.net = NETS.get(cfg.net.arch)(cfg.net, cfg.scale)

    @staticmethod
    def make_lr_protocol(cfg) -> LRProtocol:
        return LRProtocol.of(cfg.operator, cfg.scale, cfg.degradation)

    @property
    def identity_networks(self) -> tuple[str, ...]:
        from facesr.identity.loss import NETWORK

        return (NETWORK,) if self.cfg.identity_weight > 0 else ()

    def training_loss(self, batch: dict, generator=None):
        """L1 between the network output and the (optionally USM-sharpened) HR target, plus
        ``identity_weight`` x the identity loss against the HR; a blind model draws its LR for the batch
        from its protocol instead of the dataset's deterministic one."""
        hr = batch["hr"]
        lr = batch["lr"] if self.lr_protocol.deterministic else self.lr_protocol.training_lr(hr, generator)
        target = hr
        if self.cfg.usm_target:
            from facesr.degrade.second_order import usm_sharpen

            target = usm_sharpen(hr)
        sr = self.net(lr).float()
        loss = (sr - target).abs().mean()
        if self.cfg.identity_weight > 0:
            from facesr.identity.loss import identity_loss

            if hr.shape[-2:] != (self.hr_size, self.hr_size):
                raise FacesrError(f"identity_weight needs whole {self.hr_size}-px faces, not {hr.shape[-1]}-px patches: "
                                  f"set data.patch_size to 0 or {self.hr_size}")
            loss = loss + self.cfg.identity_weight * identity_loss(sr, hr)
        return loss

    @torch.no_grad()
    def super_resolve(self, lr, conditions: Conditions | None = None, options=None, generator=None, init=None):
        """One forward pass; of the options only ``precision`` applies."""
        with autocast(lr.device, options.precision if options is not None else "fp32"):
            return self.net(lr).float().clamp(0, 1)
