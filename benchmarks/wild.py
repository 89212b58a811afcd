"""In-the-wild benchmark: group scenes from the original LFW photos, downscaled so faces are ~14 px (x8)
or ~28 px (x4), through `facesr restore`.

Each scene puts the probe photos (`<Person>_0002.jpg`, the photo behind facesr's probe chip) of 6 people
side by side (3 x 2) and downscales it with the bicubic operator. Reported per method: detection recall
(a face counts as found when a detected face's chip centre lies within a quarter of the chip's side of
the reference chip's centre: dlib's HOG + 5 points on the full-resolution photo, the way the dev chips
were made), end-to-end rank-1 (the restored chip identified by each judge, dlib's ResNet and the ArcFace judge, against the 200 dev/lfw
gallery chips; faces not found count as failures), face-region PSNR against the full-resolution
scene (each reference chip's box), whole-photo PSNR, and seconds per photo.

    python benchmarks/wild.py --scenes 20 --table benchmarks/results/wild-lfw.md

A killed run started again with the same settings keeps the scenes it finished: each (division, method,
scene) is appended to `--state` (default: the table's name + `.partial.jsonl`) as it ends, with the
settings it was measured under; `--overwrite` starts afresh.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def reference_frames(photos, dlib, hog, predictor):
    """Per photo, the chip frame the dev chips were made with (HOG face nearest the centre, 5 points)."""
    from facesr.wild.faces import ChipFrame

    frames = []
    for img in photos:
        h, w = img.shape[:2]
        dets = hog(img, 1)
        det = min(dets, key=lambda r: ((r.left() + r.right() - w) ** 2 + (r.top() + r.bottom() - h) ** 2))
        d = dlib.get_face_chip_details(predictor(img, det), size=128, padding=0.2)
        frames.append(ChipFrame((d.rect.left() + d.rect.right()) / 2, (d.rect.top() + d.rect.bottom()) / 2,
                                d.rect.width(), d.angle))
    return frames


def psnr(a, b):
    return 10 * math.log10(255**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-12))


def weights_fingerprint(method: str) -> str:
    """What a method's numbers depend on beyond the settings: the sha256 of its models' config and weights."""
    import hashlib

    from facesr.methods.hub import resolve_model_dir
    from facesr.workflows.restore import DEFAULT_MODELS

    if method == "bicubic":
        return "bicubic"
    digest = hashlib.sha256()
    for name in DEFAULT_MODELS.values() if method == "default" else [method]:
        folder = resolve_model_dir(name)
        for f in sorted([folder / "config.json", *folder.glob("*.safetensors")]):
            digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def merge(total: dict, scene: dict) -> None:
    """Add one scene's record to a method's totals."""
    total["found"] += scene["found"]
    total["right"] = [a + b for a, b in zip(total["right"], scene["right"])]
    for key in ("face_psnr", "photo_psnr", "seconds"):
        total[key] += scene[key]


def main() -> None:
    from PIL import Image

    from facesr.identity.embedders import load_dlib, make_embedder
    from facesr.identity.recognition import identity_split
    from facesr.io.images import atomic_write_text, read_image
    from facesr.io.records import ResultLog
    from facesr.wild.faces import FaceFinder
    from facesr.workflows.restore import Restorer, restore_photo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", default="../shared/data/dev/lfw_photos")
    p.add_argument("--gallery", default="../shared/data/dev/lfw")
    p.add_argument("--scenes", type=int, default=20)
    p.add_argument("--methods", nargs="+", default=["bicubic", "default"],
                   help="'bicubic', 'default' (by face size) or a model name")
    p.add_argument("--identity", nargs="+", default=["dlib", "faceplugin"], help="judge networks")
    p.add_argument("--divs", nargs="+", type=int, default=[8, 4],
                   help="photo divisions: 8 and 4 give faces of ~14 and ~28 px across the chip; 7 gives ~16 px, "
                        "the aligned chips' own LR size at x8")
    p.add_argument("--no-realign", action="store_true", help="one framing only (no second framing from the restored chip)")
    p.add_argument("--table")
    p.add_argument("--state", help="finished scenes, kept across runs (default: TABLE.partial.jsonl; none without --table)")
    p.add_argument("--overwrite", action="store_true", help="forget finished scenes and measure every one again")
    args = p.parse_args()
    if min(args.divs) < 1:
        p.error(f"--divs: each division must be 1 or more, got {min(args.divs)}")
    if not Path(args.photos).is_dir():
        p.error(f"--photos {args.photos}: not a folder")
    people = sorted(d for d in Path(args.photos).iterdir() if (d / f"{d.name}_0002.jpg").is_file())
    people = people[: 6 * args.scenes]
    if args.table and Path(args.table).is_dir():
        p.error(f"--table {args.table}: is a folder; give the Markdown file to write")
    state_path = Path(args.state) if args.state else Path(args.table + ".partial.jsonl") if args.table else None
    if state_path is not None and state_path.exists() and not state_path.is_file():
        p.error(f"--state {state_path}: not a file")
    try:
        state = ResultLog(state_path, {"photos": str(Path(args.photos).resolve()),
                                        "gallery": str(Path(args.gallery).resolve()),
                                        "identity": args.identity, "realign": not args.no_realign}, args.overwrite)
    except UnicodeDecodeError:
        p.error(f"--state {state_path}: not a state file of this script (not text)")
    dlib, models = load_dlib()
    hog, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    judges = [make_embedder(spec) for spec in args.identity]
    split = identity_split(args.gallery)
    names = sorted(split)
    galleries = [j.embed([read_image(split[n]["gallery"]) for n in names]) for j in judges]
    finder = FaceFinder(realign=not args.no_realign)
    lines = ["# In-the-wild restoration on LFW group scenes", "",
             f"{len(people) // 6} scenes of 6 people (3 x 2 probe photos of `{args.photos}`, 750x500), downscaled with "
             f"the bicubic operator. Judges: {', '.join(j.name for j in judges)}, against the 200 dev/lfw gallery "
             "chips (dlib's ResNet is in the training loss of msrresnet-x8 and msrresnet-x8-wild and conditions FASR; "
             "the ArcFace judge enters no training). A model named in "
             "the method column restores only the scenes of its own scale; 'default' picks by face size.", "",
             "| scale | method | faces | recall | " + " | ".join(f"rank-1 end to end ({j.name})" for j in judges)
             + " | face PSNR (dB) | photo PSNR (dB) | s / photo |",
             "|---|---|---|---|" + "---|" * len(judges) + "---|---|---|"]
    weights = {m: weights_fingerprint(m) for m in args.methods}
    for div in args.divs:
        scale = min((8, 4), key=lambda k: abs(k - div))  # the model scale this division is nearest to
        methods = [m for m in args.methods if m in ("bicubic", "default") or Restorer().load(m)[0].scale == scale]
        results = {m: {"found": 0, "right": [0] * len(judges), "face_psnr": [], "photo_psnr": [], "seconds": []}
                   for m in methods}
        n_faces = 0
        for s in range(len(people) // 6):
            group = people[6 * s : 6 * s + 6]
            n_faces += 6
            todo = []
            for method in methods:
                rec = state.get((div, method, s))
                if rec is not None and rec["people"] == [d.name for d in group] and rec.get("weights") == weights[method]:
                    merge(results[method], rec)
                else:
                    todo.append(method)
            if not todo:
                print(f"x{div} scene {s + 1}: kept from {state.path}", file=sys.stderr)
                continue
            photos = [read_image(d / f"{d.name}_0002.jpg") for d in group]
            refs = reference_frames(photos, dlib, hog, predictor)
            full = np.concatenate([np.concatenate(photos[:3], 1), np.concatenate(photos[3:], 1)], 0)
            offsets = [(250 * (i % 3), 250 * (i // 3)) for i in range(6)]
            h, w = full.shape[0] // div * div, full.shape[1] // div * div
            full = full[:h, :w]
            lr = np.asarray(Image.fromarray(full).resize((w // div, h // div), Image.BICUBIC))
            for method in todo:
                restorer = Restorer(model=None if method == "default" else method,
                                    overrides={"precision": "fp32"})
                t0 = time.time()
                res = restore_photo(lr, finder, restorer, upscale=div, key=f"scene{s}")
                seconds = time.time() - t0
                r = {"people": [d.name for d in group], "weights": weights[method], "found": 0,
                     "right": [0] * len(judges), "face_psnr": [], "photo_psnr": [psnr(res["image"], full)],
                     "seconds": [seconds]}
                found = {i: f for i, f in enumerate(res["faces"]) if i in res["chips"]}
                for k, ((ox, oy), ref, who) in enumerate(zip(offsets, refs, group)):
                    cx, cy = ref.cx + ox, ref.cy + oy
                    half = ref.side / 2
                    x0, y0, x1, y1 = (int(max(0, v)) for v in (cx - half * 0.8, cy - half * 0.8, cx + half * 0.8,
                                                                cy + half * 0.8))
                    r["face_psnr"].append(psnr(res["image"][y0:y1, x0:x1], full[y0:y1, x0:x1]))
                    match = [i for i, f in found.items()  # chip centres, in LR-scene pixels
                             if math.hypot(f["frame"]["cx"] - (cx + 0.5) / div + 0.5,
                                           f["frame"]["cy"] - (cy + 0.5) / div + 0.5) < ref.side / div / 4]
                    if not match:
                        continue
                    r["found"] += 1
                    for i, (judge, gallery) in enumerate(zip(judges, galleries)):
                        emb = judge.embed([res["chips"][match[0]]])[0]
                        r["right"][i] += int(names[int(np.argmax(gallery @ emb))] == who.name)
                state.add((div, method, s), r)
                merge(results[method], r)
            print(f"x{div} scene {s + 1}", file=sys.stderr)
        for method, r in results.items():
            rank1 = " | ".join(f"{right / n_faces:.3f}" for right in r["right"])
            lines.append(f"| x{div} | {method} | {n_faces} | {r['found'] / n_faces:.3f} | {rank1} | "
                         f"{np.mean(r['face_psnr']):.2f} | {np.mean(r['photo_psnr']):.2f} | {np.median(r['seconds']):.2f} |")
    methods = f" --methods {' '.join(args.methods)}" if args.methods != ["bicubic", "default"] else ""
    divs = f" --divs {' '.join(map(str, args.divs))}" if args.divs != [8, 4] else ""
    table = (f" --table {args.table}" if args.table else "") + (f" --state {args.state}" if args.state else "")
    realign = " --no-realign" if args.no_realign else ""
    lines += ["", f"Command: `python benchmarks/wild.py --scenes {args.scenes}{methods}{divs}{realign}{table}`"]
    print("\n".join(lines))
    if args.table:
        atomic_write_text(args.table, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
