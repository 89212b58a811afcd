"""Speed benchmark: sampling seconds per face (batch 1 and 16) and training step time.

Run with `make bench` (1 thread, bf16 autocast, tcmalloc when installed). Writes
benchmarks/SPEED.md. Timings are the median of repeated runs after a warm-up.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from facesr.models.hub import load_model
from facesr.runtime import configure_cpu


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sr3-x8")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("SPEED.md")))
    args = parser.parse_args()
    threads = configure_cpu()
    model = load_model(args.model)
    lr_size = model.cfg.hr_size // model.cfg.scale
    rows = []
    for precision in ("bf16", "fp32"):
        for batch in (1, 16):
            lr = torch.rand(batch, 3, lr_size, lr_size)
            g = torch.Generator().manual_seed(0)
            t = median_time(lambda: model.super_resolve(lr, "ddim", args.steps, generator=g, precision=precision), args.repeats)
            per_face_nfe = t / batch / args.steps
            rows.append(("sample", precision, batch, f"{model.cfg.hr_size}px", per_face_nfe, per_face_nfe * 50))
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-5)
    for patch in (64, model.cfg.hr_size):
        hr, up = torch.rand(8, 3, patch, patch), torch.rand(8, 3, patch, patch)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model({"hr": hr, "up": up}, torch.Generator().manual_seed(0))
            loss.backward()
            opt.step()
            opt.zero_grad()

        rows.append(("train step", "bf16", 8, f"{patch}px", median_time(step, args.repeats), None))
    lines = [
        "# Speed benchmark",
        "",
        f"Command: `make bench` (= `FACESR_NUM_THREADS=1 python benchmarks/speed.py`, tcmalloc preloaded when installed).",
        f"Model: `{args.model}` ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters); "
        f"machine: {platform.machine()}, {threads} thread(s), torch {torch.__version__}; median of {args.repeats} runs.",
        "",
        "| what | precision | batch | size | seconds per face per network evaluation (sampling) or per step (training) | seconds per face at 50 steps |",
        "|---|---|---|---|---|---|",
    ]
    for what, prec, batch, size, t, t50 in rows:
        lines.append(f"| {what} | {prec} | {batch} | {size} | {t:.4f} | {'' if t50 is None else f'{t50:.2f}'} |")
    lines.append("")
    lines.append(f"Training throughput at batch 8: {3600 / rows[-2][4]:.0f} steps/hour on 64px patches, "
                 f"{3600 / rows[-1][4]:.0f} steps/hour on full {model.cfg.hr_size}px images.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
