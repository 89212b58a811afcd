"""Make the bundled score calibrations (src/facesr/identity/calibrations/<judge>.json).

    python benchmarks/calibrate.py --hr ../shared/data/dev/lfw ../shared/data/dev/celeba --identity dlib faceplugin

For each test set (identity folders; the 1st image of each is the gallery): the next two images of each
identity (``--images-per-identity 3``: the probe and the first aux image) are compared
with every gallery image of its set; genuine = its own identity's, impostor = the others'. The scores of all
sets together make one calibration per judge (facesr.identity.calibration). Embeddings are cached in
outputs/embeddings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facesr.identity.calibration import HERE, Calibration
from facesr.identity.embedders import make_embedder
from facesr.identity.recognition import identity_split


def scores_of(embedder, root: Path, cache: Path, per_identity: int) -> tuple[np.ndarray, np.ndarray]:
    split = identity_split(root)
    names = sorted(split)
    gallery, failed = embedder.embed_files([split[n]["gallery"] for n in names], cache)
    others = [(n, p) for n in names for p in [split[n]["probe"], *split[n]["aux"]][:per_identity - 1]]
    probes, failed2 = embedder.embed_files([p for _, p in others], cache)
    for f in failed + failed2:
        print(f, file=sys.stderr)
    s = probes @ gallery.T
    own = np.array([names.index(n) for n, _ in others])
    ok = np.isfinite(s).all(axis=1)
    mask = np.zeros_like(s, dtype=bool)
    mask[np.arange(len(others)), own] = True
    good_cols = np.isfinite(gallery).all(axis=1)
    genuine = s[ok][mask[ok]]
    impostor = s[ok][:, good_cols][~mask[ok][:, good_cols]]
    return genuine[np.isfinite(genuine)], impostor[np.isfinite(impostor)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", nargs="+", required=True)
    ap.add_argument("--identity", nargs="+", default=["dlib", "faceplugin"])
    ap.add_argument("--cache", default="outputs/embeddings")
    ap.add_argument("--images-per-identity", type=int, default=3, help="the gallery image and at most N - 1 others")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()
    for spec in args.identity:
        embedder = make_embedder(spec)
        parts = [scores_of(embedder, Path(root), Path(args.cache), args.images_per_identity) for root in args.hr]
        genuine, impostor = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
        source = (f"{', '.join(Path(r).name for r in args.hr)} HR chips: every non-gallery image against the gallery "
                  f"(1st image of each identity) of its set; {len(genuine)} genuine, {len(impostor)} impostor comparisons")
        cal = Calibration.fit(embedder.name, source, genuine, impostor)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        cal.save(Path(args.out) / f"{embedder.name}.json")
        thresholds = {f: float(np.quantile(impostor, 1 - f)) for f in (1e-2, 1e-3)}
        print(f"{embedder.name}: genuine {np.mean(genuine):.3f} ± {np.std(genuine):.3f}, impostor "
              f"{np.mean(impostor):.3f} ± {np.std(impostor):.3f}; score at FMR 1e-2 {thresholds[1e-2]:.3f} "
              f"(TMR {cal.tmr(thresholds[1e-2]):.3f}), at 1e-3 {thresholds[1e-3]:.3f} (TMR {cal.tmr(thresholds[1e-3]):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
