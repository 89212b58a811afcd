"""facesr benchmark"""

HELP = "several methods on one identity test set: PSNR, SSIM, consistency, CS, rank-1 (Markdown + CSV)"
# Identity figures are reported by two networks (issue 19): dlib's ResNet conditions FASR, the ArcFace judge never
# enters training, conditioning or guidance.
DEFAULT_JUDGES = ("dlib", "faceplugin")


def add_arguments(p) -> None:
    from facesr.cli.common import add_run_options

    p.add_argument("--hr", required=True, help="<root>/<identity>/<images>: 1st = gallery, 2nd = probe, rest = aux")
    p.add_argument("--method", nargs="+", required=True, metavar="LABEL=MODEL[,key=value]",
                   help="e.g. sr3=sr3-x8  fasr-4=fasr-x8,aux=4  sr3-1step=sr3-x8,steps=1,samples=1  "
                        "refsr=refsr-vae-x8,ref=same; keys: aux (N or all), view (lr or hr), ref (same, other or none), "
                        "embedder (FASR: the network that embeds the aux images, e.g. dlib-lq), gate (FASR and "
                        "RefSR-VAE with ref_identity or identity_refine: the reference gate's cosine, or off; default 0.92), and any sampling option (sampler, steps, strength, samples, init, eta, guidance, snr, ...)")
    p.add_argument("--identity", nargs="+", default=list(DEFAULT_JUDGES), metavar="JUDGE",
                   help="judge networks, each reported in its own columns: 'dlib', 'dlib-detect', 'faceplugin' "
                        "(the independent ArcFace judge, `make judge`), 'onnx:PATH[:MEAN,STD]' or 'adaface:CKPT[:ARCH]' "
                        f"(default: {' '.join(DEFAULT_JUDGES)})")
    p.add_argument("--limit", type=int, default=0, help="use only the first N probes")
    p.add_argument("-o", "--out", default="outputs/benchmark", help="benchmark.md, benchmark.csv and one run folder per method")
    p.add_argument("--overwrite", action="store_true",
                   help="redo every probe; by default a killed benchmark started again keeps the probes it finished")
    add_run_options(p)
    p.add_argument("--baseline", metavar="LABEL",
                   help="also write paired.md: every method against this one, probe by probe, with confidence intervals")


def run(args) -> int:
    from pathlib import Path

    from facesr.cli.common import Reported
    from facesr.identity.embedders import make_embedder
    from facesr.runtime import resolve_device
    from facesr.workflows.benchmark import check_methods, parse_method, run_benchmark

    methods = check_methods([parse_method(text) for text in args.method], args.baseline)
    failures = Reported()
    result = run_benchmark(args.hr, methods, args.out, [make_embedder(spec) for spec in args.identity], resolve_device(args.device),
                           args.limit, args.batch_size, args.seed, args.precision, on_error=failures,
                           overwrite=args.overwrite)
    print(result["markdown"])
    print(f"wrote {Path(args.out) / 'benchmark.md'} and benchmark.csv")
    if args.baseline is not None:
        from facesr.workflows.compare import compare_runs, write_comparison

        out = Path(args.out)
        names = [e.name for e in result["judges"]]
        for i, judge in enumerate(names):  # one paired table per judge: paired.md (the first), paired-<judge>.md
            paired = compare_runs((args.baseline, out / args.baseline),
                                  [(m.label, out / m.label) for m in methods if m.label != args.baseline], seed=args.seed,
                                  on_error=failures, on_missing=lambda line: None,  # why a value is missing: reported above
                                  judge=None if i == 0 else judge)
            name = "paired" if i == 0 else f"paired-{judge}"
            write_comparison(paired, out, name)
            print(paired["markdown"])
            print(f"wrote {out / name}.md")
    return 1 if failures else 0
