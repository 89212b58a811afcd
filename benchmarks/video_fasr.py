"""FASR on a video track (issue 22, item 1): does conditioning each frame on the track's own tiny faces help?

For every clip folder (aligned HR frames, e.g. ../shared/data/video/dev/<clip>/), the first --frames frames are made
LR with the model's operator (8-bit). A FASR model restores each frame twice: conditioned on the track, as `facesr
restore` conditions a video track (the mean of every LR face of the track, embedded by the bundled student of the
model's network: ``restore_video.track_embedder``), and on its null identity (its fair baseline). Each output is
scored against its HR frame: PSNR and identity CS by each judge. The clip is the unit: per-clip means, and the paired
difference (track - null) with a bootstrap interval over clips. The clips have no gallery of other people, so there
is no rank-1 here. A judge from the network of the condition (dlib) is marked *: it is not independent of the model.
Each clip's scores are appended to `--state` (default: the table's name + `.partial.jsonl`) as they exist; a killed
run started again with the same settings and weights keeps the clips it finished (`--overwrite`: afresh).

    python benchmarks/video_fasr.py --clips ../shared/data/video/dev --model fasr-x8 --frames 8 --precision fp32 \
        --table benchmarks/results/fasr-video-x8.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np


def clip_scores(model, clip: Path, n_frames: int, opts, device, judges) -> dict:
    """Per condition ("track", "null"): mean PSNR and, per judge, mean CS of the clip's first frames."""
    from facesr.engine.conditions import identity_vector, null_identity
    from facesr.engine.run import super_resolve_tensors
    from facesr.io.images import list_images, read_image, to_tensor, to_uint8
    from facesr.methods.base import Conditions
    from facesr.identity.recognition import cosine_similarity
    from facesr.metrics import psnr
    from facesr.metrics.identity import embed_each
    from facesr.workflows.restore_video import track_embedder

    hr_files = list_images(clip)[:n_frames]
    hrs = [read_image(f) for f in hr_files]
    lrs = [model.lr_protocol.operator_lr(to_tensor(h)[None])[0] for h in hrs]
    lrs = [to_tensor(to_uint8(lr)) for lr in lrs]  # 8-bit, as a stored LR frame
    track = identity_vector(model, [to_uint8(lr) for lr in lrs], embedder=track_embedder(model))
    keys = [f"{clip.name}/{f.stem}" for f in hr_files]
    out = {}
    for name, vector in (("track", track), ("null", null_identity(model))):
        srs = super_resolve_tensors(model, lrs, keys, opts, device, conditions=[Conditions(vector=vector)] * len(lrs))
        srs = [to_uint8(s) for s in srs]
        row = {"psnr": statistics.mean(psnr(s, h) for s, h in zip(srs, hrs))}
        for judge in judges:
            a = embed_each(judge, srs, keys, on_error=print)
            b = embed_each(judge, hrs, keys, on_error=print)
            ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)  # a face a judge cannot read has no CS
            row[judge.name] = float(cosine_similarity(a[ok], b[ok]).mean()) if ok.any() else float("nan")
        out[name] = row
    return out


