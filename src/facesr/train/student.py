"""Training an identity student (``identity.student``): dlib's ResNet fine-tuned on faces without labels.

Each step takes a batch of HR chips, makes their LR with the student's protocol (8-bit, as probes are made)
and reads both as the dlib embedder does (enlarged to 150 px, re-chipped from dlib's 5 points). The frozen
dlib network embeds the HR chip (the target); the student, initialised as dlib, learns to embed the LR chip
there (1 - cosine), and with weight ``hr_anchor`` to keep the HR chip there too, so that LR and HR faces
share one space. Checkpoints ``checkpoints/step-N/`` are student folders plus the optimizer and RNG states,
written atomically; ``resume`` continues a killed run where it stopped (the data order depends only on the
seed and the step).

    facesr train-embedder configs/dlib-lq-x8.json --data ../shared/data/train --out runs/dlib-lq-x8
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facesr.config import ConfigValueError, from_dict, load_json, to_dict
from facesr.errors import FacesrError
from facesr.train.config import DataConfig, OptimConfig, learning_rate

KIND = "identity-student"  # a student config's "kind" (an experiment config has a "method" instead)


@dataclass
class StudentConfig:
    kind: str = KIND
    name: str = "dlib-lq-x8"
    operator: str = "bicubic"  # the LR protocol of the faces it learns to read
    scale: int = 8
    hr_size: int = 128
    hr_anchor: float = 0.5  # weight of the HR chip's own term
    data: DataConfig = field(default_factory=lambda: DataConfig(patch_size=0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(batch_size=32, lr=1e-5, warmup_steps=50,
                                                                   max_steps=1000, checkpoint_every=100,
                                                                   mixed_precision="no"))

    def __post_init__(self):
        if self.kind != KIND:
            raise ConfigValueError("kind", f"must be {KIND!r} (a config for facesr train-embedder), got {self.kind!r}")
        if self.data.patch_size not in (0, self.hr_size):
            raise ConfigValueError("data.patch_size", f"must be 0: the student reads whole faces, got {self.data.patch_size}")
        if not (isinstance(self.hr_anchor, (int, float)) and 0 <= self.hr_anchor < float("inf")):
            raise ConfigValueError("hr_anchor", f"must be a number >= 0, got {self.hr_anchor!r}")
        if self.optim.mixed_precision != "no":
            raise ConfigValueError("optim.mixed_precision", "the student trains in fp32: set it to 'no'")
        self.protocol()  # an unknown operator or scale fails here

    def protocol(self):
        from facesr.degrade.protocol import LRProtocol

        return LRProtocol.of(self.operator, self.scale)


def load_student_config(path) -> StudentConfig:
    return from_dict(StudentConfig, load_json(path), str(path))


def _uint8(batch: torch.Tensor) -> list[np.ndarray]:
    return list((batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())


def _tensor(chips: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255.0


def student_loss(student, teacher, chip_lr: torch.Tensor, chip_hr: torch.Tensor, hr_anchor: float):
    """(loss, LR term, HR term): 1 - cos to the teacher's HR embedding, for the LR chip and (x hr_anchor) the HR chip."""
    with torch.no_grad():
        target = F.normalize(teacher(chip_hr), dim=1)
    lr_term = (1 - (F.normalize(student(chip_lr), dim=1) * target).sum(1)).mean()
    hr_term = (1 - (F.normalize(student(chip_hr), dim=1) * target).sum(1)).mean() if hr_anchor else torch.zeros(())
    return lr_term + hr_anchor * hr_term, lr_term, hr_term


def _save(run_dir: Path, step: int, net, optimizer, generator, cfg: StudentConfig, seconds: float, keep: int) -> Path:
    from facesr.identity.student import save_student
    from facesr.io.images import atomic_write_text
    from facesr.io.weights import save_safetensors
    from facesr.train.checkpoint import optimizer_to_tensors, publish_checkpoint

    root = run_dir / "checkpoints"
    final, tmp = root / f"step-{step:08d}", root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_student(net, tmp, {"operator": cfg.operator, "scale": cfg.scale, "steps": step,
                            "seconds": round(seconds, 1), "experiment": to_dict(cfg)})
    tensors, groups = optimizer_to_tensors(optimizer)
    tensors["rng.generator"] = generator.get_state()
    save_safetensors(tensors, tmp / "optimizer.safetensors")
    atomic_write_text(tmp / "state.json", json.dumps({"step": step, "param_groups": groups, "seconds": seconds}) + "\n")
    return publish_checkpoint(tmp, final, keep)


