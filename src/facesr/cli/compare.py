"""facesr compare"""

HELP = "paired comparison of evaluation runs on the same probes, with confidence intervals"


def add_arguments(p) -> None:
    p.add_argument("base", metavar="[LABEL=]RUN", help="run folder holding per_image.csv (a 'facesr benchmark' method folder, "
                                                      "or the output of 'facesr evaluate --run')")
    p.add_argument("runs", nargs="+", metavar="[LABEL=]RUN", help="run folders to compare with the base")
    p.add_argument("-o", "--out", help="also write paired.md and paired.json here")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--slice", metavar="START:STOP", default=":",
                   help="compare only these probes, in the order of the base run's per_image.csv, which is the "
                        "benchmark's probe order (e.g. 100: for all but the first 100; default: all)")
    p.add_argument("--judge", metavar="NETWORK",
                   help="compare CS and rank-1 by this judge network of the runs (e.g. faceplugin-arcface; default: "
                        "the runs' first judge)")
    p.add_argument("--common", action="store_true",
                   help="compare the probes that every run has, instead of refusing runs on different probes")


def run(args) -> int:
    from pathlib import Path

    from facesr.cli.common import Reported
    from facesr.workflows.compare import compare_runs, labelled_run, parse_slice, write_comparison

    probes = parse_slice(args.slice)
    failures = Reported()
    result = compare_runs(labelled_run(args.base), [labelled_run(t) for t in args.runs], seed=args.seed, probes=probes,
                          on_error=failures, common=args.common, judge=args.judge)
    print(result["markdown"])
    if args.out:
        write_comparison(result, args.out)
        print(f"wrote {Path(args.out) / 'paired.md'} and paired.json")
    return 1 if failures else 0
