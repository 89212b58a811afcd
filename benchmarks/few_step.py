"""Few-step benchmark: the fewest network evaluations that come within 0.2 dB of a 1000-evaluation result.

Runs `facesr sweep --nfe` (every setting is an evaluation folder with per-image CSVs) for the few-step
samplers at small budgets plus the reference sampler at the reference budget, all on the same faces and
seeds, then reports for each sampler the smallest budget whose mean PSNR is within ``--tolerance`` dB of
the reference result, and its seconds per face (batch 16).

    python benchmarks/few_step.py --hr ../shared/data/dev/lfw --model sr3-x8 --strength 1.0 --limit 20 \
        --out outputs/few_step/sr3-x8-s1 --table benchmarks/FEWSTEP-sr3-x8.md
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path


def run_sweep(args, samplers: list[str], nfes: list[int], out: Path) -> list[dict]:
    if not (out / "nfe.csv").exists() or args.force:
        cmd = [sys.executable, "-m", "facesr.cli", "sweep", "--hr", args.hr, "--protocol", "second", "--limit", str(args.limit),
               "--model", args.model, "--strength", str(args.strength), "--samples", "1", "--batch-size", "16",
               "--seed", str(args.seed), "--nfe", *map(str, nfes), "--samplers", *samplers, "-o", str(out)]
        print(" ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode:
            sys.exit(f"{Path(__file__).name}: stopped, this command failed (its message is above): {' '.join(cmd)}")
    return [{k: (float(v) if k not in ("sampler",) and v not in ("", None) else v) for k, v in r.items()}
            for r in csv.DictReader(open(out / "nfe.csv"))]


def agreement(a: Path, b: Path) -> float:
    """Mean PSNR (dB) between the SR images of two setting folders, face by face: how closely a few-step
    run reproduces the reference run's output from the same starting noise (a convergence measure)."""
    import numpy as np

    from facesr.io.images import read_image
    from facesr.metrics import psnr

    # identical images (infinite PSNR) count as 100 dB so that one does not swamp the mean
    values = [min(psnr(read_image(f), read_image(b / "sr" / f.name)), 100.0) for f in sorted((a / "sr").glob("*.png"))]
    return float(np.mean(values))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hr", required=True)
    p.add_argument("--model", default="sr3-x8")
    p.add_argument("--strength", type=float, default=1.0, help="1: from pure noise; < 1: warm start from bicubic")
    p.add_argument("--samplers", nargs="+", default=["ddim", "dpmpp-2m", "heun"])
    p.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--reference-sampler", default="ddim")
    p.add_argument("--reference-nfe", type=int, default=1000)
    p.add_argument("--tolerance", type=float, default=0.2, help="dB")
    p.add_argument("--agreement", type=float, default=40.0,
                   help="dB of PSNR between a setting's output and the reference output that counts as the same image")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--table")
    p.add_argument("--force", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    rows = run_sweep(args, args.samplers, args.nfe, out / "few")
    ref_rows = run_sweep(args, [args.reference_sampler], [args.reference_nfe], out / "reference")
    ref = ref_rows[0]
    lines = [
        f"`{args.model}` on `{args.hr}` (probe = second image of each identity folder, first {int(ref['images'])} "
        f"identities; LR = the model's operator, 8-bit), one sample per face, strength {args.strength} "
        f"({'pure noise' if args.strength >= 1 else 'warm start from noised bicubic'}), seed {args.seed}, batch 16, bf16.",
        "",
        f"Reference: {args.reference_sampler} with {int(ref['network_evaluations'])} network evaluations: "
        f"PSNR {ref['psnr_mean']:.2f} dB, {ref['seconds_per_face']:.2f} s per face.",
        "",
        f"| sampler | fewest evaluations within {args.tolerance} dB of the reference's PSNR | PSNR there (dB) | s / face there "
        f"| fewest evaluations agreeing with the reference output to {args.agreement:g} dB | agreement there (dB) |",
        "|---|---|---|---|---|---|",
    ]
    ref_dir = out / "reference" / f"{args.reference_sampler}_{int(ref['steps'])}"
    agree = {id(r): agreement(out / "few" / f"{r['sampler']}_{int(r['steps'])}", ref_dir) for r in rows}
    agree[id(ref)] = None
    for sampler in args.samplers:
        mine = sorted((r for r in rows if r["sampler"] == sampler), key=lambda r: r["network_evaluations"])
        close = [r for r in mine if abs(r["psnr_mean"] - ref["psnr_mean"]) <= args.tolerance]
        same = [r for r in mine if agree[id(r)] >= args.agreement]
        cells = (f"{int(close[0]['network_evaluations'])} | {close[0]['psnr_mean']:.2f} | {close[0]['seconds_per_face']:.2f}"
                 if close else f"none up to {max(args.nfe)} | – | –")
        cells += (f" | {int(same[0]['network_evaluations'])} | {agree[id(same[0])]:.2f}" if same else f" | none up to {max(args.nfe)} | –")
        lines.append(f"| {sampler} | {cells} |")
    lines += ["", "Agreement = mean PSNR between each setting's output and the reference output for the same face and "
              "starting noise: how far a few-step run is from what the reference run converges to (deterministic "
              "samplers only approach it; stochastic ones such as pc do not).", "",
              "| sampler | network evaluations | steps | PSNR (dB) | SSIM | consistency | agreement (dB) | s / face |",
              "|---|---|---|---|---|---|---|---|"]
    unique = {(r["sampler"], r["network_evaluations"]): r for r in rows + ref_rows}  # two budgets can give one setting
    for r in sorted(unique.values(), key=lambda r: (r["sampler"], r["network_evaluations"])):
        a = agree.get(id(r))
        lines.append(f"| {r['sampler']} | {int(r['network_evaluations'])} | {int(r['steps'])} | {r['psnr_mean']:.2f} ± "
                     f"{r['psnr_std']:.2f} | {r['ssim_mean']:.4f} | {r['consistency_mean']:.2f} | {'–' if a is None else f'{a:.2f}'} | "
                     f"{r['seconds_per_face']:.2f} |")
    skipped = json.loads((out / "few" / "sweep.json").read_text()).get("skipped", [])
    if skipped:
        lines += ["", "Budgets the sweep skipped (no setting of that sampler fits, or the sampler refuses it):", ""]
        lines += [f"- {s['sampler']} at {s['nfe']} evaluations" + (f" ({s['steps']} steps)" if "steps" in s else "")
                  + f": {s['reason']}" for s in skipped]
    cmd = (f"python benchmarks/few_step.py --hr {args.hr} --model {args.model} --strength {args.strength} "
           f"--limit {args.limit} --out {args.out}")
    for flag, value, default in (("--samplers", args.samplers, p.get_default("samplers")), ("--nfe", args.nfe, p.get_default("nfe")),
                                 ("--reference-sampler", [args.reference_sampler], [p.get_default("reference_sampler")]),
                                 ("--reference-nfe", [args.reference_nfe], [p.get_default("reference_nfe")])):
        if list(value) != list(default):
            cmd += f" {flag} {' '.join(map(str, value))}"
    lines += ["", f"Command: `{cmd}` (plots: `{out}/few/quality_vs_nfe.png`)."]
    text = "\n".join(lines) + "\n"
    if args.table:
        Path(args.table).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
