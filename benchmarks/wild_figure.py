"""The picture of benchmarks/wild.notes.md: three LFW probe photos side by side, downscaled by 8 (faces of
about 14 px), as input with the detected boxes | bicubic | restored (`facesr restore`, default models).

    python benchmarks/wild_figure.py --out benchmarks/figures/wild-x8.jpg
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    from PIL import Image, ImageDraw

    from facesr.io.images import read_image
    from facesr.wild.faces import FaceFinder
    from facesr.workflows.restore import Restorer, restore_photo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", default="../shared/data/dev/lfw_photos")
    p.add_argument("--out", default="benchmarks/figures/wild-x8.jpg")
    args = p.parse_args()
    people = sorted(d for d in Path(args.photos).iterdir() if (d / f"{d.name}_0002.jpg").is_file())[:3]
    row = np.concatenate([read_image(d / f"{d.name}_0002.jpg") for d in people], 1)[:248, :744]
    lr = np.asarray(Image.fromarray(row).resize((93, 31), Image.BICUBIC))
    finder = FaceFinder()
    restored = restore_photo(lr, finder, Restorer(overrides={"precision": "fp32"}), upscale=8)
    bicubic = restore_photo(lr, finder, Restorer(model="bicubic"), upscale=8)
    shown = Image.fromarray(lr).resize((744, 248), Image.NEAREST)
    draw = ImageDraw.Draw(shown)
    for face in restored["faces"]:
        draw.rectangle([v * 8 for v in face["box"]], outline=(255, 0, 0), width=2)
    sheet = Image.new("RGB", (744, 3 * 248 + 2 * 4), (255, 255, 255))
    for k, im in enumerate([shown, Image.fromarray(bicubic["image"]), Image.fromarray(restored["image"])]):
        sheet.paste(im, (0, k * 252))
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
