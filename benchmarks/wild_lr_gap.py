"""Where the in-the-wild rank-1 gap comes from: the same face, its exact chip frame (from the full-resolution
photo, so alignment plays no part), LR chips made several ways, restored by one model, identified by each
judge (dlib's ResNet, the ArcFace judge) against the dev/lfw gallery. The first row is the dev protocol (the
aligned chip downscaled by the model's operator): "the same model on the aligned chips".

    python benchmarks/wild_lr_gap.py --limit 60
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    from PIL import Image

    import facesr
    from facesr.degrade.resample import quantize
    from facesr.identity.embedders import load_dlib, make_embedder
    from facesr.identity.recognition import identity_split
    from facesr.io.images import read_image, to_tensor, to_uint8
    from facesr.wild.faces import ChipFrame, cut_chip

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", default="../shared/data/dev/lfw_photos")
    p.add_argument("--gallery", default="../shared/data/dev/lfw")
    p.add_argument("--model", default="msrresnet-x8")
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("--identity", nargs="+", default=["dlib", "faceplugin"])
    args = p.parse_args()
    dlib, models = load_dlib()
    hog, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    judges, split = [make_embedder(spec) for spec in args.identity], identity_split(args.gallery)
    names = sorted(split)
    galleries = [j.embed([read_image(split[n]["gallery"]) for n in names]) for j in judges]
    model = facesr.load_model(args.model, device="cpu")
    n_lr = model.lr_size
    people = [d for d in sorted(Path(args.photos).iterdir())  # those of the scenes of wild.py
              if d.name in split and (d / f"{d.name}_0002.jpg").is_file()][: args.limit]
    right = {}

    def judge(kind, lr):
        sr = facesr.upscale([lr], model=model, precision="fp32")[0]
        hits = right.setdefault(kind, [0] * len(judges))
        for i, (j, gallery) in enumerate(zip(judges, galleries)):
            hits[i] += names[int(np.argmax(gallery @ j.embed([sr])[0]))] == who

    for d in people:
        who = d.name
        photo = read_image(d / f"{d.name}_0002.jpg")
        h, w = photo.shape[:2]
        det = min(hog(photo, 1), key=lambda r: ((r.left() + r.right() - w) ** 2 + (r.top() + r.bottom() - h) ** 2))
        cd = dlib.get_face_chip_details(predictor(photo, det), size=128, padding=0.2)
        frame = ChipFrame((cd.rect.left() + cd.rect.right()) / 2, (cd.rect.top() + cd.rect.bottom()) / 2,
                          cd.rect.width(), cd.angle)
        aligned = to_tensor(read_image(split[who]["probe"]))[None]
        judge("the dev protocol: the aligned chip downscaled", to_uint8(model.lr_protocol.operator_lr(aligned)[0]))
        for label, div in (("photo / 8", 8.0), ("photo downscaled so the chip is LR-size", frame.side / n_lr)):
            n = round(w / div)
            div = w / n
            small = np.asarray(Image.fromarray(photo).resize((n, round(h / div)), Image.BICUBIC))
            f = ChipFrame((frame.cx + 0.5) / div - 0.5, (frame.cy + 0.5) / div - 0.5, frame.side / div, frame.angle)
            hr = to_tensor(cut_chip(small, f, 128, mode="bilinear"))[None]
            judge(f"{label}, cut at 128 and downscaled", to_uint8(quantize(model.operator.down(hr))[0]))
            judge(f"{label}, cut at {n_lr}, bilinear", cut_chip(small, f, n_lr, mode="bilinear"))
            judge(f"{label}, cut at {n_lr}, bicubic", cut_chip(small, f, n_lr, mode="bicubic"))
    print(f"| LR chip ({len(people)} faces, {args.model}) | " + " | ".join(f"rank-1 after SR ({j.name})" for j in judges)
          + " |\n|---|" + "---|" * len(judges))
    for kind, hits in right.items():
        print(f"| {kind} | " + " | ".join(f"{n / len(people):.3f}" for n in hits) + " |")


if __name__ == "__main__":
    main()
