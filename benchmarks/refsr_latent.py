"""Where does a RefSR-VAE's lead over SISR-VAE come from: the reference, or the latent the single-image model
is sampled with? PSNR on every dev probe with a third image (the benchmark's protocol: 2nd image the probe, 3rd
the reference, the next person's 3rd for the control), SR rounded to 8 bits:

    python benchmarks/refsr_latent.py --refsr refsr-vae-x8 --sisr sisr-vae-x8 --hr ../shared/data/dev/lfw

SISR-VAE is run three ways: its test-time draw (sigma ~ N(0, 1), z = sigma g(up): the paper's, the bundled
model's), a draw at the scale of its training prior (sigma ~ N(0, 0.1^2)), and z = 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from facesr.io.images import list_images, read_image, to_tensor
from facesr.methods.hub import load_model
from facesr.methods.refsr_vae import KL_PRIOR_STD


def psnr(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    sr = torch.round(sr.clamp(0, 1) * 255) / 255
    return 10 * torch.log10(1 / ((sr - hr) ** 2).mean((1, 2, 3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refsr", default="refsr-vae-x8")
    ap.add_argument("--sisr", default="sisr-vae-x8")
    ap.add_argument("--hr", default="../shared/data/dev/lfw")
    args = ap.parse_args()
    refsr, sisr = load_model(args.refsr, "cpu"), load_model(args.sisr, "cpu")
    people = [p for p in sorted(Path(args.hr).iterdir()) if p.is_dir() and len(list_images(p)) >= 3]
    probe = torch.stack([to_tensor(read_image(list_images(p)[1])) for p in people])
    ref = torch.stack([to_tensor(read_image(list_images(p)[2])) for p in people])
    up = refsr.upsample(refsr.lr_protocol.degrade(probe)[0])
    draw = torch.randn(len(people), sisr.cfg.latent, generator=torch.Generator().manual_seed(0))
    rows = {}
    with torch.no_grad():
        rows[f"{args.refsr}, same person's photo"] = psnr(refsr.predict(up, ref), probe)
        rows[f"{args.refsr}, next person's photo"] = psnr(refsr.predict(up, ref.roll(-1, 0)), probe)
        for label, scale in (("sigma ~ N(0, 1) (its test-time draw)", 1.0),
                             (f"sigma ~ N(0, {KL_PRIOR_STD}^2) (its training prior)", KL_PRIOR_STD), ("z = 0", 0.0)):
            rows[f"{args.sisr}, {label}"] = psnr(sisr.predict(up, sigma=scale * draw), probe)
    base = rows[f"{args.refsr}, next person's photo"]
    print(f"{len(people)} probes of {args.hr}\n\n| run | PSNR (dB) | vs the next person's photo (dB) |\n|---|---|---|")
    for label, values in rows.items():
        d = values - base
        print(f"| {label} | {values.mean():.3f} | {d.mean():+.3f} (probes better: {(d > 0).sum()} of {len(d)}) |")


if __name__ == "__main__":
    main()
