"""Does a judge's verdict rest on the face's coarse structure? Benchmark runs judged again with every SR chip
shrunk to S px and enlarged back first.

    python benchmarks/judge_shrink.py --hr ../shared/data/dev/lfw --runs outputs/bench-x/other outputs/bench-x/same \
        --sizes 64 32 --out outputs/judge-shrink

A change that a face network reads but that is only a fine pattern (what a gradient through another face network
can write) fades when the chip is shrunk; a change in the face's shape survives. For each size (and the full chip)
every run gets a derived run folder ``<out>/<size>/<label>/per_image.csv`` (the run's PSNR, the judge's CS against
the HR probe, unshrunk, and rank-1 against the gallery, the 1st image of every identity folder), compared probe by
probe with the first run as ``facesr compare`` does; the tables go to ``<out>/judge-shrink.md``. An SR image that
cannot be read is named in one line and its probe left without CS and rank; the others are judged, and the exit code
is then 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.errors import FacesrError, InputError
from facesr.identity.embedders import make_embedder
from facesr.identity.recognition import cosine_similarity, identify, identity_split
from facesr.io.images import atomic_write_text, read_image
from facesr.metrics.identity import embed_each
from facesr.workflows.compare import compare_runs, read_per_image


def shrunk(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` shrunk to ``size`` px and enlarged back (bicubic); 0 returns it as it is."""
    if not size:
        return img
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((size, size), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC))


def probe_index(hr_root: Path) -> dict[str, tuple[str, Path]]:
    """{run probe name: (identity, HR probe path)}; a benchmark names a probe by its stem, or
    <identity>__<stem> when stems repeat."""
    out = {}
    for identity, entry in identity_split(hr_root).items():
        probe = entry["probe"]
        out[probe.stem] = out[f"{identity}__{probe.stem}"] = (identity, probe)
    return out


def judged_run(run: Path, embedder, gallery, probes, hr_vectors, size: int, out: Path) -> int:
    """Write ``out/per_image.csv`` for one run at one size; returns how many SR images could not be read (each
    said in one line, its probe left without CS and rank)."""
    rows = read_per_image(run)
    names = [n for n in rows if n in probes]
    if len(names) < len(rows):
        raise FacesrError(f"{run}: {len(rows) - len(names)} probe(s) not in the HR set")
    labels = [probes[n][0] for n in names]
    vectors = np.full((len(names), embedder.dim), np.nan, np.float32)  # an unreadable SR image: no CS, no rank
    readable, images = [], []
    for i, n in enumerate(names):
        try:
            images.append(shrunk(read_image(run / "sr" / f"{n}.png"), size))
            readable.append(i)
        except InputError as exc:
            print(exc, file=sys.stderr)
    if readable:
        vectors[readable] = embed_each(embedder, images, [f"{run}/sr/{names[i]}.png" for i in readable], on_error=print)
    usable = np.isfinite(vectors).all(axis=1)
    cs = np.full(len(names), np.nan)
    for i in np.flatnonzero(usable):
        cs[i] = cosine_similarity(vectors[i], hr_vectors[names[i]])[0]
    ranks = np.full(len(names), np.nan)
    idx = np.flatnonzero(usable)
    if len(idx):
        ranks[idx] = identify(vectors[idx], [labels[i] for i in idx], gallery[1], gallery[0], (1,)).rank
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["name", "psnr", "cs", "rank"])
    for i, n in enumerate(names):
        writer.writerow([n, rows[n].get("psnr", ""), "" if np.isnan(cs[i]) else f"{cs[i]:.6f}",
                         "" if np.isnan(ranks[i]) else int(ranks[i])])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "per_image.csv", text.getvalue())
    return len(names) - len(readable)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", required=True, help="the identity folders the runs were made from")
    ap.add_argument("--runs", nargs="+", required=True, help="[LABEL=]benchmark method folders; the first is the base")
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 32])
    ap.add_argument("--judge", default="faceplugin")
    ap.add_argument("--out", default="outputs/judge-shrink")
    args = ap.parse_args()
    try:
        if any(size < 1 for size in args.sizes):
            raise FacesrError(f"--sizes must be positive pixel sizes, got {args.sizes}")
        runs = [(r.split("=", 1) if "=" in r else (Path(r).name, r)) for r in args.runs]
        runs = [(label, Path(path)) for label, path in runs]
        embedder = make_embedder(args.judge)
        probes = probe_index(Path(args.hr))
        split = identity_split(Path(args.hr))
        labels = sorted(split)
        g = embed_each(embedder, [read_image(split[i]["gallery"]) for i in labels], labels)
        gallery = (labels, g)
        names = sorted({n for _, run in runs for n in read_per_image(run) if n in probes})
        hr = embed_each(embedder, [read_image(probes[n][1]) for n in names], names)
        hr_vectors = dict(zip(names, hr))
        out = Path(args.out)
        parts = [f"# {embedder.name} on shrunk SR chips\n\nCommand: `python benchmarks/judge_shrink.py "
                 f"{' '.join(sys.argv[1:])}`\n"]
        unreadable = 0
        for size in [0, *args.sizes]:
            folder = out / (str(size) if size else "full")
            for label, run in runs:
                print(f"judging {label} at {size or 'full'} px", file=sys.stderr)
                unreadable += judged_run(run, embedder, gallery, probes, hr_vectors, size, folder / label)
            result = compare_runs((runs[0][0], folder / runs[0][0]), [(lab, folder / lab) for lab, _ in runs[1:]])
            what = f"chips shrunk to {size} px and enlarged back" if size else "the chips as they are"
            parts.append(f"## {what}\n\n{result['markdown']}")
        atomic_write_text(out / "judge-shrink.md", "\n".join(parts))
        print("\n".join(parts))
    except FacesrError as exc:
        print(f"judge_shrink.py: error: {exc}", file=sys.stderr)
        return 2
    return 1 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
