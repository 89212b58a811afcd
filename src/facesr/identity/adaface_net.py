"""AdaFace IR backbones (dossier section 6), with the module names of AdaFace's ``net.py``.

Parameter names match ``mk-minchul/AdaFace`` @c60eaa7 (``input_layer``, ``body.<i>.res_layer``,
``body.<i>.shortcut_layer``, ``output_layer``), so an official Lightning checkpoint loads
strictly once its ``model.`` prefix is removed. IR-18 has 24,020,352 parameters (checked).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from facesr.errors import InputError
from facesr.io.weights import file_sha256

# units per stage (channels 64/128/256/512); AdaFace calls IR-101 "num_layers=100"
UNITS = {"ir_18": (2, 2, 2, 2), "ir_50": (3, 4, 14, 3), "ir_101": (3, 13, 30, 3)}
CHANNELS = (64, 128, 256, 512)


class BasicBlockIR(nn.Module):
    """res = BN-Conv3x3-BN-PReLU-Conv3x3(stride)-BN; shortcut MaxPool(1, s) or Conv1x1(s)+BN."""

    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """112x112 BGR in [-1, 1] -> (unit-norm 512-d embedding, norm), as AdaFace's ``Backbone``."""

    def __init__(self, arch: str = "ir_18"):
        super().__init__()
        if arch not in UNITS:
            raise ValueError(f"unknown AdaFace architecture {arch!r}; choose one of {sorted(UNITS)}")
        self.arch = arch
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(  # registered before body, as upstream: same state_dict order
            nn.BatchNorm2d(512), nn.Dropout(0.4), nn.Flatten(), nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512, affine=False))
        units, in_ch = [], 64
        for depth, n in zip(CHANNELS, UNITS[arch]):
            units += [BasicBlockIR(in_ch, depth, 2)] + [BasicBlockIR(depth, depth, 1) for _ in range(n - 1)]
            in_ch = depth
        self.body = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.norm(x, 2, 1, True)
        return x / norm, norm


def _why(exc: Exception) -> str:
    msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
    if found:  # e.g. a Lightning checkpoint that pickled a callback or hparams object
        return (f"it holds a pickled {found.group(1)} object, which facesr will not unpickle; "
                "re-save the file with only tensors, e.g. {'state_dict': ...}")
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
    detail = found.group(1).strip() if found else (msg.strip().splitlines() or [type(exc).__name__])[0]
    return f"corrupt or not a checkpoint: {detail}"


def _guess_arch(keys) -> str | None:
    units = {int(k.split(".")[1]) for k in keys if k.startswith("body.") and k.split(".")[1].isdigit()}
    n = max(units) + 1 if units else 0
    return next((a for a, u in UNITS.items() if sum(u) == n), None)


def load_adaface(path: str | Path, arch: str = "ir_18") -> tuple[IRBackbone, str]:
    """Official AdaFace Lightning ``.ckpt`` -> (model in eval mode, frozen; sha256 of the file).

    ``torch.load(weights_only=True)``: nothing is unpickled beyond tensors and plain containers.
    Keys ``model.*`` of ``["state_dict"]`` are kept with the prefix removed and loaded strictly.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "AdaFace checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        raise InputError(path, f"cannot read as a PyTorch checkpoint with weights_only=True ({_why(exc)})") from None
    sd = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise InputError(path, "not an AdaFace Lightning checkpoint (no 'state_dict')")
    sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    if not sd:
        raise InputError(path, "no 'model.*' keys in its state_dict: not an AdaFace checkpoint")
    model = IRBackbone(arch)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        guess = _guess_arch(sd)
        hint = f"; it looks like {guess}" if guess and guess != arch else ""
        raise InputError(path, f"keys do not match AdaFace {arch}: {len(missing)} missing (e.g. {missing[:3]}), "
                               f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}){hint}")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        raise InputError(path, f"tensor shapes do not match AdaFace {arch} ({'; '.join(lines[:2]) or exc})") from None
    model.eval().requires_grad_(False)
    return model, file_sha256(path)
