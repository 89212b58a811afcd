"""How close `facesr restore` frames a face to the framing the dev chips were made with (dlib HOG + 5
points at full resolution), when the photo is downscaled by 1, 4 and 8: centre offset and side error
relative to the chip side, and angle error; with the second framing from the restored chip (facesr's
default) and without it.

    python benchmarks/wild_alignment.py --photos 40
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    from PIL import Image

    from facesr.identity.embedders import load_dlib
    from facesr.io.images import read_image
    from facesr.wild.faces import ChipFrame, FaceFinder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/dev/lfw_photos")
    p.add_argument("--photos", type=int, default=40)
    args = p.parse_args()
    dlib, models = load_dlib()
    hog, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    finders = {"on": FaceFinder(), "off": FaceFinder(realign=False)}
    errs = {(div, r): [] for div in (1, 4, 8) for r in finders}
    for path in sorted(Path(args.root).glob("*/*.jpg"))[: 2 * args.photos : 2]:
        img = read_image(path)
        h, w = img.shape[:2]
        dets = hog(img, 1)
        if not dets:
            continue
        det = min(dets, key=lambda r: ((r.left() + r.right() - w) ** 2 + (r.top() + r.bottom() - h) ** 2))
        d = dlib.get_face_chip_details(predictor(img, det), size=128, padding=0.2)
        ref = ChipFrame((d.rect.left() + d.rect.right()) / 2, (d.rect.top() + d.rect.bottom()) / 2, d.rect.width(), d.angle)
        for div, realign in errs:
            small = np.asarray(Image.fromarray(img).resize((w // div, h // div), Image.BICUBIC)) if div > 1 else img
            faces = finders[realign](small)
            if not faces:
                errs[div, realign].append(None)
                continue
            k = w / (w // div)
            fr = min(faces, key=lambda f: (f.frame.scaled(k).cx - ref.cx) ** 2 + (f.frame.scaled(k).cy - ref.cy) ** 2).frame.scaled(k)
            errs[div, realign].append((math.hypot(fr.cx - ref.cx, fr.cy - ref.cy) / ref.side, fr.side / ref.side - 1, fr.angle - ref.angle))
    print("| photo scale | second framing | found | centre offset / chip side (median, max) | chip side error (median, max; signed median) | angle (median) |")
    print("|---|---|---|---|---|---|")
    for (div, realign), e in errs.items():
        a = np.array([x for x in e if x])
        print(f"| 1/{div} | {realign} | {len(a)}/{len(e)} | {np.median(a[:, 0]):.3f}, {a[:, 0].max():.3f} | {np.median(np.abs(a[:, 1])):.3f}, "
              f"{np.abs(a[:, 1]).max():.3f}; {np.median(a[:, 1]):+.3f} | {np.median(np.abs(a[:, 2])):.3f} rad |")


if __name__ == "__main__":
    main()
