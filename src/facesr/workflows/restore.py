"""Photos in the wild: find every face, frame it as facesr's chips, restore it with the model for its
size, paste it back onto the upscaled photo.

Per input photo <stem>: OUT/<stem>.png (the photo K times larger, faces restored), OUT/<stem>/face_NN.png
(each restored chip), OUT/<stem>/face_NN_lr.png (the LR chip as cut from the photo) and OUT/<stem>.json
(the faces: box, landmarks, score, width, model, chips, and the chip frame: centre, side and angle of the
aligned chip in the photo; photo pixels, paths relative to OUT).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from facesr.errors import FacesrError, InputError
from facesr.io.images import atomic_write_text, read_image, to_tensor, to_uint8, write_image

# Faces restored by default, by scale: the models trained on chips cut from photos (benchmarks/wild.notes.md).
DEFAULT_MODELS = {8: "msrresnet-x8-wild", 4: "msrresnet-x4-wild"}
MAX_OUTPUT_PIXELS = 200_000_000  # the restored photo (input pixels x upscale^2); above it: a smaller --upscale
HR_SIZE = 128
NULL_CONDITION = "the null identity: a photo has no other images of the person (the model's baseline without them)"


@dataclass
class Restorer:
    """The models faces go to: one fixed ``model`` (a name, or "bicubic"), or by face size from ``models``
    {scale: name}; each model's sampling options are its recipe with ``overrides``."""

    model: str | None = None
    models: dict | None = None
    device: str = "cpu"
    overrides: dict | None = None  # sampling options given by the user (the recipe gives the rest)
    draws: bool = False  # samples that are draws (uncertainty maps): the recipe's "draws" entry over it

    def __post_init__(self):
        self._loaded = {}

    def load(self, name: str):
        from facesr.engine.options import SamplingOptions
        from facesr.methods.hub import load_model

        if name not in self._loaded:
            if name.startswith("bicubic"):
                self._loaded[name] = (BicubicModel(int(name.split("-x")[1])), None)
            else:
                model = load_model(name, self.device)
                self._loaded[name] = (model, SamplingOptions.for_model(model, self.draws, **(self.overrides or {})))
        return self._loaded[name]

    def check(self) -> None:
        """Load every model faces may go to, so that a bad model name or an option none of them takes stops
        here, once, before any photo is read (not as one failure per photo)."""
        if self.model != "bicubic":
            for name in [self.model] if self.model else (self.models or DEFAULT_MODELS).values():
                self.load(name)

    def lr_sizes(self) -> set[int]:
        """The LR chip sizes faces may be cut at."""
        if self.model and self.model != "bicubic":
            return {self.load(self.model)[0].lr_size}
        return {HR_SIZE // s for s in (self.models or DEFAULT_MODELS)}

    def choose(self, side: float) -> tuple[str | None, str | None]:
        """(model name, None) for a face whose chip is ``side`` photo pixels, or (None, why not)."""
        if self.model and self.model != "bicubic":
            model, _ = self.load(self.model)
            lo, hi = model.lr_size / 2, model.lr_size * 2
            if not lo <= side <= hi:
                return None, f"its chip is {side:.0f} px; {self.model} takes {lo:.0f} to {hi:.0f} px"
            return self.model, None
        scales = sorted(self.models or DEFAULT_MODELS, reverse=True)  # 8, 4
        lr = {s: HR_SIZE // s for s in scales}
        if side < lr[scales[0]] / 2:
            return None, f"too small: its chip is {side:.0f} px, the smallest model takes {lr[scales[0]] / 2:.0f} px"
        if side > lr[scales[-1]] * 2:
            return None, f"large enough: its chip is {side:.0f} px (x{scales[-1]} takes up to {lr[scales[-1]] * 2} px)"
        scale = min(scales, key=lambda s: abs(math.log(side / lr[s])))
        return (f"bicubic-x{scale}" if self.model == "bicubic" else (self.models or DEFAULT_MODELS)[scale]), None


class BicubicModel:
    """``--model bicubic``: the same detection and framing, bicubic upsampling of the LR chip."""

    def __init__(self, scale: int):
        from facesr.degrade.protocol import LRProtocol
        from facesr.methods.base import Needs

        self.needs = Needs()
        self.scale, self.lr_protocol, self.name = scale, LRProtocol.of("bicubic", scale), f"bicubic-x{scale}"
        self.lr_size = HR_SIZE // scale


def restore_photo(photo: np.ndarray, finder, restorer: Restorer, upscale: int | None = None,
                  key: str = "photo") -> dict:
    """The restored photo (uint8, ``upscale`` times larger; default the largest scale used) and its faces."""
    from facesr.engine.conditions import conditions_for, still_stack
    from facesr.engine.run import output_problem, super_resolve_tensors
    from facesr.wild.faces import cut_chip
    from facesr.wild.paste import restored_photo

    faces = finder(photo)
    records, groups = [], {}
    for i, face in enumerate(faces):
        name, problem = restorer.choose(face.frame.side)
        rec = {"box": [round(v, 2) for v in face.box], "landmarks": np.round(face.landmarks, 2).tolist(),
               "score": round(face.score, 4), "width_px": round(face.width, 1), "model": name,
               "frame": {k: round(v, 3) for k, v in asdict(face.frame).items()}}
        if problem:
            rec["skipped"] = problem
        else:
            groups.setdefault(name, []).append(i)
        records.append(rec)
    chips, lrs, bics, stds = {}, {}, {}, {}
    for name, idx in groups.items():
        model, opts = restorer.load(name)
        needs = model.needs
        if needs.reference:
            for i in idx:  # a photo gives one view of each face, no aligned photo of the person
                records[i]["skipped"] = f"{name} needs {needs.describe()}; a photo has none"
            continue
        # FASR: a photo has no other images of the person, so its null identity (the model's fair baseline)
        conditions = conditions_for(model, len(idx)) if needs.vector_dim else None
        if conditions:
            for i in idx:
                records[i]["condition"] = NULL_CONDITION
        lr = torch.stack([to_tensor(cut_chip(photo, faces[i].frame, model.lr_size)) for i in idx])
        up = model.lr_protocol.upsample(lr)  # the colour reference of each face, and the bicubic baseline
        if opts is None:
            srs, spread = list(up), [None] * len(idx)
        else:  # one noise seed per face, from the photo's name and the face's index
            inputs = [still_stack(model, x) for x in lr]
            srs, spread = super_resolve_tensors(model, inputs, [f"{key}-face{i:02d}" for i in idx], opts,
                                                restorer.device, with_std=True, conditions=conditions)
        for i, lr_i, up_i, sr, std in zip(idx, lr, up, srs, spread):
            problem = output_problem(model, lr_i, sr) if opts is not None else None
            if problem:  # noise from too few steps: reported, the face left as it is
                records[i]["skipped"] = problem
                continue
            lrs[i], bics[i], chips[i] = lr_i, up_i, sr.float().clamp(0, 1)
            if opts is not None and opts.samples > 1 and model.draws:
                stds[i] = std
            elif opts is not None and opts.samples > 1:  # its samples are one image: a blank map would read as certain
                records[i]["uncertainty"] = f"none: {name} draws no samples"
    scales = [restorer.load(records[i]["model"])[0].scale for i in chips]
    k = upscale or (max(scales) if scales else 1)
    h, w = photo.shape[:2]
    if h * w * k * k > MAX_OUTPUT_PIXELS:
        raise FacesrError(f"the restored photo would be {w * k}x{h * k} pixels (limit {MAX_OUTPUT_PIXELS:,}); "
                          "give a smaller upscale")
    canvas = restored_photo(photo, k, [(sr, bics[i], faces[i].frame) for i, sr in chips.items()])
    return {"image": to_uint8(canvas), "scale": k, "faces": records, "stds": stds,
            "chips": {i: to_uint8(c) for i, c in chips.items()}, "lr_chips": {i: to_uint8(c) for i, c in lrs.items()}}


def restore_files(paths: list[Path], out_dir, finder, restorer: Restorer, upscale: int | None = None,
                  overwrite: bool = False, on_error=print, progress=None, share=None, uncertainty: bool = False) -> dict:
    """Restore every photo; each photo's outputs are written as soon as it is done, and a photo whose
    <stem>.json exists is kept (``overwrite`` redoes it), so a killed run resumes. A photo that cannot
    be read, or in which no face is found, fails alone. ``share`` (``facesr.runtime.Share``): under
    torchrun, this process's photos, and its own manifest facesr-run.rank<r>.json. ``uncertainty``: also
    <stem>/face_NN_std.png, the spread of the samples (diffusion models with samples > 1)."""
    from facesr.io.images import check_output_folder, clean_temp_files
    from facesr.runtime import Share

    share = share or Share()
    out_dir = check_output_folder(out_dir, inputs=paths)
    if share.rank == 0:
        clean_temp_files(out_dir)  # before the others start writing
    share.wait()
    from facesr.workflows.upscale import output_names

    jobs = share.of(zip(paths, [Path(n).stem for n in output_names(paths)]))  # <stem>-2 for a repeated stem
    manifest = {"outputs": [], "kept": [], "failures": [], "faces": 0, "complete": False}
    t0 = time.time()
    for n, (path, stem) in enumerate(jobs, 1):
        record_path = out_dir / f"{stem}.json"
        if record_path.is_file() and not overwrite:
            manifest["kept"].append(str(record_path))
        else:
            try:
                _restore_one(path, stem, out_dir, finder, restorer, upscale, on_error, manifest, uncertainty)
            except InputError as exc:
                manifest["failures"].append(str(exc))
                on_error(str(exc))
        manifest["seconds"] = round(time.time() - t0, 3)
        atomic_write_text(out_dir / share.manifest_name(), json.dumps(manifest, indent=2) + "\n")
        if progress:
            progress(n, len(jobs))
    manifest["complete"] = True
    atomic_write_text(out_dir / share.manifest_name(), json.dumps(manifest, indent=2) + "\n")
    return manifest


def _restore_one(path: Path, stem: str, out_dir: Path, finder, restorer, upscale, on_error, manifest,
                 uncertainty) -> None:
    from facesr.workflows.upscale import std_heatmap

    photo = read_image(path)
    try:
        result = restore_photo(photo, finder, restorer, upscale, key=path.name)
    except FacesrError as exc:
        raise InputError(path, str(exc)) from None
    if not result["faces"]:
        raise InputError(path, "no face found")
    for i, face in enumerate(result["faces"]):
        if i in result["chips"]:
            face["chip"], face["lr_chip"] = f"{stem}/face_{i:02d}.png", f"{stem}/face_{i:02d}_lr.png"
            write_image(out_dir / face["chip"], result["chips"][i])
            write_image(out_dir / face["lr_chip"], result["lr_chips"][i])
            if uncertainty and i in result["stds"]:
                face["std"] = f"{stem}/face_{i:02d}_std.png"
                write_image(out_dir / face["std"], std_heatmap(result["stds"][i]))
        else:
            on_error(f"{path}: face {i} at {[round(v) for v in face['box']]} not restored: {face['skipped']}")
    write_image(out_dir / f"{stem}.png", result["image"])
    record = {"input": str(path), "scale": result["scale"], "restored": f"{stem}.png", "faces": result["faces"]}
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(record, indent=2) + "\n")  # last: marks the photo done
    manifest["outputs"].append(str(out_dir / f"{stem}.png"))
    manifest["faces"] += len(result["chips"])


