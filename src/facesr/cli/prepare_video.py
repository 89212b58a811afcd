"""facesr prepare-video"""

HELP = "write multi-frame hr_/lr_/sr_ clip folders from videos or frame folders"


def add_arguments(p) -> None:
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


def run(args) -> int:
    from facesr.cli.common import stderr
    from facesr.data.video import prepare_video

    res = prepare_video(args.src, args.out, args.frames, args.interval, args.scale, args.size, args.op,
                        align=args.align, fps=args.fps, start_s=args.start, on_error=stderr)
    lr, hr = res["lr_size"], res["hr_size"]
    print(f"wrote {res['clips_written']} clip(s) x {res['frames_per_clip']} frames to {args.out} "
          f"(hr_{hr}, lr_{lr}, sr_{lr}_{hr}; {res['operator']['name']} x{res['operator']['scale']}); "
          f"skipped {len(res['skipped'])}")
    return 1 if res["skipped"] else 0
