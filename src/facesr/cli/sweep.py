"""facesr sweep"""

HELP = "seed 004's figures: the pc sampler over snr r (--snr), or samplers at equal NFE (--nfe)"
PARSER_OPTIONS = {"conflict_handler": "resolve"}


def add_arguments(p) -> None:
    from facesr.cli.common import add_sampling_options

    p.add_argument("--hr", required=True, help="folder of HR images (searched recursively)")
    p.add_argument("--protocol", default="all", choices=["all", "second"], help="'second': only the 2nd image of each identity folder (the probe)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images")
    p.add_argument("--identity", help="CS (and rank-1 with --protocol second) with 'dlib', 'dlib-detect' or 'adaface:CKPT[:ARCH]'")
    p.add_argument("-o", "--out", default="outputs/sweep", help="tables, plots and sweep.json; each setting's run in a subfolder")
    add_sampling_options(p)
    p.add_argument("--snr", type=float, nargs="+", metavar="R",
                   help="sweep the pc sampler's Langevin snr r over these values (needs --identity)")
    p.add_argument("--nfe", type=int, nargs="*", metavar="N",
                   help="sweep --samplers at these network-evaluation budgets per face (no values: 1 2 4 8 16 32 100 1000 2000)")
    p.add_argument("--samplers", nargs="+", default=["ddim", "dpmpp-2m", "heun", "pc"], help="samplers for --nfe (default: ddim dpmpp-2m heun pc)")


def run(args) -> int:
    """The pc sampler over snr values r (--snr), or samplers at equal network-evaluation budgets (--nfe)."""
    from facesr.cli.common import Reported, judge, load, recipe
    from facesr.workflows import evaluate, sweep

    model, device = load(args)
    kind, plan = sweep.check_request(model, args.snr, args.nfe, args.samplers, args.sampler, args.steps,
                                     judged=bool(args.identity))
    hr = evaluate.select_hr(args.hr, args.protocol, args.limit)
    who = judge(args.identity, args.hr, args.protocol)
    from facesr.engine.options import SamplingOptions

    given = {**recipe(args), "snr": None}  # snr: per setting; the rest as given or the model's recipe
    given.update({"sampler": "pc"} if kind == "snr" else {"sampler": None, "steps": None})
    opts = SamplingOptions.for_model(model, **given, seed=args.seed, batch_size=args.batch_size, precision=args.precision)
    print(f"{len(hr)} face(s) from {args.hr}; writing to {args.out}")
    failures = Reported()
    if kind == "snr":
        result = sweep.sweep_snr(model, hr, opts, plan, device, args.out, who, on_error=failures)
        corr = result["info"]["pearson_cs_psnr"]
        print(f"Pearson correlation of CS and PSNR over {result['info']['pearson_points']} (face, r) pairs: "
              + ("undefined" if corr is None else f"{corr:.4f}") + " (seed 004 slides: -0.6591)")
    else:
        result = sweep.sweep_nfe(model, hr, opts, *plan, device, args.out, who, on_error=failures)
        if result["skipped"]:
            print(f"{len(result['skipped'])} setting(s) skipped; see sweep.json")
    print(f"wrote {', '.join(result['info']['files'])} and sweep.json to {args.out}")
    return 1 if failures else 0
