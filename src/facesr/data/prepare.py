"""Write SR3-style folders (hr_<H>/, lr_<h>/, sr_<h>_<H>/) plus the operator that made them."""

from __future__ import annotations

import json

import torch

from facesr.io.images import atomic_write_text, check_output_folder, expand_inputs, read_image, to_tensor, to_uint8, write_image
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


def unique_name(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3`` ... when taken (compared case-insensitively, for case-insensitive
    file systems); the name returned is added to ``used``."""
    name, k = stem, 2
    while name.casefold() in used:
        name, k = f"{stem}_{k}", k + 1
    used.add(name.casefold())
    return name


def prepare(sources, out, scale=8, size=128, op="bicubic", on_error=print) -> dict:
    """Write ``<out>/hr_<size>/``, ``lr_<size/scale>/``, ``sr_<size/scale>_<size>/`` and ``degradation.json``
    from the HR images in ``sources`` (files, folders searched recursively, glob patterns).

    HR: the image centre-cropped to a square and, when larger, resized down to ``size`` (bicubic,
    antialiased). An image smaller than ``size`` is not HR data and is skipped: prepare does not upsample.
    LR = quantise(operator.down(HR)); SR = operator.up(LR), 8-bit.

    Output names: ``<stem>.png``, flat. When inputs share a stem (``a/face.png`` and ``b/face.jpg``), the
    first in input order keeps it and the others get ``<stem>_2``, ``<stem>_3`` ... (compared
    case-insensitively; as ``facesr prepare-video`` names clips), so no output overwrites another; the
    renamed inputs are listed in degradation.json ``"renamed"`` ({source: output name}).

    An input that gives no image (a missing path, a folder or pattern without images) and an image that
    cannot be used (unreadable, too small) are reported through ``on_error``, one line naming it, and left
    out; the others are still written. FacesrError when no input gives any image, or ``out`` is a file.

    -> the degradation.json record: {"operator", "hr_size", "lr_size", "images" (files written per folder),
    "skipped" (one line each), "renamed"}.
    """
    if size % scale:
        raise FacesrError(f"size {size} is not divisible by the scale {scale}")
    protocol = LRProtocol.of(op, scale)
    operator = protocol.operator
    lr_size = size // scale
    out = check_output_folder(out)
    dirs = {k: out / d for k, d in (("hr", f"hr_{size}"), ("lr", f"lr_{lr_size}"), ("sr", f"sr_{lr_size}_{size}"))}
    failed: list[str] = []

    def fail(message: str) -> None:
        failed.append(message)
        on_error(message)

    files = expand_inputs([str(s) for s in sources], recursive=True, on_error=fail)
    done, used, renamed = 0, set(), {}
    for path in files:
        try:
            img = read_image(path)
            h, w = img.shape[:2]
            if min(h, w) < size:
                raise InputError(path, f"{w}x{h} is smaller than the {size}x{size} HR size; prepare does not upsample")
            hr8 = to_uint8(center_square_resize(to_tensor(img), size))
            lr8 = to_uint8(protocol.operator_lr(to_tensor(hr8)[None])[0])
            up8 = to_uint8(operator.up(to_tensor(lr8)[None])[0])
        except InputError as exc:
            fail(str(exc))
            continue
        except FacesrError as exc:  # the LR protocol refused this image
            fail(f"{path}: {exc}")
            continue
        name = unique_name(path.stem, used)
        if name != path.stem:
            renamed[str(path)] = f"{name}.png"
        for key, img8 in (("hr", hr8), ("lr", lr8), ("sr", up8)):
            write_image(dirs[key] / f"{name}.png", img8)
        done += 1
    meta = {"operator": operator.to_dict(), "hr_size": size, "lr_size": lr_size, "images": done, "skipped": failed,
            "renamed": renamed}
    atomic_write_text(out / "degradation.json", json.dumps(meta, indent=2) + "\n")
    return meta
