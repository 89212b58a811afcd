"""facesr upscale"""

HELP = "super-resolve LR face images (files, folders, globs), or every frame of videos (--frames)"


def add_arguments(p) -> None:
    from facesr.cli.common import add_refs_options, add_sampling_options

    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--out", required=True, help="output folder; writes <out>/<input stem>.png (inputs are never replaced)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write <stem>.std.png, the per-pixel spread of the samples as a heat map (needs --samples > 1)")
    p.add_argument("--refs", nargs="+", metavar="REF",
                   help="FASR models: other low-quality images of the person (files, folders), or one features file from "
                        "'facesr features' whose row for each input's parent folder name is used (batch mode)")
    add_refs_options(p)
    p.add_argument("--ref", metavar="FACE", help="RefSR-VAE: an aligned HR photo of the same person, used for every input")
    p.add_argument("--overwrite", action="store_true",
                   help="redo every input; by default a run into a folder that a killed or finished run with the same "
                        "settings wrote resumes it (finished outputs are kept)")
    p.add_argument("--no-output-check", action="store_true",
                   help="write outputs even when they restore nothing (further than 14 dB from bicubic: noise from too "
                        "few steps, an untrained model); by default such an output is reported as a failure")
    video = p.add_argument_group("video (multi-frame models)")
    video.add_argument("--frames", type=int, metavar="K",
                       help="inputs are videos or folders of LR frames; restore every frame from a sliding window of K "
                            "frames (K = the model's frames: 3 for mfsr3-x8, 1 for a single-image model)")
    video.add_argument("--frame-step", type=int, default=1, help="frames between the window's frames (default: 1)")
    video.add_argument("--fps", type=float, help="frame rate of frame folders without a meta.json")
    video.add_argument("--no-video", action="store_true", help="write the frames only, no .mp4")
    video.add_argument("--no-neighbours", action="store_true",
                       help="each frame in place of its neighbours: a multi-frame model's baseline without them")
    add_sampling_options(p)


def run(args) -> int:
    from facesr.cli.common import with_flags

    return with_flags(_clips if args.frames is not None else _images)(args)


def _images(args) -> int:
    from pathlib import Path

    from facesr.cli.common import Reported, load, progress_bar, recipe_note, sampling, stderr
    from facesr.errors import FacesrError
    from facesr.io.images import expand_inputs
    from facesr.workflows.upscale import NO_MAP, upscale_files

    from facesr.runtime import Share

    share = Share()
    failures = Reported()
    paths = expand_inputs(args.inputs, on_error=failures)
    model, device = load(args, device=share.device(args.device))
    if args.no_neighbours:
        raise FacesrError("--no-neighbours goes with --frames K (videos or frame folders)")
    if args.uncertainty and (args.samples or model.sampling.get("samples", 1)) < 2:
        raise FacesrError("--uncertainty needs --samples 2 or more")
    if args.uncertainty and not model.draws:
        raise FacesrError(NO_MAP.format(model=model.name))
    # a bad option stops here, before anything is printed or read; an uncertainty map is the spread of draws
    opts = sampling(args, model, draws=args.uncertainty)
    note = recipe_note(args, model, draws=args.uncertainty)
    if note:
        print(note)
    with progress_bar("faces") as bar:
        result = upscale_files(model, paths, args.out, opts, device, on_error=failures,
                               uncertainty=args.uncertainty, refs=args.refs, ref=args.ref, overwrite=args.overwrite,
                               refs_embedder=args.refs_embedder, refs_gate=args.refs_gate,
                               on_info=print, progress=bar, input_failures=list(failures),
                               check_outputs=not args.no_output_check, share=share)
    who = f"process {share.rank + 1}/{share.world}: " if share.world > 1 else ""
    print(f"{who}wrote {len(result['outputs'])} image(s) to {args.out} ({result['seconds_per_face']:.2f} s per face)")
    failed = len(result["failures"])
    if failed:
        stderr(f"{who}{failed} input(s) failed; see {Path(args.out) / share.manifest_name()}")
    return 1 if failed else 0


def _clips(args) -> int:
    from pathlib import Path

    from facesr.cli.common import load, progress_bar, sampling, stderr
    from facesr.workflows.video_sr import upscale_clips

    from facesr.engine.conditions import baseline_note

    model, device = load(args)
    note = baseline_note(model, stills=True) if args.no_neighbours else None
    if note:
        print(note)
    with progress_bar("frames") as bar:
        result = upscale_clips(model, [Path(s) for s in args.inputs], args.out, sampling(args, model), device,
                               args.frames, args.frame_step, args.fps, video=not args.no_video, on_error=stderr,
                               progress=bar, overwrite=args.overwrite, neighbours=not args.no_neighbours)
    for clip in result["clips"]:
        print(f"{clip['source']}: {clip['frames']} frames -> {clip['frames_dir']}"
              + (f" and {clip['video']}" if clip["video"] else "") + f" ({clip.get('seconds_per_frame', 0):.2f} s per frame)")
    if result["failures"]:
        stderr(f"{len(result['failures'])} clip(s) failed; see {Path(args.out) / 'facesr-run.json'}")
        return 1
    return 0
