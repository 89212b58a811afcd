"""Quality table: bicubic vs a model under several sampling recipes on an identity-folder test set.

Protocol: for every identity folder, HR = its second image (sorted), LR = the model's own operator
applied to HR and quantised to 8 bits. Each recipe runs `facesr evaluate --run` (CSV + summary.json
under --out), and the Markdown table is built from those summaries, so every number can be traced to
its per-image CSV. A recipe is SAMPLER:STEPS:STRENGTH:SAMPLES, optionally :INIT to warm-start from a
regression model's output instead of bicubic, and @N to use only the first N faces (bicubic is then
reported on the same N faces).

    python benchmarks/quality.py --hr ../shared/data/dev/lfw --model sr3-x8 \
        --recipe ddim:10:0.5:4 ddim:10:1:1 ddim:50:1:1 ancestral:1000:1:1@20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def parse_recipe(text: str) -> dict:
    """SAMPLER:STEPS:STRENGTH:SAMPLES[:INIT][@N]; INIT names a regression model to warm-start from."""
    body, _, limit = text.partition("@")
    sampler, steps, strength, samples, *init = body.split(":")
    return {"sampler": sampler, "steps": int(steps), "strength": float(strength), "samples": int(samples),
            "init": init[0] if init else None, "limit": int(limit or 0),
            "tag": text.replace(":", "_").replace("@", "_n").replace("/", "_")}


def run(args, r: dict, model: str | None = None) -> dict:
    """Evaluate one recipe of ``model`` (default --model), or the model alone when r is {"tag": ...}."""
    out = Path(args.out) / r["tag"]
    if not (out / "summary.json").exists() or args.force:
        cmd = [sys.executable, "-m", "facesr.cli", "evaluate", "--run", "--hr", args.hr, "--protocol", "second",
               "--model", model or args.model, "--batch-size", str(args.batch_size), "--seed", str(args.seed), "-o", str(out)]
        if "sampler" in r:
            cmd += ["--sampler", r["sampler"], "--steps", str(r["steps"]), "--strength", str(r["strength"]),
                    "--samples", str(r["samples"])]
        if r.get("init"):
            cmd += ["--init", r["init"]]
        if r.get("limit"):
            cmd += ["--limit", str(r["limit"])]
        if args.identity:
            cmd += ["--identity", args.identity]
        print(" ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode:
            sys.exit(f"{Path(__file__).name}: stopped, this command failed (its message is above): {' '.join(cmd)}")
    return json.loads((out / "summary.json").read_text())


def fmt(m: dict, key: str, digits: int = 2) -> str:
    return f"{m[key]['mean']:.{digits}f} ± {m[key]['std']:.{digits}f}" if key in m else "–"


def identity_cells(s: dict, kind: str) -> str:
    ident = s.get("identity")
    if not ident:
        return ""
    cs = ident["cs" if kind == "sr" else f"{kind}_cs"]["mean"] if kind != "hr" else 1.0
    rank1 = ident.get(f"{kind}_probes", {}).get("rank1")
    return f" {cs:.4f} | {'–' if rank1 is None else f'{rank1:.3f}'} |"


def table(args, results: list[tuple[dict, dict]]) -> str:
    first = results[0][1]
    proto = first["protocol"]
    ident = first.get("identity")
    id_head = " CS | rank-1 |" if ident else ""
    id_rule = "---|---|" if ident else ""
    lines = [
        f"Test set `{args.hr}` (second image of each identity folder); LR = {proto['operator']['name']} "
        f"x{proto['operator']['scale']} of HR, 8-bit. Metrics: {proto['colour']}, crop {proto['crop_border']}, "
        f"{proto['images']}; consistency = {proto['consistency']}. Seed {first['seed']}, {first['precision']}, "
        f"batch {first['batch_size']}, {first['device']}, {first['threads']} thread(s).",
        "",
        "| method | sampler | steps | strength | start from | samples | network evaluations | faces | PSNR (dB) | SSIM | consistency | s / face |" + id_head,
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + id_rule,
    ]
    seen_sets = set()
    for r, s in results:
        m = s["metrics"]
        if s["images"] not in seen_sets:
            seen_sets.add(s["images"])
            if s.get("identity"):
                lines.append(f"| HR probe (ceiling) | – | – | – | – | – | – | {s['images']} | – | – | – | – |" + identity_cells(s, "hr"))
            lines.append(f"| bicubic | – | – | – | – | – | 0 | {s['images']} | {fmt(m, 'bicubic_psnr')} | "
                         f"{fmt(m, 'bicubic_ssim', 4)} | {fmt(m, 'bicubic_consistency')} | – |" + identity_cells(s, "bicubic"))
        start = "noise" if r["strength"] >= 1 else (r["init"] or "bicubic")
        lines.append(f"| {args.model} | {r['sampler']} | {r['steps']} | {r['strength']} | {start} | {r['samples']} | "
                     f"{s['network_evaluations']} | {s['images']} | {fmt(m, 'psnr')} | {fmt(m, 'ssim', 4)} | "
                     f"{fmt(m, 'consistency')} | {s['seconds_per_face']:.2f} |" + identity_cells(s, "sr"))
    if ident:
        lines += ["", f"Identity: {ident['embedder']} embeddings; CS = cos(probe, HR); rank-1 = closed-set identification "
                      f"of the probe against the first image of each of the {ident['gallery_identities']} identities."]
    cmd = f"python benchmarks/quality.py --hr {args.hr} --model {args.model} --recipe {' '.join(args.recipe)}"
    lines += ["", f"Command: `{cmd}{' --identity ' + args.identity if args.identity else ''}`"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hr", required=True)
    p.add_argument("--model", default="sr3-x8")
    p.add_argument("--recipe", nargs="+", required=True, help="SAMPLER:STEPS:STRENGTH:SAMPLES[:INIT][@N]")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/quality")
    p.add_argument("--table", default=None, help="also write the Markdown table to this file")
    p.add_argument("--force", action="store_true", help="re-run recipes whose summary.json exists")
    p.add_argument("--identity", help="add identity metrics with this embedder (e.g. dlib)")
    args = p.parse_args()
    results = [(r, run(args, r)) for r in map(parse_recipe, args.recipe)]
    text = table(args, results)
    if args.table:
        Path(args.table).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