def main() -> int:
    from facesr.engine.options import SamplingOptions
    from facesr.errors import FacesrError
    from facesr.identity.embedders import make_embedder
    from facesr.io.images import atomic_write_text
    from facesr.io.records import ResultLog
    from facesr.io.weights import file_sha256
    from facesr.methods.hub import load_model
    from facesr.metrics.stats import paired_difference
    from facesr.runtime import resolve_device
    from facesr.workflows.restore_video import track_embedder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="../shared/data/video/dev")
    ap.add_argument("--model", default="fasr-x8")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--identity", nargs="+", default=["dlib", "faceplugin"])
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--table", default="benchmarks/results/fasr-video-x8.md")
    ap.add_argument("--state", help="finished clips, kept across runs (default: TABLE.partial.jsonl)")
    ap.add_argument("--overwrite", action="store_true", help="forget finished clips and measure every one again")
    args = ap.parse_args()
    if not Path(args.clips).is_dir():
        raise SystemExit(f"video_fasr.py: --clips {args.clips}: not a folder of clip folders")
    if args.frames < 1:
        raise SystemExit(f"video_fasr.py: --frames must be at least 1, got {args.frames}")
    state_path = Path(args.state or args.table + ".partial.jsonl")
    if state_path.exists() and not state_path.is_file():
        raise SystemExit(f"video_fasr.py: --state {state_path}: not a file")
    device = resolve_device("auto")
    model = load_model(args.model, device)
    if not model.needs.vector_dim:
        raise SystemExit(f"{args.model}: not a FASR model (it takes no identity vector)")
    opts = SamplingOptions.for_model(model, seed=0, precision=args.precision)
    judges = [make_embedder(s) for s in args.identity]
    dependent = set(model.identity_networks)
    clips = sorted(p for p in Path(args.clips).iterdir() if p.is_dir())
    if not clips:
        raise SystemExit(f"video_fasr.py: --clips {args.clips}: no clip folders in it")
    settings = {"clips": str(Path(args.clips).resolve()), "model": args.model, "frames": args.frames,
                "identity": args.identity, "precision": args.precision,
                "weights": file_sha256(Path(model.source) / "ema.safetensors")}
    try:
        state = ResultLog(state_path, settings, args.overwrite)
    except UnicodeDecodeError:
        raise SystemExit(f"video_fasr.py: --state {state_path}: not a state file of this script (not text)") from None
    rows, failed = {}, []
    for clip in clips:
        rows[clip.name] = state.get((clip.name,))
        if rows[clip.name] is not None:
            print(f"{clip.name}: kept from {state_path}", flush=True)
            continue
        try:
            rows[clip.name] = clip_scores(model, clip, args.frames, opts, device, judges)
        except FacesrError as exc:  # e.g. a frame that is not an image: this clip is left out, the others go on
            del rows[clip.name]
            failed.append(f"{clip}: {str(exc).strip()}")
            print(failed[-1], file=sys.stderr, flush=True)
            continue
        state.add((clip.name,), rows[clip.name])
        print(clip.name, {k: {m: round(v, 4) for m, v in r.items()} for k, r in rows[clip.name].items()}, flush=True)
    if not rows:
        raise SystemExit(f"video_fasr.py: no clip could be measured ({len(failed)} failed)")
    metrics = ["psnr"] + [j.name for j in judges]
    star = {j.name: "*" if any(j.name.startswith(spec) for spec in dependent) else "" for j in judges}
    lines = [f"# FASR on a video track: `{args.model}`, the first {args.frames} frames of {len(rows)} clips", "",
             f"`python benchmarks/video_fasr.py --clips {args.clips} --model {args.model} --frames {args.frames} "
             f"--precision {args.precision}`", "",
             f"Condition: the mean of the track's LR faces, embedded by `{track_embedder(model)}`, as `facesr "
             "restore` conditions a track; against the model's null identity. Per-clip means; differences paired over "
             "clips with 95 % bootstrap intervals. Recipe: the model's own, seed 0. * = a judge of the network the "
             "condition comes from (not independent).", "",
             "| | " + " | ".join(("PSNR (dB)" if m == "psnr" else f"CS ({m}){star[m]}") for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for name in ("track", "null"):
        lines.append(f"| {name} | " + " | ".join(f"{statistics.mean(r[name][m] for r in rows.values()):.4f}"
                                               for m in metrics) + " |")
    diffs = []
    for m in metrics:
        d = paired_difference([r["track"][m] for r in rows.values()], [r["null"][m] for r in rows.values()])
        diffs.append(f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    lines.append("| track - null | " + " | ".join(diffs) + " |")
    lines += ["", "Per clip (track / null):", "", "| clip | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for clip, r in rows.items():
        lines.append(f"| {clip} | " + " | ".join(f"{r['track'][m]:.4f} / {r['null'][m]:.4f}" for m in metrics) + " |")
    if failed:
        lines += ["", f"Left out ({len(failed)} clip(s)):", ""] + [f"- {line}" for line in failed]
    atomic_write_text(Path(args.table), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    from facesr.errors import FacesrError

    try:
        sys.exit(main())
    except FacesrError as exc:
        raise SystemExit(f"video_fasr.py: {exc}") from None
