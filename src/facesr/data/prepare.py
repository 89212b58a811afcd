"""Write SR3-style folders (hr_<H>/, lr_<h>/, sr_<h>_<H>/) plus the operator that made them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from facesr.io.images import atomic_write_text, expand_inputs, read_image, to_tensor, to_uint8, write_image
from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError, InputError


def center_square_resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop to a square and resize to ``size`` (bicubic, antialiased)."""
    _, h, w = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[:, top : top + side, left : left + side]
    if side != size:
        img = torch.nn.functional.interpolate(img[None], size=(size, size), mode="bicubic", antialias=True)[0]
    return img.clamp(0, 1)


def prepare(sources, out, scale=8, size=128, op="bicubic", on_error=print) -> dict:
    if size % scale:
        raise FacesrError(f"size {size} is not divisible by the scale {scale}")
    protocol = LRProtocol.of(op, scale)
    operator = protocol.operator
    lr_size = size // scale
    out = Path(out)
    dirs = {k: out / d for k, d in (("hr", f"hr_{size}"), ("lr", f"lr_{lr_size}"), ("sr", f"sr_{lr_size}_{size}"))}
    files = expand_inputs([str(s) for s in sources], recursive=True)
    done, failed = 0, []
    for path in files:
        try:
            hr = center_square_resize(to_tensor(read_image(path)), size)
        except InputError as exc:
            failed.append(str(exc))
            on_error(f"skipped {exc}")
            continue
        hr8 = to_uint8(hr)
        hr_q = to_tensor(hr8)[None]
        lr8 = to_uint8(protocol.operator_lr(hr_q)[0])
        up8 = to_uint8(operator.up(to_tensor(lr8)[None])[0])
        name = path.stem + ".png"
        for key, img in (("hr", hr8), ("lr", lr8), ("sr", up8)):
            write_image(dirs[key] / name, img)
        done += 1
    meta = {"operator": operator.to_dict(), "hr_size": size, "lr_size": lr_size, "images": done, "skipped": failed}
    atomic_write_text(out / "degradation.json", json.dumps(meta, indent=2) + "\n")
    return meta
