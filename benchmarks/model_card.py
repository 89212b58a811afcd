"""Write a bundled model's card (README.md next to its weights) from the run's own records.

Inputs: the training run folder (log.csv, experiment.json, phase stdout files), the exported model
folder, and the quality table (benchmarks/QUALITY.md made by benchmarks/quality.py). Every number in
the card comes from those files.

    python benchmarks/model_card.py --run runs/sr3-x8 --model src/facesr/weights/sr3-x8 \
        --quality benchmarks/QUALITY.md --commands benchmarks/sr3-x8.commands
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def training_summary(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "log.csv")))
    # the log is appended across resumes: a resume restarts the elapsed clock
    wall, last = 0.0, 0.0
    for r in rows:
        e = float(r["elapsed_s"])
        if e < last:
            wall += last
        last = e
    wall += last
    return {"steps": int(rows[-1]["step"]), "wall_s": wall, "final_loss": float(rows[-1]["loss"]),
            "mean_rate": sum(float(r["steps_per_s"]) for r in rows) / len(rows)}


DATA_SOURCES = {
    "train": "`../shared/data/train` (UTKFace crop_part1 and LFW faces of people not in `dev/`; aligned 128x128 chips)",
    "celeba": "`../shared/data/dev/celeba` (CelebA identity folders; aligned 128x128 chips)",
}


def data_line(cfg: dict, exp: dict) -> str:
    inner = cfg["config"]
    if inner.get("degradation"):
        lr = (f"LR = the seeded second-order degradation (`{inner['degradation']}` preset: blur, resize, noise, JPEG, "
              f"twice) of HR, drawn per sample on the fly")
    else:
        lr = f"LR = `{inner['operator']}` x{inner['scale']} of HR made on the fly and rounded to 8 bits"
    d = exp["data"]
    aug = ["horizontal flip"] + (["rotation by multiples of 90 degrees"] if d.get("rot90") else [])
    if d.get("brightness"):
        aug.append(f"brightness x{d['brightness']} and contrast x{d['contrast']}, each with p = {d['jitter_prob']}")
    sources = ", ".join(DATA_SOURCES.get(Path(s).name, f"`{s}`") for s in d["train_dirs"])
    extra = ""
    if d.get("frames", 1) > 1:
        extra = (f"; {d['frames']}-frame synthetic bursts: each other frame is the HR shifted by a random (dx, dy) of up to "
                 f"{d['motion_px']} px ({d['motion_px'] / inner['scale']:g} px of the LR), drawn per frame, then degraded; "
                 f"the middle frame is unshifted and the target")
    if d.get("reference") == "same-identity":
        extra = "; reference = another image of the same identity folder, drawn per sample"
    elif d.get("reference") == "self":
        extra = "; reference = the HR itself, shifted and with jittered gain"
    if d.get("vectors"):
        extra += f"; identity vectors from {', '.join(f'`{v}`' for v in d['vectors'])} (one drawn per sample among the files that have the image)"
    crop = f"{d['patch_size']}px crops" if d["patch_size"] else f"whole {inner['hr_size']}px faces"
    return f"- Data: {sources}, {lr}{extra}; {crop}; augmentation: {', '.join(aug)}."


def method_lines(cfg: dict, exp: dict, n_params: int, size: float) -> list[str]:
    inner = cfg["config"]
    weights = f"{n_params / 1e6:.2f} M parameters; weights = EMA (decay {exp['optim']['ema_decay']}); {size:.1f} MB of safetensors"
    if cfg["method"] == "regression":
        net = inner["net"]
        target = "the USM-sharpened HR" if inner.get("usm_target") else "the un-sharpened HR (the metric's reference)"
        return [data_line(cfg, exp),
                f"- Network: {net['arch']} ({net['num_blocks']} residual blocks, {net['num_feat']} features), {weights}.",
                f"- Loss: L1 against {target}. One forward pass per face; no sampling recipe."]
    if cfg["method"] == "refsr-vae":
        keys = ("trunk_channels", "skip_channels", "encoder_channels", "encoder_fc", "latent", "noise_fc", "decoder_fc",
                "decoder_map_channels", "upproj_channels")
        perceptual = (f"VGG-19 conv5_4 L1 (weight {inner['perceptual_weight']})" if inner.get("vgg_weights")
                      else "no perceptual term (no VGG weights supplied)")
        return [data_line(cfg, exp),
                f"- Network: {inner['variant'].upper()}-VAE, widths {{{', '.join(f'{k}: {inner[k]}' for k in keys)}}}; {weights}.",
                f"- Loss: mean pixel L1 + {inner['kl_weight']} x KL to N(0, 0.1^2), {perceptual}. One forward pass per face."]
    if cfg["method"] == "score-sde":
        options = {k: inner[k] for k in ("preconditioning", "weighting", "noise_sampling", "p_mean", "p_std") if k in inner}
        diffusion = (f"- Diffusion: {json.dumps({'sde': inner['sde'], **inner.get('sde_params', {})})}, {options}, "
                     f"denoising score matching ({inner['reduce']} over pixels), target `{inner['target']}` "
                     f"(residual scale {inner['residual_scale']}), one noise level per sample.")
    else:
        diffusion = (f"- Diffusion: {json.dumps(inner['diffusion'])}, target `{inner['target']}` "
                     f"(residual scale {inner['residual_scale']}), {inner.get('loss', 'l2')} loss, one noise level per sample.")
    unet = inner["unet"]
    frames = unet.get("cond_images", 1)
    if unet.get("vector_dim"):
        shared = "the time MLP's second Linear (parity)" if unet.get("vector_shared_linear") else "its own Linear"
        scales = exp["optim"].get("lr_scale") or {}
        diffusion += (f"\n- Identity condition (FASR): a {unet['vector_dim']}-d `{unet['vector_embedder']}` vector, normalisation "
                      f"`{unet.get('vector_norm', 'none')}`, projected by {shared} and added as a per-channel bias after the first "
                      f"convolution of every ResBlock (zero-initialised)"
                      + (f"; learning-rate factors {scales}" if scales else "") + ".")
    return [data_line(cfg, exp),
            f"- Network: diffusers UNet2DModel, block_out_channels {unet['block_out_channels']}, "
            f"{unet['layers_per_block']} res block(s) per level, attention at levels {unet['attention_levels']}; "
            f"{weights}" + (f"; the condition is {frames} stacked upsampled LR frames." if frames > 1 else "."),
            diffusion,
            f"- Recommended sampling (the CLI default for this model): {cfg.get('sampling', {})}."]


def limit_lines(cfg: dict) -> list[str]:
    inner = cfg["config"]
    align = ("- Trained and measured on aligned 128x128 chips (dlib 5-point landmarks, `get_face_chip(size=128, padding=0.2)`)")
    if inner.get("degradation"):
        lines = [align + f" with synthetic `{inner['degradation']}` degradations. Real cameras can degrade in ways the "
                 "synthetic pipeline does not draw (motion blur, strong compression artefacts, colour casts)."]
    else:
        lines = [align + " with a known bicubic degradation. Other alignments, blur, noise or compression are outside what it learned."]
    if cfg["method"] == "refsr-vae":
        lines.append("- One deterministic output per face (the SISR variant draws its latent from a seeded generator). "
                     "A reference of a different person, or in a very different pose, is not detected: it degrades the output.")
    elif cfg["method"] == "regression":
        lines.append("- A regression model predicts the mean of the plausible faces: it is smooth where the LR is ambiguous "
                     "and invents no detail; it is also the warm start of the diffusion models (`--init`).")
    else:
        lines.append("- A single sample invents plausible detail; the mean of several samples (the recommended recipe) keeps only "
                     "what the LR supports, and `--uncertainty` shows where samples disagree. Do not read identity from invented detail.")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--quality", required=True)
    p.add_argument("--commands", required=True, help="text file with the exact training/export commands")
    p.add_argument("--notes", default="", help="Markdown appended under 'Notes'")
    args = p.parse_args()
    run, model = Path(args.run), Path(args.model)
    t = training_summary(run)
    exp = json.loads((run / "experiment.json").read_text())
    cfg = json.loads((model / "config.json").read_text())
    size = sum(f.stat().st_size for f in model.glob("*.safetensors")) / 1e6
    from safetensors.torch import load_file

    n_params = sum(v.numel() for f in model.glob("*.safetensors") for v in load_file(str(f)).values())
    inner = cfg["config"]
    lr_px = inner["hr_size"] // inner["scale"]
    title = {"sr3": "SR3 diffusion", "score-sde": "Score-SDE diffusion", "regression": "Regression",
             "refsr-vae": f"{inner.get('variant', '').upper()}-VAE"}.get(cfg["method"], cfg["method"])
    if inner.get("unet", {}).get("vector_dim"):
        title = f"FASR (identity-conditioned {title})"
    if inner.get("unet", {}).get("cond_images", 1) > 1:
        title = f"Multi-frame ({inner['unet']['cond_images']} frames) SR3 diffusion"
    origin = f"fine-tuned from `{exp['init_from']}`" if exp.get("init_from") else "trained from scratch"
    lines = [
        f"# {model.name}",
        "",
        f"{title} face super-resolution, {lr_px}x{lr_px} -> {inner['hr_size']}x{inner['hr_size']} (x{inner['scale']}), "
        f"{origin} on a 2-core CPU in this repository.",
        "",
        "## How it was made",
        "",
        "```bash",
        Path(args.commands).read_text().strip(),
        "```",
        "",
        *method_lines(cfg, exp, n_params, size),
        f"- Training: {cfg.get('card', {}).get('trained_steps', t['steps'])} steps at batch {exp['optim']['batch_size']}, Adam "
        f"(learning rates in the commands above), {t['wall_s'] / 3600:.2f} h of wall time "
        f"(mean {t['mean_rate']:.2f} steps/s, 1 thread, bf16 autocast, tcmalloc), final logged loss {t['final_loss']:.4f}. "
        f"Log: `log.csv` of the run (not shipped).",
        "",
        "## Measured",
        "",
        Path(args.quality).read_text().strip(),
        "",
        "## Limits",
        "",
        *limit_lines(cfg),
        "- Training data licences: UTKFace and CelebA are for non-commercial research only, LFW is published for research. "
        "These weights inherit those terms.",
    ]
    if args.notes:
        lines += ["", "## Notes", "", Path(args.notes).read_text().strip()]
    (model / "README.md").write_text("\n".join(lines) + "\n")
    print((model / "README.md").read_text())


if __name__ == "__main__":
    main()
