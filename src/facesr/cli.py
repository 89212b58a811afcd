"""facesr command line. Every user mistake becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys

from facesr.errors import FacesrError

EXIT_USER_ERROR = 2


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sr3-x8", help="bundled model name or a folder made by save_pretrained (default: sr3-x8)")
    _add_recipe_options(p, "(default: the model's recommended setting, see 'facesr models')")
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same output")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "fp16"], help="autocast precision (default: bf16)")


def _add_recipe_options(p: argparse.ArgumentParser, default_note: str) -> None:
    """Sampler, steps, eta, strength, samples (and the SDE samplers' options): a model's sampling recipe."""
    from facesr.diffusion.dispatch import ALL_SAMPLERS

    p.add_argument("--sampler", choices=ALL_SAMPLERS, help=f"sampler {default_note}")
    p.add_argument("--steps", type=int, help=f"noise levels per sample (= network evaluations; heun: 2 x steps - 1) {default_note}")
    p.add_argument("--eta", type=float, help=f"DDIM stochasticity, 0 = deterministic {default_note}")
    p.add_argument("--strength", type=float,
                   help=f"1: sample from pure noise; < 1: warm start from bicubic noised to that fraction of the schedule {default_note}")
    p.add_argument("--samples", type=int,
                   help=f"average this many samples per face (posterior-mean estimate; samples x steps evaluations) {default_note}")
    p.add_argument("--init", metavar="MODEL",
                   help=f"with --strength < 1: warm start from this regression model's output (e.g. msrresnet-x8) instead of bicubic {default_note}")
    p.add_argument("--guidance", type=float,
                   help=f"FASR: identity guidance weight w, D(v) + w (D(v) - D(0)); doubles the evaluations {default_note}")
    pc = p.add_argument_group("SDE samplers (--sampler pc / ode)")
    pc.add_argument("--predictor", choices=["reverse_diffusion", "euler_maruyama", "none"], help="PC predictor")
    pc.add_argument("--corrector", choices=["langevin", "none"], help="PC corrector (runs before the predictor)")
    pc.add_argument("--snr", type=float, help="Langevin snr 'r': larger is smoother (PSNR up) but can lower identity similarity")
    pc.add_argument("--corrector-steps", type=int, help="Langevin steps per noise level")
    pc.add_argument("--probability-flow", action="store_const", const=True, help="deterministic PC (probability flow)")
    pc.add_argument("--ode-method", choices=["euler", "heun", "rk45"], help="probability-flow ODE solver")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facesr", description="Identity-preserving face super-resolution.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("demo", help="super-resolve the bundled sample faces and write a comparison sheet")
    p.add_argument("-o", "--out", default="outputs/demo")
    _add_sampling_options(p)

    p = sub.add_parser("upscale", help="super-resolve LR face images (files, folders, globs)")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--out", required=True, help="output folder; writes <out>/<input stem>.png (inputs are never replaced)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write <stem>.std.png, the per-pixel spread of the samples as a heat map (needs --samples > 1)")
    p.add_argument("--refs", nargs="+", metavar="REF",
                   help="FASR models: other low-quality images of the person (files, folders), or one features file from "
                        "'facesr features' whose row for each input's parent folder name is used (batch mode)")
    p.add_argument("--ref", metavar="FACE", help="RefSR-VAE: an aligned HR photo of the same person, used for every input")
    video = p.add_argument_group("video (multi-frame models)")
    video.add_argument("--frames", type=int, metavar="K",
                       help="inputs are videos or folders of LR frames; restore every frame from a sliding window of K "
                            "frames (K = the model's frames: 3 for mfsr3-x8, 1 for a single-image model)")
    video.add_argument("--frame-step", type=int, default=1, help="frames between the window's frames (default: 1)")
    video.add_argument("--fps", type=float, help="frame rate of frame folders without a meta.json")
    video.add_argument("--no-video", action="store_true", help="write the frames only, no .mp4")
    _add_sampling_options(p)

    p = sub.add_parser("evaluate", help="PSNR, SSIM and LR-consistency of SR images against HR")
    p.add_argument("--sr", help="folder of SR images (matched to HR by file stem)")
    p.add_argument("--hr", required=True, help="folder of HR images (searched recursively)")
    p.add_argument("--lr", help="folder of the LR inputs (for consistency); default: made from HR with --op")
    p.add_argument("--run", action="store_true", help="make LR from --hr, run --model on it, then evaluate")
    p.add_argument("--protocol", default="all", choices=["all", "second"], help="'second': only the 2nd image of each identity folder (the probe)")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images")
    p.add_argument("--op", default=None, help="operator that made LR (default: the model's, else bicubic)")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--y", action="store_true", help="PSNR/SSIM on Y (BT.601) instead of RGB")
    p.add_argument("--crop", type=int, default=0, help="border pixels to crop before PSNR/SSIM")
    p.add_argument("--identity", help="with --run: identity metrics with 'dlib' (aligned chips), 'dlib-detect' or "
                                      "'adaface:CKPT[:ARCH]'; with --protocol second also rank-k against the "
                                      "first image of every identity folder")
    p.add_argument("--aux", default="all", metavar="N|all",
                   help="FASR models (--run --protocol second): condition each probe on the LR versions of at most N "
                        "aux images of its identity (3rd image onwards); probes without any are left out (default: all)")
    p.add_argument("--aux-view", default="lr", choices=["lr", "hr"],
                   help="FASR (--run --protocol second): embed the aux images from their LR versions made with the model's operator ('lr', tiny "
                        "faces like the probe; default) or as they are ('hr', the FASR reference's test protocol)")
    p.add_argument("--ref-from", default="same", choices=["same", "other", "none"],
                   help="RefSR-VAE and FASR (--run --protocol second): the reference (first aux image) or the aux images "
                        "come from the probe's identity ('same'), or from the next identity ('other', the control); "
                        "FASR also 'none': the zero vector, the null identity of a model trained with vector dropout; "
                        "default: same")
    p.add_argument("-o", "--out", default="outputs/eval", help="writes per_image.csv and summary.json here")
    _add_sampling_options(p)

    p = sub.add_parser("sweep", conflict_handler="resolve",
                       help="seed 004's figures: the pc sampler over snr r (--snr), or samplers at equal NFE (--nfe)")
    p.add_argument("--hr", required=True, help="folder of HR images (searched recursively)")
    p.add_argument("--protocol", default="all", choices=["all", "second"], help="'second': only the 2nd image of each identity folder (the probe)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images")
    p.add_argument("--identity", help="CS (and rank-1 with --protocol second) with 'dlib', 'dlib-detect' or 'adaface:CKPT[:ARCH]'")
    p.add_argument("-o", "--out", default="outputs/sweep", help="tables, plots and sweep.json; each setting's run in a subfolder")
    _add_sampling_options(p)
    p.add_argument("--snr", type=float, nargs="+", metavar="R",
                   help="sweep the pc sampler's Langevin snr r over these values (needs --identity)")
    p.add_argument("--nfe", type=int, nargs="*", metavar="N",
                   help="sweep --samplers at these network-evaluation budgets per face (no values: 1 2 4 8 16 32 100 1000 2000)")
    p.add_argument("--samplers", nargs="+", default=["ddim", "dpmpp-2m", "heun", "pc"], help="samplers for --nfe (default: ddim dpmpp-2m heun pc)")

    p = sub.add_parser("benchmark", help="several methods on one identity test set: PSNR, SSIM, consistency, CS, rank-1 (Markdown + CSV)")
    p.add_argument("--hr", required=True, help="<root>/<identity>/<images>: 1st = gallery, 2nd = probe, rest = aux")
    p.add_argument("--method", nargs="+", required=True, metavar="LABEL=MODEL[,key=value]",
                   help="e.g. sr3=sr3-x8  fasr-4=fasr-x8,aux=4  sr3-1step=sr3-x8,steps=1,samples=1  "
                        "refsr=refsr-vae-x8,ref=same; keys: aux (N or all), view (lr or hr), ref (same, other or none), guidance, sampler, "
                        "steps, strength, samples, init, eta")
    p.add_argument("--identity", default="dlib", help="judge network: 'dlib', 'dlib-detect' or 'adaface:CKPT[:ARCH]' (default: dlib)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N probes")
    p.add_argument("-o", "--out", default="outputs/benchmark", help="benchmark.md, benchmark.csv and one run folder per method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "fp16"])
    p.add_argument("--baseline", metavar="LABEL",
                   help="also write paired.md: every method against this one, probe by probe, with confidence intervals")

    p = sub.add_parser("compare", help="paired comparison of evaluation runs on the same probes, with confidence intervals")
    p.add_argument("base", metavar="[LABEL=]RUN", help="run folder holding per_image.csv (a 'facesr benchmark' method folder, "
                                                      "or the output of 'facesr evaluate --run')")
    p.add_argument("runs", nargs="+", metavar="[LABEL=]RUN", help="run folders to compare with the base")
    p.add_argument("-o", "--out", help="also write paired.md and paired.json here")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--slice", metavar="START:STOP", default=":",
                   help="compare only these probes, in the order of the base run's per_image.csv, which is the "
                        "benchmark's probe order (e.g. 100: for all but the first 100; default: all)")
    p.add_argument("--common", action="store_true",
                   help="compare the probes that every run has, instead of refusing runs on different probes")

    p = sub.add_parser("features", help="identity features per identity folder (FASR's --refs) or per image (training)")
    p.add_argument("root", help="<root>/<identity>/<images>, or any image folder with --per-image")
    p.add_argument("out", help="features file to write (.safetensors)")
    p.add_argument("--per-image", action="store_true", help="one row per image, named by its path under ROOT (for training)")
    p.add_argument("--embedder", default="dlib", help="'dlib' (aligned chips), 'dlib-detect' or 'adaface:CKPT[:ARCH]' (default: dlib)")
    p.add_argument("--lr", metavar="OPERATOR:SCALE",
                   help="embed each image's LR version made with this operator (e.g. bicubic:8) instead of the file as it is")
    p.add_argument("--aggregate", default="mean", choices=["mean", "trimmed"], help="how one identity's embeddings are combined")
    p.add_argument("--renorm", action="store_true", help="re-normalise each aggregated vector to unit length")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first N images of each identity folder (2: facesr's gallery and probe)")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images per identity (0: all)")
    p.add_argument("--limit", type=int, default=0, help="--per-image: embed only N images, evenly spaced over the sorted list")
    p.add_argument("--others", metavar="N|all",
                   help="--per-image over identity folders: each image's row aggregates N (or all) *other* images of its "
                        "identity, drawn with --seed (FASR training on the test-time condition)")
    p.add_argument("--seed", type=int, default=0, help="--others: random draw of the other images")

    p = sub.add_parser("prepare", help="write SR3-style hr_/lr_/sr_ folders from HR images")
    p.add_argument("src", nargs="+", help="HR images, folders or globs")
    p.add_argument("out")
    p.add_argument("--scale", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--op", default="bicubic")

    p = sub.add_parser("prepare-video", help="write multi-frame hr_/lr_/sr_ clip folders from videos or frame folders")
    p.add_argument("src", nargs="+", help="video files, folders of frames (with meta.json) or parent folders of clips")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=3, help="frames per clip; the middle one (index n//2) is the target (default: 3)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between the selected frames (default: 0.5)")
    p.add_argument("--start", type=float, default=0.0, help="time of the first selected frame in seconds (default: 0)")
    p.add_argument("--scale", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--op", default="bicubic")
    p.add_argument("--align", action="store_true", help="re-align every selected frame with dlib (5 points, padding 0.2); a frame without a face skips its clip")
    p.add_argument("--fps", type=float, help="frame rate for frame folders without a meta.json 'fps' (and videos without one)")

    p = sub.add_parser("train", help="train a model from a JSON experiment config")
    p.add_argument("config")
    p.add_argument("--data", nargs="+", help="training image folders (override data.train_dirs)")
    p.add_argument("--out", help="run folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    p.add_argument("--max-steps", type=int, help="stop at this step (overrides optim.max_steps)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("export", help="write a checkpoint's EMA weights as a compact model folder")
    p.add_argument("checkpoint")
    p.add_argument("out")
    _add_recipe_options(p, "(recorded as the model's recommended setting)")

    sub.add_parser("models", help="list the bundled models")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from facesr import __version__

        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        from facesr.runtime import configure_cpu

        configure_cpu()
        from facesr import commands

        return getattr(commands, "cmd_" + args.command.replace("-", "_"))(args) or 0
    except FacesrError as exc:
        print(f"facesr {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"facesr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
