"""Does facesr's PyTorch port of dlib's face ResNet give dlib's descriptors? (issue 21, item 1)

    python benchmarks/dlib_port.py --hr ../shared/data/dev/lfw ../shared/data/dev/celeba

For every chip: dlib's 5-point predictor on the chip (enlarged to 150 px as DlibEmbedder does), dlib's
own 150-px face chip (padding 0.25), then dlib's descriptor of that chip and the port's. Reports the
cosine between the two (target: within 1e-4 of 1) and the largest coordinate difference, and the
time of each network per face at batch 32 on one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facesr.identity.dlib_resnet import load_dlib_resnet
from facesr.identity.embedders import load_dlib, upsample_min_side
from facesr.io.images import atomic_write_text, list_images, read_image, to_tensor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", nargs="+", required=True)
    ap.add_argument("--results", default="benchmarks/results/dlib-port.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dl, models = load_dlib()
    predictor = dl.shape_predictor(models.pose_predictor_five_point_model_location())
    recogniser = dl.face_recognition_model_v1(models.face_recognition_model_location())
    net = load_dlib_resnet()
    rows = []
    for root in args.hr:
        paths = list_images(root, recursive=True)
        cos, diff, t_dlib, t_port = [], [], 0.0, 0.0
        for start in range(0, len(paths), 32):
            chips = []
            for p in paths[start:start + 32]:
                img = np.ascontiguousarray(upsample_min_side(read_image(p), 150))
                shape = predictor(img, dl.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1))
                chips.append(dl.get_face_chip(img, shape, 150, 0.25))
            t = time.perf_counter()
            want = np.array([np.array(v) for v in recogniser.compute_face_descriptor(chips)], np.float32)
            t_dlib += time.perf_counter() - t
            t = time.perf_counter()
            with torch.no_grad():
                got = net(torch.stack([to_tensor(c) for c in chips])).numpy()
            t_port += time.perf_counter() - t
            cos.append((want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1))
            diff.append(np.abs(want - got).max(1))
        cos, diff = np.concatenate(cos), np.concatenate(diff)
        rows.append(f"| {root} | {len(paths)} | {1 - cos.min():.2e} | {np.median(1 - cos):.2e} | {diff.max():.2e} "
                    f"| {1000 * t_dlib / len(paths):.1f} | {1000 * t_port / len(paths):.1f} |")
        print(rows[-1], file=sys.stderr)
    text = ["# dlib's face ResNet: the PyTorch port against dlib", "",
            f"`python benchmarks/dlib_port.py --hr {' '.join(args.hr)}`", "",
            "Each chip's 150-px dlib face chip goes through dlib's `compute_face_descriptor` and through "
            "`facesr.identity.dlib_resnet` (weights read from face-recognition-models' file by "
            "`identity/dlib_format.py`). Target (issue 21): cosine within 1e-4 of 1 on the dev chips. Times: ms per "
            "face at batch 32, one thread, fp32, network only.", "",
            "| chips | n | worst 1 - cosine | median 1 - cosine | largest coordinate difference | dlib ms/face "
            "| port ms/face |", "|---|---|---|---|---|---|---|"] + rows
    atomic_write_text(Path(args.results), "\n".join(text) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
