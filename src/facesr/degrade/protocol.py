"""The LR protocol: the only code that makes an LR image from an HR one.

A protocol is a deterministic operator (``bicubic`` or ``tf-bilinear`` at a scale: down, 8-bit) or,
for blind models, a seeded degradation (facesr.degrade.blind) drawn per image from the image's name
(the drawn parameters are returned, so a test set can be regenerated exactly). Every model owns one
(``model.lr_protocol``); datasets, evaluation, identity features, the benchmark and the
consistency metric ask it, and two protocols are the same protocol exactly when they are equal.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from facesr.degrade.resample import Resampler, make_operator, quantize
from facesr.errors import FacesrError


def name_seed(key: str, seed: int = 0) -> int:
    """The degradation seed of an image: a function of its name and the run's seed only."""
    return (zlib.crc32(key.encode()) + 1_000_003 * seed) % (2**31 - 1)


@dataclass(frozen=True)
class LRProtocol:
    operator: Resampler
    degradation: str | None = None  # a blind degradation (facesr.degrade.blind: "deepfacesr", "photo"): blind LR
    _blind: object = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.degradation is not None:
            from facesr.degrade.blind import make_degradation

            object.__setattr__(self, "_blind", make_degradation(self.degradation, self.operator.scale))

    @classmethod
    def of(cls, operator: str, scale: int, degradation: str | None = None) -> "LRProtocol":
        return cls(make_operator(operator, scale), degradation)

    @classmethod
    def parse(cls, text: str, what: str = "LR protocol") -> "LRProtocol":
        """'OPERATOR:SCALE', e.g. 'bicubic:8'."""
        name, _, scale = text.partition(":")
        if not scale.isdigit():
            raise FacesrError(f"{what} {text!r}: expected OPERATOR:SCALE, e.g. bicubic:8")
        return cls.of(name, int(scale))

    @property
    def scale(self) -> int:
        return self.operator.scale

    @property
    def deterministic(self) -> bool:
        """True when LR = quantize(operator.down(HR)), so LR-consistency is defined."""
        return self.degradation is None

    def degrade(self, hr: torch.Tensor, keys=None, seed: int = 0) -> tuple[torch.Tensor, list[dict] | None]:
        """LR (B, 3, H/s, W/s) for HR (B, 3, H, W) in [0, 1], 8-bit, and the per-image records of a
        blind draw (None when deterministic). ``keys``: the images' names (blind draws only)."""
        if self._blind is None:
            return self.operator_lr(hr), None
        if keys is None or len(keys) != len(hr):
            raise FacesrError("a blind LR protocol draws each image's degradation from its name: give one key per image")
        lrs, records = [], []
        for img, key in zip(hr, keys):
            lr, params = self._blind(img[None], name_seed(key, seed))
            lrs.append(lr[0])
            records.append(params[0])
        return torch.stack(lrs), records

    def project(self, sr: torch.Tensor, lr: torch.Tensor, rounds: int) -> torch.Tensor:
        """SR made consistent with its LR by ``rounds`` of iterative back-projection (Irani and Peleg):
        x <- x + up(LR) - up(down(x)). The correction is the upsampled LR residual, so detail above the LR's
        band stays. On SR outputs, whose errors are at low frequencies, three rounds bring MSE(down(SR), LR) from
        1-10 to about 0.02 (0-255 scale); errors near the LR's Nyquist frequency (a misregistered estimate) shrink
        slowly. Each upsampled term is an image in [0, 1]: the operator's PIL-style passes clip, so a signed
        residual would not pass."""
        if not self.deterministic:
            raise FacesrError(f"LR-consistency projection needs a known operator; the {self.degradation} LR is blind")
        x = sr
        up_lr = self.operator.up(lr)
        for _ in range(rounds):
            x = x + up_lr - self.operator.up(self.operator.down(x).clamp(0, 1))
        return x.clamp(0, 1)

    def operator_lr(self, hr: torch.Tensor) -> torch.Tensor:
        """quantize(operator.down(HR)): the deterministic LR (a blind model's training data redraws it)."""
        return quantize(self.operator.down(hr))

    def training_lr(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A blind batch for training: one seed drawn from ``generator`` for the whole batch."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return self._blind(hr, seed)[0]

    def lr_image(self, hr: np.ndarray, key: str = "", seed: int = 0) -> tuple[np.ndarray, dict | None]:
        """uint8 RGB HR -> (uint8 RGB LR, the blind record or None)."""
        from facesr.io.images import to_tensor, to_uint8

        lr, records = self.degrade(to_tensor(hr)[None], [key], seed)
        return to_uint8(lr[0]), (records[0] if records else None)

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        """up(LR) in [0, 1]: the bicubic estimate every model starts from."""
        return self.operator.up(lr).clamp(0, 1)

    def to_dict(self) -> dict:
        return {"operator": self.operator.to_dict(), "degradation": self.degradation}

    def describe(self) -> str:
        base = f"{self.operator.name} x{self.scale}"
        return base if self.degradation is None else f"{self.degradation} ({self._blind.name}) x{self.scale}"
