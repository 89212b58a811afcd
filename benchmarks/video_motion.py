"""How far do consecutive frames of the aligned video clips move? The sub-pixel motion a multi-frame model can use.

For each clip (aligned HR frames, e.g. ../shared/data/video/dev/<clip>/), the global shift between consecutive
frames is found by phase correlation (Hann window, parabolic sub-pixel peak) on the grey HR frames, in HR pixels;
at x8 one LR pixel is 8 of them. MF-SR3's synthetic bursts shift each neighbour by up to ``motion_px`` HR pixels
(uniform per axis), so their median shift is about half of that.

    python benchmarks/video_motion.py --clips ../shared/data/video/dev --frames 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dx, dy) of b relative to a, in pixels, by phase correlation with a parabolic sub-pixel peak."""
    cross = np.fft.fft2(a) * np.conj(np.fft.fft2(b))
    r = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    peak = np.unravel_index(r.argmax(), r.shape)
    out = []
    for axis in (1, 0):
        n, c = r.shape[axis], peak[axis]
        lo, hi = list(peak), list(peak)
        lo[axis], hi[axis] = (c - 1) % n, (c + 1) % n
        y0, y1, y2 = r[tuple(lo)], r[peak], r[tuple(hi)]
        v = c + (y0 - y2) / (2 * (y0 - 2 * y1 + y2) + 1e-12)
        out.append(v - n if v > n / 2 else v)
    return out[0], out[1]


def main() -> int:
    from facesr.errors import FacesrError
    from facesr.io.images import list_images, read_image

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", required=True)
    p.add_argument("--frames", type=int, default=16, help="the first N frames of each clip, as benchmarks/video.py")
    p.add_argument("--scale", type=int, default=8)
    args = p.parse_args()
    if not Path(args.clips).is_dir():
        print(f"video_motion.py: {args.clips}: not a folder", file=sys.stderr)
        return 2
    failed = 0
    print("| clip | median shift (HR px) | 90th percentile | largest | median shift (LR px) |")
    print("|---|---|---|---|---|")
    every = []
    for clip in sorted(c for c in Path(args.clips).iterdir() if c.is_dir()):
        try:  # an unreadable frame or a clip of one frame: said in one line, the other clips still measured
            grey = [read_image(f).astype(np.float64).mean(-1) for f in list_images(clip)[: args.frames]]
            if len(grey) < 2 or len({g.shape for g in grey}) > 1:
                raise FacesrError(f"{clip}: needs 2 or more frames of one size")
        except FacesrError as exc:
            print(f"video_motion.py: {exc}", file=sys.stderr)
            failed += 1
            continue
        window = np.outer(np.hanning(grey[0].shape[0]), np.hanning(grey[0].shape[1]))
        shifts = [float(np.hypot(*phase_shift(a * window, b * window))) for a, b in zip(grey, grey[1:])]
        every += shifts
        print(f"| {clip.name} | {np.median(shifts):.2f} | {np.percentile(shifts, 90):.2f} | {max(shifts):.2f} | "
              f"{np.median(shifts) / args.scale:.3f} |")
    if every:
        print(f"| all ({len(every)} frame pairs) | {np.median(every):.2f} | {np.percentile(every, 90):.2f} | "
              f"{max(every):.2f} | {np.median(every) / args.scale:.3f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
