"""Denoiser probe: how well a diffusion model's one-step estimate D(x, sigma) restores faces, per noise level.

Two inputs per sigma, on the probes of an identity-folder set (second image of each folder, LR = the
model's operator, 8-bit):

- "from data": x = x0 + sigma z, the state the model is trained on. Measures denoising.
- "from the condition": x = 0 + sigma z, i.e. bicubic plus noise, the start of a warm start. At
  high sigma the only information about the face is the LR condition, so this column shows whether the
  model has learned to use it: bicubic PSNR here means it has not.

PSNR (dB, RGB, [0, 1]) of the decoded D against HR, and the MSE of D against x0 in the model's
coordinates (compare with the variance of x0: a model that ignores the condition cannot beat it).

    python benchmarks/denoiser_probe.py --model sr3-x8 --hr ../shared/data/dev/lfw --limit 16 \
        --table benchmarks/results/denoiser-probe-sr3-x8.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((10 * torch.log10(1 / ((a - b) ** 2).flatten(1).mean(1))).mean())


def main() -> None:
    from facesr.io.images import list_images, read_image, to_tensor
    from facesr.errors import InputError
    from facesr.identity.recognition import split_images
    from facesr.methods.hub import load_model

    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--hr", required=True)
    p.add_argument("--limit", type=int, default=16)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.2, 0.5, 1, 2, 5, 10, 20])
    p.add_argument("--precision", default="bf16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table")
    args = p.parse_args()

    folders = sorted(d for d in Path(args.hr).iterdir() if d.is_dir())
    probes = [p for p in (split_images(list_images(d))["probe"] for d in folders) if p is not None][: args.limit]
    model = load_model(args.model).eval()
    faces, unusable = [], []
    for f in probes:
        try:
            faces.append(to_tensor(read_image(f)))
        except InputError as exc:  # reported and left out; the others are still probed
            unusable.append(f)
            print(exc, file=sys.stderr)
    if not faces:
        sys.exit(f"denoiser_probe.py: no readable probe image in {args.hr}")
    probes = [f for f in probes if f not in unusable]
    hr = torch.stack(faces)
    up = model.upsample(model.lr_protocol.operator_lr(hr))
    x0 = model.encode(hr, up)
    den = model.process(up, precision=args.precision).denoiser
    g = torch.Generator().manual_seed(args.seed)
    lines = [f"Denoiser probe of `{args.model}` on {len(probes)} probes of `{args.hr}` ({args.precision}); "
             f"bicubic PSNR {psnr(up, hr):.2f} dB, variance of x0 {float(x0.var()):.4f}.", "",
             "| sigma | PSNR from data (dB) | MSE(x0) from data | PSNR from the condition (dB) | MSE(x0) from the condition |",
             "|---|---|---|---|---|"]
    for sigma in args.sigmas:
        s = torch.full((len(probes),), sigma, dtype=torch.float64)
        z = torch.randn(x0.shape, generator=g)
        cells = []
        for start in (x0, torch.zeros_like(x0)):
            with torch.no_grad():
                d = den(start + sigma * z, s).float()
            cells += [f"{psnr(model.decode(d, up).clamp(0, 1), hr):.2f}", f"{float(((d - x0) ** 2).mean()):.4f}"]
        lines.append(f"| {sigma:g} | " + " | ".join(cells) + " |")
    cmd = f"python benchmarks/denoiser_probe.py --model {args.model} --hr {args.hr} --limit {args.limit}"
    text = "\n".join(lines + ["", f"Command: `{cmd}`"]) + "\n"
    if args.table:
        Path(args.table).write_text(text)
    print(text)
    if unusable:
        sys.exit(f"denoiser_probe.py: {len(unusable)} probe image(s) could not be read (listed above)")


if __name__ == "__main__":
    main()
