"""Quality table: bicubic vs a model at several step counts on an identity-folder test set.

Protocol (dev/lfw): for every person, HR = the second image (sorted), LR = the model's operator
(bicubic x8) of it, quantised to 8 bits. Each setting runs `facesr evaluate --run` and the table is
built from the summary.json files, so every number can be traced to its per-image CSV.

    python benchmarks/quality.py --hr ../shared/data/dev/lfw --steps 10 50 --limit-for 1000=20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(hr: str, model: str, steps: int, limit: int, out: Path, sampler: str, batch: int) -> dict:
    if not (out / "summary.json").exists():
        cmd = [sys.executable, "-m", "facesr.cli", "evaluate", "--run", "--hr", hr, "--protocol", "second",
               "--model", model, "--steps", str(steps), "--sampler", sampler, "--batch-size", str(batch), "-o", str(out)]
        if limit:
            cmd += ["--limit", str(limit)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((out / "summary.json").read_text())


def fmt(m: dict, key: str, digits: int = 2) -> str:
    return f"{m[key]['mean']:.{digits}f} ± {m[key]['std']:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hr", required=True)
    p.add_argument("--model", default="sr3-x8")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    p.add_argument("--limit-for", nargs="*", default=[], help="STEPS=N: evaluate only the first N faces at that setting")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default="outputs/quality")
    p.add_argument("--table", default="benchmarks/QUALITY.md")
    args = p.parse_args()
    limits = {int(k): int(v) for k, v in (s.split("=") for s in args.limit_for)}
    settings = sorted(set(args.steps) | set(limits))
    rows = []
    for steps in settings:
        s = run(args.hr, args.model, steps, limits.get(steps, 0), Path(args.out) / f"{args.sampler}-{steps}", args.sampler, args.batch_size)
        rows.append((steps, s))
    first = rows[0][1]
    lines = [
        f"| method | faces | PSNR (dB) | SSIM | consistency | seconds per face |",
        "|---|---|---|---|---|---|",
    ]
    for steps, s in rows:
        m = s["metrics"]
        lines.append(f"| bicubic (same faces as the next row) | {s['images']} | {fmt(m, 'bicubic_psnr')} | {fmt(m, 'bicubic_ssim', 4)} | {fmt(m, 'bicubic_consistency')} | – |")
        lines.append(f"| {args.model}, {args.sampler} {steps} steps | {s['images']} | {fmt(m, 'psnr')} | {fmt(m, 'ssim', 4)} | {fmt(m, 'consistency')} | {s['seconds_per_face']:.2f} |")
    proto = first["protocol"]
    header = [
        f"Test set `{args.hr}`, protocol: second image of each identity folder; operator {proto['operator']}; "
        f"{proto['colour']}, crop {proto['crop_border']}, {proto['images']}; consistency = {proto['consistency']}.",
        f"Sampling: seed {first['seed']}, precision {first['precision']}, batch {first['batch_size']}, device {first['device']}, "
        f"{first['threads']} thread(s). Command: `python benchmarks/quality.py --hr {args.hr} --model {args.model} "
        f"--steps {' '.join(map(str, args.steps))}" + (f" --limit-for {' '.join(args.limit_for)}" if args.limit_for else "") + "`.",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    Path(args.table).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
