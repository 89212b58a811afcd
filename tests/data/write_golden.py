"""Write the golden outputs of the named cases of golden_cases.json with today's Python API (README.md says when
that is right: a case added for a new model, or a model replaced under its name).

    python tests/data/write_golden.py 080-sr3-x8-res-recipe 081-sr3-x8-res-recipe

A case with no input in golden_outputs.npz takes the LR input of the first case of a model of the same scale
(the tiny inputs made from the sample faces); a case that has one keeps it.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent
TEST = DATA.parent / "integration" / "test_golden.py"


def main(ids: list[str]) -> None:
    from facesr.io.images import list_images, read_image
    from facesr.methods.hub import bundled_models

    spec = importlib.util.spec_from_file_location("test_golden", TEST)
    golden_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden_test)
    cases = {c["id"]: c for c in json.loads((DATA / "golden_cases.json").read_text())["cases"]}
    unknown = [i for i in ids if i not in cases]
    if not ids or unknown:
        sys.exit(f"golden_cases.json: no case {', '.join(unknown) or '(none named)'}; add it there first")
    with np.load(DATA / "golden_outputs.npz") as f:
        arrays = {k: f[k] for k in f.files}
    faces = [read_image(p) for p in list_images(golden_test.SAMPLES)]
    scale = {m["name"]: m["scale"] for m in bundled_models()}  # from config.json alone, no weights loaded
    unbundled = sorted({cases[i]["model"] for i in ids} - set(scale))
    if unbundled:
        sys.exit(f"golden_cases.json: {', '.join(unbundled)}: not a bundled model")
    for key in ids:
        case = cases[key]
        if f"{key}/lr" not in arrays:
            donor = next(k for k, c in cases.items() if f"{k}/lr" in arrays and scale[c["model"]] == scale[case["model"]])
            arrays[f"{key}/lr"] = arrays[f"{donor}/lr"]
        arrays[f"{key}/sr"] = golden_test.run_case(case, arrays[f"{key}/lr"], faces)
        print(f"{key}: {arrays[f'{key}/lr'].shape} -> {arrays[f'{key}/sr'].shape}")
    tmp = DATA / "golden_outputs.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(DATA / "golden_outputs.npz")


if __name__ == "__main__":
    main(sys.argv[1:])
