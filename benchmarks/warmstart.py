"""Warm start benchmark: diffusion quality against network evaluations, starting from bicubic or a regression model.

A warm start noises a fast estimate to the level ``strength`` and runs only the remaining sampler steps.
For each strength and step count this runs the diffusion model twice, once starting from bicubic
and once from the regression model's output (``--init``). It also runs the regression model alone, and
pure noise (strength 1) as a reference. Every cell is a `facesr evaluate --run` folder with per-image CSVs.

    python benchmarks/warmstart.py --hr ../shared/data/dev/lfw --model sr3-x8 --init msrresnet-x8 \
        --strengths 0.3 0.5 0.7 --steps 1 2 4 8 16 --limit 100 --identity dlib \
        --table benchmarks/WARMSTART.md --plot benchmarks/warmstart-sr3-x8.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from quality import fmt, run  # noqa: E402


def recipes(args) -> list[dict]:
    rows = []
    for steps in args.steps:
        rows.append({"sampler": args.sampler, "steps": steps, "strength": 1.0, "samples": 1, "init": None})
        for strength in args.strengths:
            for init in (None, args.init):
                rows.append({"sampler": args.sampler, "steps": steps, "strength": strength, "samples": 1, "init": init})
    for r in rows:
        r["limit"] = args.limit
        r["tag"] = f"{r['sampler']}_{r['steps']}_{r['strength']}_{r['init'] or 'bicubic'}_n{args.limit}"
    return rows


def start_name(r: dict) -> str:
    return "noise" if r["strength"] >= 1 else (r["init"] or "bicubic")


def identity_cells(s: dict, kind: str = "sr") -> str:
    ident = s.get("identity")
    if not ident:
        return ""
    cs = ident["cs" if kind == "sr" else f"{kind}_cs"]["mean"]
    return f" {cs:.4f} | {ident.get(f'{kind}_probes', {}).get('rank1', float('nan')):.3f} |"


def table(args, init_summary: dict, results: list[tuple[dict, dict]]) -> str:
    s0 = results[0][1]
    ident = s0.get("identity")
    head = "| start from | strength | steps | network evaluations | PSNR (dB) | SSIM | consistency | s / face |"
    rule = "|---|---|---|---|---|---|---|---|"
    if ident:
        head, rule = head + " CS | rank-1 |", rule + "---|---|"
    m0 = s0["metrics"]
    lines = [
        f"Test set `{args.hr}`, second image of each identity folder, first {s0['images']} faces; LR = the model's "
        f"operator applied to HR, 8-bit. Diffusion model `{args.model}` with the {args.sampler} sampler and one sample "
        f"per face; warm starts noise the estimate to `strength` and run `steps` levels from there. Seed "
        f"{s0['seed']}, {s0['precision']}, batch {s0['batch_size']}, {s0['device']}, {s0['threads']} thread(s).",
        "",
        head,
        rule,
        f"| bicubic alone | – | – | 0 | {fmt(m0, 'bicubic_psnr')} | {fmt(m0, 'bicubic_ssim', 4)} | "
        f"{fmt(m0, 'bicubic_consistency')} | – |" + identity_cells(s0, "bicubic"),
    ]
    mi = init_summary["metrics"]
    lines.append(f"| {args.init} alone | – | – | 0 (1 regression pass) | {fmt(mi, 'psnr')} | {fmt(mi, 'ssim', 4)} | "
                 f"{fmt(mi, 'consistency')} | {init_summary['seconds_per_face']:.3f} |" + identity_cells(init_summary))
    order = sorted(results, key=lambda rs: (-rs[0]["strength"], start_name(rs[0]) != "bicubic", rs[0]["steps"]))
    for r, s in order:
        m = s["metrics"]
        lines.append(f"| {start_name(r)} | {r['strength']} | {r['steps']} | {s['network_evaluations']} | {fmt(m, 'psnr')} | "
                     f"{fmt(m, 'ssim', 4)} | {fmt(m, 'consistency')} | {s['seconds_per_face']:.2f} |" + identity_cells(s))
    if ident:
        lines += ["", f"Identity: {ident['embedder']} embeddings; CS = cos(output, HR); rank-1 = identification of the "
                      f"output against the first image of each of the {ident['gallery_identities']} identities."]
    cmd = (f"python benchmarks/warmstart.py --hr {args.hr} --model {args.model} --init {args.init} --sampler {args.sampler} "
           f"--strengths {' '.join(map(str, args.strengths))} --steps {' '.join(map(str, args.steps))} --limit {args.limit}"
           + (f" --identity {args.identity}" if args.identity else ""))
    lines += ["", f"Command: `{cmd}`"]
    return "\n".join(lines) + "\n"


def plot(args, init_summary: dict, results: list[tuple[dict, dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("psnr", "PSNR (dB)")] + ([("cs", "identity CS")] if results[0][1].get("identity") else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.2), squeeze=False)
    series: dict[tuple, list] = {}
    for r, s in results:
        series.setdefault((start_name(r), r["strength"]), []).append((s["network_evaluations"], s))
    for ax, (key, label) in zip(axes[0], keys):
        def value(s, kind="sr"):
            if key == "psnr":
                return s["metrics"]["psnr" if kind == "sr" else f"{kind}_psnr"]["mean"]
            return s["identity"]["cs" if kind == "sr" else f"{kind}_cs"]["mean"]

        for (start, strength), pts in sorted(series.items(), key=lambda kv: (kv[0][0] == "noise", kv[0])):
            pts.sort(key=lambda p: p[0])
            style = "--" if start == "bicubic" else ("-" if start != "noise" else ":")
            name = "pure noise" if start == "noise" else f"{start}, strength {strength}"
            ax.plot([p[0] for p in pts], [value(p[1]) for p in pts], style, marker="o", label=name)
        ax.axhline(value(results[0][1], "bicubic"), color="grey", lw=1, label="bicubic alone")
        ax.axhline(value(init_summary), color="black", lw=1, label=f"{args.init} alone")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("network evaluations per face")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{args.model}: warm start from bicubic vs {args.init} ({args.sampler}, 1 sample)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hr", required=True)
    p.add_argument("--model", default="sr3-x8")
    p.add_argument("--init", default="msrresnet-x8", help="regression model to warm-start from")
    p.add_argument("--sampler", default="ddim")
    p.add_argument("--strengths", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/warmstart")
    p.add_argument("--table", help="also write the Markdown table to this file")
    p.add_argument("--plot", help="write PSNR (and CS) against network evaluations to this PNG")
    p.add_argument("--force", action="store_true")
    p.add_argument("--identity", help="add identity metrics with this embedder (e.g. dlib)")
    args = p.parse_args()
    init_summary = run(args, {"tag": f"{Path(args.init).name}-alone_n{args.limit}", "limit": args.limit}, model=args.init)
    results = [(r, run(args, r)) for r in recipes(args)]
    text = table(args, init_summary, results)
    if args.table:
        Path(args.table).write_text(text)
    if args.plot:
        plot(args, init_summary, results, args.plot)
    print(text)


if __name__ == "__main__":
    main()