def _resume(run_dir: Path, net, optimizer, generator) -> tuple[int, float]:
    from facesr.io.weights import load_safetensors
    from facesr.train.checkpoint import latest_checkpoint, optimizer_from_tensors

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        return 0, 0.0
    try:
        state = json.loads((ckpt / "state.json").read_text())
        net.load_state_dict(load_safetensors(ckpt / "student.safetensors"))
        tensors = load_safetensors(ckpt / "optimizer.safetensors")
        generator.set_state(tensors.pop("rng.generator"))
        optimizer_from_tensors(optimizer, tensors, state["param_groups"])
    except (OSError, ValueError, KeyError, RuntimeError):
        raise FacesrError(f"{ckpt}: damaged checkpoint, or made for another config") from None
    return int(state["step"]), float(state.get("seconds", 0.0))


def train_student(cfg: StudentConfig, run_dir, resume: bool = False, max_steps: int | None = None, log=print) -> dict:
    """Train (or continue) the student in ``run_dir``; returns {"step", "checkpoint", "seconds", "stopped_by"}."""
    from facesr.data.datasets import EpochSampler, HRFolderDataset
    from facesr.identity.dlib_resnet import load_dlib_resnet
    from facesr.identity.embedders import DlibEmbedder
    from facesr.io.images import atomic_write_text
    from facesr.train.checkpoint import latest_checkpoint
    from facesr.train.loop import _Log, _StopFlag, check_run_dir

    if not cfg.data.train_dirs:
        raise FacesrError("no training data: set data.train_dirs in the config or pass --data")
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    if not resume and latest_checkpoint(run_dir) is not None:
        raise FacesrError(f"{run_dir} already holds checkpoints: pass --resume, or choose another --out")
    o, total = cfg.optim, max_steps or cfg.optim.max_steps
    torch.manual_seed(o.seed)
    chipper = DlibEmbedder(aligned=True)
    teacher = load_dlib_resnet()
    student = load_dlib_resnet().train()
    student.requires_grad_(True)
    dataset = HRFolderDataset(cfg.data.train_dirs, cfg.protocol(), cfg.hr_size, 0, cfg.data.hflip, augment=cfg.data)
    optimizer = torch.optim.Adam(student.parameters(), lr=o.lr, betas=tuple(o.betas))
    generator = torch.Generator().manual_seed(o.seed * 1000)
    step, before = _resume(run_dir, student, optimizer, generator) if resume else (0, 0.0)
    if step:
        log(f"resumed from {latest_checkpoint(run_dir)} at step {step}")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "experiment.json", json.dumps(to_dict(cfg), indent=2) + "\n")
    sampler, logger, t0 = EpochSampler(len(dataset), o.seed), _Log(run_dir, True, step), time.time()
    stopped_by = None

    class _Bar:  # _Log's progress-bar hook
        def set_postfix(self, **kw):
            pass

    def save():
        return _save(run_dir, step, student, optimizer, generator, cfg, before + time.time() - t0, o.keep_checkpoints)

    with _StopFlag() as stop:
        while step < total:
            batch = dataset.batch([sampler(step * o.batch_size + j) for j in range(o.batch_size)], generator)
            chip_hr = _tensor(chipper.chips(_uint8(batch["hr"])))
            chip_lr = _tensor(chipper.chips(_uint8(batch["lr"])))
            lr = learning_rate(o, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, _, _ = student_loss(student, teacher, chip_lr, chip_hr, cfg.hr_anchor)
            if not torch.isfinite(loss):
                raise FacesrError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            loss.backward()
            if o.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(student.parameters(), o.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            logger.step(step, loss.item(), lr, step % o.log_every == 0 or step == total, _Bar())
            saved = step % o.checkpoint_every == 0 or step == total
            if saved:
                save()
            if step < total and stop.signal is not None:
                stopped_by = stop.signal
                if not saved:
                    save()
                break
    logger.close()
    return {"step": step, "checkpoint": str(latest_checkpoint(run_dir)), "seconds": before + time.time() - t0,
            "stopped_by": stopped_by}
