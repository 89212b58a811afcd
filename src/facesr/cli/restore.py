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
    add_recipe_options(p, "(default: the model's recommended setting)")
    add_run_options(p)


def run(args) -> int:
    from pathlib import Path

    from facesr.cli.common import Reported, progress_bar, recipe, stderr
    from facesr.errors import FacesrError
    from facesr.io.images import expand_inputs
    from facesr.runtime import resolve_device
    from facesr.wild.faces import FaceFinder
    from facesr.workflows.restore import Restorer, restore_files

    if args.upscale is not None and not 1 <= args.upscale <= 16:
        raise FacesrError(f"--upscale must be 1 to 16, got {args.upscale}")
    failures = Reported()
    paths = expand_inputs(args.inputs, on_error=failures)
    overrides = {k: v for k, v in recipe(args).items() if v is not None}
    overrides.update(seed=args.seed, batch_size=args.batch_size, precision=args.precision)
    restorer = Restorer(model=args.model, device=resolve_device(args.device), overrides=overrides)
    if args.model and args.model != "bicubic":
        restorer.load(args.model)  # a bad model or option stops here, before any photo is read
    with progress_bar("photos") as bar:
        result = restore_files(paths, args.out, FaceFinder(), restorer, args.upscale, args.overwrite, failures, bar)
    kept = f", {len(result['kept'])} kept from before" if result["kept"] else ""
    print(f"restored {result['faces']} face(s) in {len(result['outputs'])} photo(s) into {args.out}{kept}")
    if result["failures"] or failures:
        stderr(f"{len(result['failures'])} photo(s) failed; see {Path(args.out) / 'facesr-run.json'}")
        return 1
    return 0
