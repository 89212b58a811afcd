"""Experiment configuration: method, model, data and optimisation, serialised as JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from facesr.config import ConfigValueError, at_least, finite, from_dict, load_json, to_dict
from facesr.errors import FacesrError


@dataclass
class DataConfig:
    train_dirs: tuple[str, ...] = ()
    patch_size: int = 64  # 0 = whole image
    hflip: bool = True
    rot90: bool = False  # rotate by a random multiple of 90 degrees
    brightness: tuple[float, float] | None = None  # e.g. [0.7, 1.3], applied with probability jitter_prob
    contrast: tuple[float, float] | None = None
    jitter_prob: float = 0.5
    # identity vectors (FASR): per-image feature files from 'facesr features --per-image', keyed by the
    # image's path under its training folder; each sample draws one of the files that has its image
    vectors: tuple[str, ...] = ()
    # probability that an item's identity vector is replaced by the null identity (zeros), so the model
    # also learns D(x, 0) and can be sampled with identity guidance (SamplingOptions.guidance)
    vector_dropout: float = 0.0
    # multi-frame models (MF-SR3): bursts of ``frames`` LR frames made from each still by shifting HR by
    # up to ``motion_px`` HR pixels (uniform, sub-pixel, x and y) per frame; the middle frame is unshifted
    frames: int = 1
    motion_px: float = 0.0
    # reference-based models (RefSR-VAE): each item also carries a reference face, "same-identity"
    # (another image of the same <identity>/ folder; folders with one image are left out) or "self"
    # (the image itself, flipped, shifted by up to 8 px and re-lit: for data without identities)
    reference: str | None = None

    def __post_init__(self):
        at_least(self, "patch_size", 0)
        at_least(self, "frames", 1)
        at_least(self, "motion_px", 0)
        _probability(self, "jitter_prob")
        if not 0 <= self.vector_dropout < 1:
            raise ConfigValueError("vector_dropout", f"must be in [0, 1), got {self.vector_dropout}")
        for name in ("brightness", "contrast"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 2 and 0 <= value[0] <= value[1]):
                raise ConfigValueError(name, f"must be null or [low, high] with 0 <= low <= high, got {list(value)}")
        if self.reference not in (None, "same-identity", "self"):
            raise ConfigValueError("reference", f"must be null, 'same-identity' or 'self', got {self.reference!r}")


@dataclass
class OptimConfig:
    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 1000
    schedule: str = "constant"  # or "cosine_restarts"
    periods: tuple[int, ...] = (150_000, 150_000)  # cosine_restarts: lengths of the cosine cycles
    restart_weights: tuple[float, ...] = (1.0, 1.0)
    eta_min: float = 1e-7
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    max_steps: int = 100_000
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 25
    seed: int = 0
    mixed_precision: str = "bf16"  # "no", "bf16" or "fp16"
    lr_scale: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr multiplier (e.g. new modules)

    def __post_init__(self):
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise FacesrError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        if self.schedule not in ("constant", "cosine_restarts"):
            raise FacesrError(f"schedule must be 'constant' or 'cosine_restarts', got {self.schedule!r}")
        if len(self.periods) != len(self.restart_weights) or any(p < 1 for p in self.periods):
            raise FacesrError("periods and restart_weights must have the same length, periods positive")
        for name in ("batch_size", "max_steps", "checkpoint_every", "keep_checkpoints", "log_every"):
            at_least(self, name, 1)
        for name in ("warmup_steps", "seed", "eta_min", "grad_clip"):
            at_least(self, name, 0)
        _positive(self, "lr")
        _probability(self, "ema_decay")
        if len(self.betas) != 2 or not all(finite(b) and 0 <= b < 1 for b in self.betas):
            raise ConfigValueError("betas", f"must be two numbers in [0, 1), got {list(self.betas)}")
        if any(not finite(w) or w < 0 for w in self.restart_weights):
            raise ConfigValueError("restart_weights", f"must be numbers >= 0, got {list(self.restart_weights)}")
        if any(not finite(v) or v <= 0 for v in self.lr_scale.values()):
            raise ConfigValueError("lr_scale", f"values must be positive numbers, got {self.lr_scale}")


def _positive(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if not finite(value) or value <= 0:
        raise ConfigValueError(name, f"must be a positive number, got {value!r}")


def _probability(cfg, name: str) -> None:
    value = getattr(cfg, name)
    if not finite(value) or not 0 <= value <= 1:
        raise ConfigValueError(name, f"must be in [0, 1], got {value!r}")


def param_groups(model, lr_scale: dict[str, float]) -> list[dict]:
    """Adam parameter groups: each parameter takes the factor of the first ``lr_scale`` prefix its name
    starts with (1 if none); every prefix must match some parameter."""
    groups: dict[float, list] = {}
    used = set()
    for name, param in model.named_parameters():
        prefix = next((k for k in lr_scale if name.startswith(k)), None)
        used.add(prefix)
        groups.setdefault(float(lr_scale[prefix]) if prefix else 1.0, []).append(param)
    unknown = sorted(set(lr_scale) - used)
    if unknown:
        raise FacesrError(f"optim.lr_scale: no parameter name starts with {', '.join(map(repr, unknown))}")
    return [{"params": params, "lr_scale": scale} for scale, params in sorted(groups.items())]


def learning_rate(o: OptimConfig, step: int) -> float:
    """Learning rate for the update at ``step`` (0-based): linear warm-up times the schedule.

    cosine_restarts (BasicSR CosineAnnealingRestartLR): within cycle i of length P_i,
    lr = eta_min + w_i (lr - eta_min) (1 + cos(pi t / P_i)) / 2; after the last cycle, eta_min.
    """
    warm = min(1.0, (step + 1) / max(1, o.warmup_steps))
    if o.schedule == "constant":
        return o.lr * warm
    t = step
    for period, weight in zip(o.periods, o.restart_weights):
        if t < period:
            return warm * (o.eta_min + weight * (o.lr - o.eta_min) * (1 + math.cos(math.pi * t / period)) / 2)
        t -= period
    return warm * o.eta_min


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    method: str = "sr3"
    model: dict = field(default_factory=dict)  # the method's own config (SR3Config, RegressionConfig)
    init_from: str | None = None  # start from this model's weights (name or folder); new modules keep their init
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict:
        return to_dict(self)

    def build_model(self, where: str = "config"):
        from facesr.methods.base import METHODS

        try:
            cls = METHODS.get(self.method)
        except FacesrError as exc:
            raise FacesrError(f"{where}: method: {exc}") from None
        return cls(from_dict(cls.config_class, self.model, where, "model"))


def load_experiment(path) -> ExperimentConfig:
    """The experiment in JSON file ``path``, every section checked (a bad value: one FacesrError naming
    the file and the key)."""
    cfg = from_dict(ExperimentConfig, load_json(path), str(path))
    cfg.build_model(str(path))  # validate the model section now, with the file named
    return cfg
