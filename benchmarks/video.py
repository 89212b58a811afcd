"""Video benchmark: a multi-frame model against a single-frame model on the same frames of real clips.

For every clip folder (aligned HR frames, e.g. ../shared/data/video/dev/<clip>/), LR frames are the
model's operator applied to HR (8-bit). Each model restores the first --frames frames of the clip with
`facesr.workflows.video_sr` (a sliding window of its own k frames, one noise seed per clip); every
restored frame is scored against its HR frame (PSNR, SSIM, identity CS with dlib). Temporal flicker =
mean |SR_t - SR_{t-1}| minus mean |HR_t - HR_{t-1}| (0-255 scale): how much more the output changes
from frame to frame than the real video does. ``NAME:no-neighbours`` runs a multi-frame model with each
frame in place of its neighbours: the same network without what the neighbours add (its fair baseline).

    python benchmarks/video.py --clips ../shared/data/video/dev --models sr3-x8 mfsr3-x8 --frames 16 \
        --table benchmarks/VIDEO.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np


def clip_metrics(model, clip: Path, n_frames: int, opts, device, embedder, work: Path, neighbours: bool = True) -> dict:
    from facesr.io.images import list_images, read_image, to_tensor, to_uint8, write_image
    from facesr.metrics import psnr, ssim
    from facesr.workflows.video_sr import upscale_clip

    hr_files = list_images(clip)[:n_frames]
    hrs = [read_image(f) for f in hr_files]
    lr_dir = work / "lr" / clip.name
    for f, hr in zip(hr_files, hrs):
        write_image(lr_dir / f"{f.stem}.png", to_uint8(model.lr_protocol.operator_lr(to_tensor(hr)[None])[0]))
    (lr_dir / "meta.json").write_text(json.dumps({"fps": 25}))
    res = upscale_clip(model, lr_dir, work / "sr", opts, device, video=False, neighbours=neighbours)
    srs = [read_image(p) for p in sorted(Path(res["frames_dir"]).glob("*.png"))]
    out = {"psnr": [psnr(s, h) for s, h in zip(srs, hrs)], "ssim": [ssim(s, h) for s, h in zip(srs, hrs)]}
    if embedder is not None:
        from facesr.identity.recognition import cosine_similarity

        out["cs"] = cosine_similarity(embedder.embed(srs), embedder.embed(hrs)).tolist()

    def motion(frames):
        return float(np.mean([np.abs(a.astype(np.float64) - b).mean() for a, b in zip(frames[1:], frames[:-1])]))

    out["flicker"] = motion(srs) - motion(hrs)
    out["seconds_per_frame"] = res["seconds_per_frame"]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", required=True, help="folder of clip folders of aligned HR frames")
    p.add_argument("--models", nargs="+", default=["sr3-x8", "mfsr3-x8", "mfsr3-x8:no-neighbours"],
                   help="models; NAME:no-neighbours = the multi-frame model with each frame in place of its neighbours")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (the first N)")
    p.add_argument("--max-clips", type=int, default=0, help="use only the first N clips (0: all)")
    p.add_argument("--identity", default="dlib")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table")
    args = p.parse_args()
    from facesr.methods.hub import load_model
    from facesr.identity.embedders import make_embedder
    from facesr.engine.options import SamplingOptions

    embedder = make_embedder(args.identity) if args.identity else None
    clips = sorted(c for c in Path(args.clips).iterdir() if c.is_dir())[: args.max_clips or None]
    rows = []
    for name in args.models:
        base, _, variant = name.partition(":")
        if variant not in ("", "no-neighbours"):
            raise SystemExit(f"--models {name}: the only variant is NAME:no-neighbours")
        model = load_model(base)
        opts = SamplingOptions.for_model(model, seed=args.seed)
        per_clip = []
        with tempfile.TemporaryDirectory() as tmp:
            for clip in clips:
                per_clip.append(clip_metrics(model, clip, args.frames, opts, "cpu", embedder, Path(tmp),
                                             neighbours=variant != "no-neighbours"))
                print(f"{name} {clip.name}: PSNR {np.mean(per_clip[-1]['psnr']):.2f}", flush=True)
        frames = lambda key: [v for c in per_clip for v in c[key]]  # noqa: E731
        rows.append({"model": name, "frames_in": 1 if variant else model.needs.frames, "evaluations": model.network_evaluations(opts),
                     "psnr": np.mean(frames("psnr")), "psnr_std": np.std(frames("psnr")), "ssim": np.mean(frames("ssim")),
                     "cs": np.mean(frames("cs")) if embedder else None,
                     "flicker": statistics.mean(c["flicker"] for c in per_clip),
                     "s_per_frame": statistics.mean(c["seconds_per_frame"] for c in per_clip),
                     "n": len(frames("psnr"))})
    lines = [
        f"Clips: `{args.clips}` ({len(clips)} clips, first {args.frames} frames each); LR = each model's operator applied "
        f"to the HR frame, 8-bit; every frame restored with its model's recommended recipe and a sliding window of the "
        f"model's own number of frames; one noise seed per clip. Flicker = mean |SR_t - SR_t-1| - mean |HR_t - HR_t-1| "
        f"(0-255). CS: {args.identity}.",
        "",
        "| model | frames in | network evaluations per frame | frames scored | PSNR (dB) | SSIM | CS | flicker | s / frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cs = "–" if r["cs"] is None else f"{r['cs']:.4f}"
        lines.append(f"| {r['model']} | {r['frames_in']} | {r['evaluations']} | {r['n']} | {r['psnr']:.2f} ± {r['psnr_std']:.2f} | "
                     f"{r['ssim']:.4f} | {cs} | {r['flicker']:+.2f} | {r['s_per_frame']:.2f} |")
    lines += ["", f"Command: `python benchmarks/video.py --clips {args.clips} --models {' '.join(args.models)} --frames {args.frames}`"]
    text = "\n".join(lines) + "\n"
    if args.table:
        Path(args.table).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
