"""The Python API.

    import facesr
    model = facesr.load_model("sr3-x8")
    sr = facesr.upscale(["face_lr.png"], model=model, steps=50)   # list of uint8 arrays
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesr.models.hub import load_model as _load


def load_model(name_or_path: str = "sr3-x8", device: str = "auto", use_ema: bool = True):
    """A bundled model by name, or a folder written by ``save_pretrained`` / a training checkpoint."""
    from facesr.runtime import resolve_device

    return _load(name_or_path, resolve_device(device), use_ema)


def upscale(images, model="sr3-x8", sampler=None, steps=None, eta=None, seed=0, batch_size=16,
            precision="bf16", device="auto", strength=None, samples=None) -> list[np.ndarray]:
    """Super-resolve images (paths or uint8 RGB arrays); returns uint8 RGB arrays in order.

    Sampling options left as None take the model's recommended recipe. strength < 1
    warm-starts from noised bicubic; samples > 1 averages that many samples.
    """
    from facesr.data.io import read_image, to_tensor, to_uint8
    from facesr.pipelines.upscale import SamplingOptions, super_resolve_tensors
    from facesr.runtime import resolve_device

    dev = resolve_device(device)
    if isinstance(model, str):
        model = _load(model, dev)
    arrays = [read_image(x) if isinstance(x, (str, Path)) else np.asarray(x, dtype=np.uint8) for x in images]
    keys = [str(x) if isinstance(x, (str, Path)) else f"array-{i}" for i, x in enumerate(images)]
    opts = SamplingOptions.for_model(model, sampler=sampler, steps=steps, eta=eta, strength=strength, samples=samples,
                                     seed=seed, batch_size=batch_size, precision=precision)
    srs = super_resolve_tensors(model, [to_tensor(a) for a in arrays], keys, opts, dev)
    return [to_uint8(s) for s in srs]


def evaluate_folders(sr_dir, hr_dir, operator="bicubic", scale=8, lr_dir=None, y=False, crop=0, out_dir=None) -> dict:
    """PSNR / SSIM / LR-consistency of SR images against HR (matched by file stem)."""
    from facesr.data.resample import make_operator
    from facesr.pipelines import evaluate

    return evaluate.evaluate_folders(sr_dir, hr_dir, make_operator(operator, scale), lr_dir, y, crop, out_dir)
