"""In-the-wild video benchmark: the dev talking-head clips, each frame padded with its edges to twice its
size and downscaled by 8 with the bicubic operator (a face of about 14 px in a 32x32 frame), through
`facesr restore` (faces tracked, one seed per track). Scored on the centre 128x128 (the original
frame): PSNR, and flicker = mean |SR_t - SR_t-1| - mean |HR_t - HR_t-1| (0-255), as benchmarks/video.py.

    python benchmarks/wild_video.py --frames 16 --table benchmarks/results/wild-video.md
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    from PIL import Image

    from facesr.io.images import atomic_write_text, list_images, read_image
    from facesr.wild.faces import FaceFinder
    from facesr.wild.tracks import link
    from facesr.workflows.restore import Restorer, restore_photo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", default="../shared/data/video/dev")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--methods", nargs="+", default=["bicubic", "default"])
    p.add_argument("--table")
    args = p.parse_args()
    clips = sorted(c for c in Path(args.clips).iterdir() if c.is_dir())
    finder = FaceFinder()
    rows = {m: {"psnr": [], "flicker": [], "found": 0, "frames": 0, "seconds": []} for m in args.methods}
    for clip in clips:
        hrs = [read_image(f) for f in list_images(clip)[: args.frames]]
        lrs = [np.asarray(Image.fromarray(np.pad(h, ((64, 64), (64, 64), (0, 0)), mode="edge")).resize(
            (32, 32), Image.BICUBIC)) for h in hrs]
        faces = [finder(f) for f in lrs]
        tracks = link(faces)
        for method in args.methods:
            restorer = Restorer(model=None if method == "default" else method, overrides={"precision": "fp32"})
            t0 = time.time()
            outs = []
            for t, lr in enumerate(lrs):  # one seed per clip's track: the key does not change with t
                track = next((tr.id for tr in tracks if t in tr.frames), 0)
                res = restore_photo(lr, lambda _, t=t: faces[t], restorer, upscale=8, key=f"{clip.name}-track{track}")
                outs.append(res["image"][64:192, 64:192])
                rows[method]["found"] += len(res["chips"]) > 0
            rows[method]["seconds"].append((time.time() - t0) / len(lrs))
            rows[method]["frames"] += len(lrs)
            rows[method]["psnr"] += [10 * math.log10(255**2 / np.mean((o.astype(float) - h) ** 2)) for o, h in zip(outs, hrs)]
            d = lambda fs: np.mean([np.abs(a.astype(float) - b.astype(float)).mean() for a, b in zip(fs, fs[1:])])  # noqa: E731
            rows[method]["flicker"].append(d(outs) - d(hrs))
    lines = ["# In-the-wild video: dev clips at 1/8 in a padded frame", "",
             f"{len(clips)} clips of `{args.clips}`, first {args.frames} frames, each padded with its edges to 256x256 "
             "and downscaled to 32x32 (bicubic): a face of about 14 px. Scored on the centre 128x128.", "",
             "| method | frames | frames with a restored face | PSNR (dB) | flicker | s / frame |", "|---|---|---|---|---|---|"]
    for m, r in rows.items():
        lines.append(f"| {m} | {r['frames']} | {r['found']} | {np.mean(r['psnr']):.2f} | {np.mean(r['flicker']):.2f} | "
                     f"{np.mean(r['seconds']):.2f} |")
    lines += ["", f"Command: `python benchmarks/wild_video.py --frames {args.frames}"
              f"{' --table ' + args.table if args.table else ''}`"]
    print("\n".join(lines))
    if args.table:
        atomic_write_text(args.table, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
