"""facesr restore"""

HELP = "photos in the wild: find every face (down to ~12 px), restore it, paste it back onto the upscaled photo"


def add_arguments(p) -> None:
    from facesr.cli.common import add_recipe_options, add_run_options

    p.add_argument("inputs", nargs="+", help="photos, folders of photos, glob patterns, videos (.mp4, ...)")
    p.add_argument("--video", action="store_true",
                   help="folders among the inputs are the frames of one clip each (default: folders of photos); "
                        "video files are always clips: faces tracked, OUT/<clip>.mp4 and OUT/<clip>.tracks.json")
    p.add_argument("--fps", type=float, help="frame rate of frame folders without a meta.json")
    p.add_argument("-o", "--out", required=True,
                   help="writes <out>/<stem>.png, <out>/<stem>/face_NN.png and face_NN_lr.png, <out>/<stem>.json")
    p.add_argument("--model", help="restore every face with this model (a bundled name or folder), or 'bicubic' (the "
                                   "baseline); default: by face size, msrresnet-x8-wild for chips about 16 px, "
                                   "msrresnet-x4-wild for about 32 px")
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
    from facesr.errors import FacesrError, InputError
    from facesr.io.images import VIDEO_SUFFIXES, expand_inputs
    from facesr.runtime import Share
    from facesr.wild.faces import FaceFinder
    from facesr.workflows.restore import NULL_CONDITION, Restorer, restore_files
    from facesr.workflows.restore_video import restore_clip

    if args.upscale is not None and not 1 <= args.upscale <= 16:
        raise FacesrError(f"--upscale must be 1 to 16, got {args.upscale}")
    if args.uncertainty and (args.samples or 0) < 2:
        raise FacesrError("--uncertainty needs --samples 2 or more (and a diffusion --model)")
    failures = Reported()
    clips = [Path(i) for i in args.inputs if Path(i).suffix.lower() in VIDEO_SUFFIXES or (args.video and Path(i).is_dir())]
    photos = [i for i in args.inputs if Path(i) not in clips]
    paths = expand_inputs(photos, on_error=failures) if photos else []
    overrides = {k: v for k, v in recipe(args).items() if v is not None}
    overrides.update(seed=args.seed, batch_size=args.batch_size, precision=args.precision)
    share = Share()
    restorer = Restorer(model=args.model, device=share.device(args.device), overrides=overrides, draws=args.uncertainty)
    restorer.check()  # a bad model or option stops here, before any photo is read
    if args.model and args.model != "bicubic":
        model, _ = restorer.load(args.model)
        if model.needs.vector_dim and paths:
            print(f"{model.name}: {NULL_CONDITION}")
    finder = FaceFinder()
    result = {"faces": 0, "outputs": [], "kept": [], "failures": []}
    if paths:
        with progress_bar("photos") as bar:
            result = restore_files(paths, args.out, finder, restorer, args.upscale, args.overwrite, failures, bar,
                                   share, args.uncertainty)
    who = f"process {share.rank + 1}/{share.world}: " if share.world > 1 else ""
    if paths:
        kept = f", {len(result['kept'])} kept from before" if result["kept"] else ""
        print(f"{who}restored {result['faces']} face(s) in {len(result['outputs'])} photo(s) into {args.out}{kept}")
    for clip in share.of(clips):
        name = clip.stem if clip.is_file() else clip.name
        if (Path(args.out) / f"{name}.tracks.json").is_file() and not args.overwrite:
            print(f"{who}{clip}: kept from before ({Path(args.out) / (name + '.mp4')})")
            continue
        try:
            with progress_bar("frames") as bar:
                rec = restore_clip(clip, args.out, finder, restorer, args.upscale, args.fps, failures, bar)
            print(f"{who}{clip}: {rec['frames']} frames, {len(rec['tracks'])} face track(s) -> "
                  f"{Path(args.out) / rec['video']}")
        except InputError as exc:
            failures(str(exc))
    if failures:
        where = f"; photos in {Path(args.out) / share.manifest_name()}" if paths else ""
        stderr(f"{who}{len(failures)} problem(s) reported above{where}")
        return 1
    return 0
