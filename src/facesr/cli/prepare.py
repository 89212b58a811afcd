"""facesr prepare"""

HELP = "write SR3-style hr_/lr_/sr_ folders from HR images"


def add_arguments(p) -> None:
    p.add_argument("src", nargs="+", help="HR images, folders (searched recursively) or globs; images smaller than --size "
                                          "are skipped, and inputs sharing a file stem get <stem>_2, <stem>_3 ...")
    p.add_argument("out")
    p.add_argument("--scale", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--op", default="bicubic")


def run(args) -> int:
    from pathlib import Path

    from facesr.cli.common import stderr
    from facesr.data.prepare import prepare

    meta = prepare(args.src, args.out, args.scale, args.size, args.op, on_error=stderr)
    renamed = f"; {len(meta['renamed'])} renamed for a file stem already taken" if meta["renamed"] else ""
    print(f"wrote {meta['images']} image(s) to {args.out} (hr_{meta['hr_size']}, lr_{meta['lr_size']}, "
          f"sr_{meta['lr_size']}_{meta['hr_size']}){renamed}")
    if meta["skipped"]:
        stderr(f"{len(meta['skipped'])} input(s) skipped; listed in {Path(args.out) / 'degradation.json'}")
        return 1
    return 0
