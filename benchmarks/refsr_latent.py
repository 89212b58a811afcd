"""Where does a RefSR-VAE's lead over SISR-VAE come from: the reference, or the latent the single-image model
is sampled with? PSNR on every dev probe with a third image (the benchmark's protocol: 2nd image the probe, 3rd
the reference, the next person's 3rd for the control), SR rounded to 8 bits:

    python benchmarks/refsr_latent.py --refsr refsr-vae-x8 --sisr sisr-vae-x8 --hr ../shared/data/dev/lfw

SISR-VAE is run three ways: its test-time draw (sigma ~ N(0, 1), z = sigma g(up): the paper's, the bundled
model's), a draw at the scale of its training prior (sigma ~ N(0, 0.1^2)), and z = 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from facesr.errors import FacesrError
from facesr.io.images import list_images, read_image, to_tensor
from facesr.methods.hub import load_model
from facesr.methods.refsr_vae import KL_PRIOR_STD


def psnr(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    sr = torch.round(sr.clamp(0, 1) * 255) / 255
    return 10 * torch.log10(1 / ((sr - hr) ** 2).mean((1, 2, 3)))


def read_pairs(root: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(probes, references): the 2nd and 3rd image of every identity folder that has both readable."""
    if not root.is_dir():
        raise FacesrError(f"{root}: not a folder of identity folders")
    probes, refs = [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        images = list_images(person)
        if len(images) < 3:
            continue
        try:
            probe, ref = (to_tensor(read_image(p)) for p in images[1:3])
        except FacesrError as exc:
            print(f"left out {person.name}: {exc}", file=sys.stderr)
            continue
        probes.append(probe)
        refs.append(ref)
    if not probes:
        raise FacesrError(f"{root}: no identity folder with a readable 2nd and 3rd image")
    return probes, refs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refsr", default="refsr-vae-x8")
    ap.add_argument("--sisr", default="sisr-vae-x8")
    ap.add_argument("--hr", default="../shared/data/dev/lfw")
    args = ap.parse_args()
    refsr, sisr = load_model(args.refsr, "cpu"), load_model(args.sisr, "cpu")
    probes, refs = read_pairs(Path(args.hr))
    probe, ref = torch.stack(probes), torch.stack(refs)
    up = refsr.upsample(refsr.lr_protocol.degrade(probe)[0])
    draw = torch.randn(len(probe), sisr.cfg.latent, generator=torch.Generator().manual_seed(0))
    rows = {}
    with torch.no_grad():
        rows[f"{args.refsr}, same person's photo"] = psnr(refsr.predict(up, ref), probe)
        rows[f"{args.refsr}, next person's photo"] = psnr(refsr.predict(up, ref.roll(-1, 0)), probe)
        for label, scale in (("sigma ~ N(0, 1) (its test-time draw)", 1.0),
                             (f"sigma ~ N(0, {KL_PRIOR_STD}^2) (its training prior)", KL_PRIOR_STD), ("z = 0", 0.0)):
            rows[f"{args.sisr}, {label}"] = psnr(sisr.predict(up, sigma=scale * draw), probe)
    base = rows[f"{args.refsr}, next person's photo"]
    print(f"{len(probe)} probes of {args.hr}\n\n| run | PSNR (dB) | vs the next person's photo (dB) |\n|---|---|---|")
    for label, values in rows.items():
        d = values - base
        print(f"| {label} | {values.mean():.3f} | {d.mean():+.3f} (probes better: {(d > 0).sum()} of {len(d)}) |")


if __name__ == "__main__":
    try:
        main()
    except FacesrError as exc:
        print(f"refsr_latent: {exc}", file=sys.stderr)
        sys.exit(2)
