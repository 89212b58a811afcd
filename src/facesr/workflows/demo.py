"""The main job: super-resolve the bundled sample faces and write a comparison sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facesr.io.images import list_images, read_image, to_tensor, to_uint8, write_image
from facesr.metrics import psnr

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples" / "faces"
COLUMNS = ("LR (nearest)", "bicubic", "SR", "HR")


def comparison_sheet(rows: list[list[np.ndarray]], labels=COLUMNS, size: int = 128, pad: int = 4) -> np.ndarray:
    """Grid of uint8 RGB tiles, one row per face, one labelled column per kind (None = blank)."""
    header = 16
    w = len(labels) * (size + pad) + pad
    h = header + len(rows) * (size + pad) + pad
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((pad + c * (size + pad) + 2, 2), label, fill=(0, 0, 0))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            if tile is None:
                continue
            img = Image.fromarray(tile)
            if img.size != (size, size):
                img = img.resize((size, size), Image.NEAREST)
            sheet.paste(img, (pad + c * (size + pad), header + pad + r * (size + pad)))
    return np.asarray(sheet)


def run_demo(model, opts, device, out_dir, log=print, progress=None) -> dict:
    """SR of the bundled sample faces with a sheet and facesr-run.json, like every run."""
    import json
    import time
    from dataclasses import asdict

    from facesr.engine.run import super_resolve_tensors
    from facesr.io.images import atomic_write_text

    out_dir = Path(out_dir)
    paths = list_images(SAMPLES_DIR)
    hrs = [read_image(p) for p in paths]
    lrs = [model.lr_protocol.lr_image(hr, p.name)[0] for hr, p in zip(hrs, paths)]
    t0 = time.time()
    srs = super_resolve_tensors(model, [to_tensor(lr) for lr in lrs], [p.name for p in paths], opts, device,
                                progress=progress)
    seconds = time.time() - t0
    rows, results = [], []
    for path, hr, lr, sr_t in zip(paths, hrs, lrs, srs):
        sr = to_uint8(sr_t)
        bic = to_uint8(model.operator.up(to_tensor(lr)[None])[0])
        write_image(out_dir / "sr" / f"{path.stem}.png", sr)
        write_image(out_dir / "lr" / f"{path.stem}.png", lr)
        rows.append([lr, bic, sr, hr])
        results.append({"name": path.stem, "psnr_sr": psnr(sr, hr), "psnr_bicubic": psnr(bic, hr)})
    sheet_path = out_dir / "sheet.png"
    write_image(sheet_path, comparison_sheet(rows))
    log(f"model {model.source}: {opts.sampler}, {opts.steps} steps x {opts.samples} sample(s), strength {opts.strength}, "
        f"seed {opts.seed}, {opts.precision}")
    log(f"{'face':<26} {'PSNR bicubic':>13} {'PSNR SR':>9}")
    for r in results:
        log(f"{r['name']:<26} {r['psnr_bicubic']:>10.2f} dB {r['psnr_sr']:>6.2f} dB")
    mean_b = float(np.mean([r["psnr_bicubic"] for r in results]))
    mean_s = float(np.mean([r["psnr_sr"] for r in results]))
    log(f"{'mean':<26} {mean_b:>10.2f} dB {mean_s:>6.2f} dB")
    log(f"sheet (LR | bicubic | SR | HR): {sheet_path}")
    log(f"SR images: {out_dir / 'sr'}")
    manifest = {"model": model.source, "options": asdict(opts), "device": str(device),
                "network_evaluations_per_face": model.network_evaluations(opts),
                "outputs": [str(out_dir / "sr" / f"{p.stem}.png") for p in paths], "failures": [], "complete": True,
                "seconds": round(seconds, 3), "seconds_per_face": round(seconds / max(1, len(paths)), 4),
                "faces": results, "sheet": str(sheet_path)}
    atomic_write_text(out_dir / "facesr-run.json", json.dumps(manifest, indent=2) + "\n")
    return {"sheet": str(sheet_path), "faces": results, "mean_psnr_sr": mean_s, "mean_psnr_bicubic": mean_b}
