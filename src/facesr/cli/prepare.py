"""facesr prepare"""

HELP = "write SR3-style hr_/lr_/sr_ folders from HR images"


def add_arguments(p) -> None:
    p.add_argument("src", nargs="+", help="HR images, folders or globs")
    p.add_argument("out")
    p.add_argument("--scale", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--op", default="bicubic")


def run(args) -> int:
    from facesr.cli.common import stderr
    from facesr.data.prepare import prepare

    meta = prepare(args.src, args.out, args.scale, args.size, args.op, on_error=stderr)
    print(f"wrote {meta['images']} image(s) to {args.out} (hr_{meta['hr_size']}, lr_{meta['lr_size']}, "
          f"sr_{meta['lr_size']}_{meta['hr_size']})")
    return 1 if meta["skipped"] else 0
