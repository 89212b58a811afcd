"""facesr restore"""

HELP = "photos in the wild: find every face (down to ~12 px), restore it, paste it back onto the upscaled photo"


def add_arguments(p) -> None:
    from facesr.cli.common import add_recipe_options, add_run_options

    p.add_argument("inputs", nargs="+", help="photos, folders of photos, glob patterns")
    p.add_argument("-o", "--out", required=True,
                   help="writes <out>/<stem>.png, <out>/<stem>/face_NN.png and face_NN_lr.png, <out>/<stem>.json")
    p.add_argument("--model", help="restore every face with this model (a bundled name or folder), or 'bicubic' (the "
                                   "baseline); default: by face size, msrresnet-x8 for chips about 16 px, "
                                   "msrresnet-x4-blind for about 32 px")
    p.add_argument("--upscale", type=int, help="the restored photo is this many times larger (default: the largest "
                                               "scale used)")
    p.add_argument("--overwrite", action="store_true", help="redo photos whose <stem>.json exists (default: keep them)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write <stem>/face_NN_std.png, the spread of the samples (a diffusion model with --samples > 1)")
    add_recipe_options(p, "(default: the model's recommended setting)")
    add_run_options(p)


def run(args) -> int:
    from pathlib import Path

    from facesr.cli.common import Reported, progress_bar, recipe, stderr
    from facesr.errors import FacesrError
    from facesr.io.images import expand_inputs
    from facesr.runtime import Share
    from facesr.wild.faces import FaceFinder
    from facesr.workflows.restore import Restorer, restore_files

    if args.upscale is not None and not 1 <= args.upscale <= 16:
        raise FacesrError(f"--upscale must be 1 to 16, got {args.upscale}")
    if args.uncertainty and (args.samples or 0) < 2:
        raise FacesrError("--uncertainty needs --samples 2 or more (and a diffusion --model)")
    failures = Reported()
    paths = expand_inputs(args.inputs, on_error=failures)
    overrides = {k: v for k, v in recipe(args).items() if v is not None}
    overrides.update(seed=args.seed, batch_size=args.batch_size, precision=args.precision)
    share = Share()
    restorer = Restorer(model=args.model, device=share.device(args.device), overrides=overrides)
    if args.model and args.model != "bicubic":
        restorer.load(args.model)  # a bad model or option stops here, before any photo is read
    with progress_bar("photos") as bar:
        result = restore_files(paths, args.out, FaceFinder(), restorer, args.upscale, args.overwrite, failures, bar,
                               share, args.uncertainty)
    kept = f", {len(result['kept'])} kept from before" if result["kept"] else ""
    who = f"process {share.rank + 1}/{share.world}: " if share.world > 1 else ""
    print(f"{who}restored {result['faces']} face(s) in {len(result['outputs'])} photo(s) into {args.out}{kept}")
    if result["failures"] or failures:
        stderr(f"{who}{len(result['failures'])} photo(s) failed; see {Path(args.out) / share.manifest_name()}")
        return 1
    return 0
