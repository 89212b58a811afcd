"""Experiment configuration: model, data and optimisation, serialised as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from facesr.config import from_dict, load_json, to_dict
from facesr.errors import FacesrError
from facesr.models.sr3 import SR3Config


@dataclass
class DataConfig:
    train_dirs: tuple[str, ...] = ()
    patch_size: int = 64  # 0 = whole image
    hflip: bool = True


@dataclass
class OptimConfig:
    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1000
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    max_steps: int = 100_000
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 25
    seed: int = 0
    mixed_precision: str = "bf16"  # "no", "bf16" or "fp16"

    def __post_init__(self):
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise FacesrError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if self.batch_size < 1 or self.max_steps < 1 or self.checkpoint_every < 1:
            raise FacesrError("batch_size, max_steps and checkpoint_every must be positive")


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    method: str = "sr3"
    model: SR3Config = field(default_factory=SR3Config)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict:
        return to_dict(self)


def load_experiment(path) -> ExperimentConfig:
    cfg = from_dict(ExperimentConfig, load_json(path), str(path))
    if cfg.method != "sr3":
        raise FacesrError(f"{path}: method {cfg.method!r} cannot be trained yet (known: sr3)")
    return cfg
