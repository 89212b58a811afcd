"""facesr evaluate"""

HELP = "PSNR, SSIM and LR-consistency of SR images against HR (or --run: make LR, run a model, score)"


def add_arguments(p) -> None:
    from facesr.cli.common import add_refs_gate, add_sampling_options

    p.add_argument("--sr", help="folder of SR images (matched to HR by file stem); every HR image needs one, or with "
                                "--lr every HR image that has an LR image")
    p.add_argument("--hr", required=True, help="folder of HR images (searched recursively)")
    p.add_argument("--lr", help="folder of the LR inputs (for consistency); default: made from HR with --op")
    p.add_argument("--run", action="store_true", help="make LR from --hr, run --model on it, then evaluate")
    p.add_argument("--protocol", default="all", choices=["all", "second"], help="'second': only the 2nd image of each identity folder (the probe)")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N images")
    p.add_argument("--op", default=None, help="operator that made LR (default: the model's, else bicubic)")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--y", action="store_true", help="PSNR/SSIM on Y (BT.601) instead of RGB")
    p.add_argument("--crop", type=int, default=0, help="border pixels to crop before PSNR/SSIM")
    p.add_argument("--identity", nargs="+", metavar="JUDGE",
                   help="with --run: identity metrics by each judge network: 'dlib' (aligned chips), 'dlib-detect', "
                        "'faceplugin' (the independent ArcFace judge, `make judge`), 'onnx:PATH[:MEAN,STD]' or "
                        "'adaface:CKPT[:ARCH]'; with --protocol second also rank-k against the first image of every "
                        "identity folder")
    p.add_argument("--aux", default="all", metavar="N|all",
                   help="FASR models (--run --protocol second): condition each probe on the LR versions of at most N "
                        "aux images of its identity (3rd image onwards); probes without any are left out (default: all)")
    p.add_argument("--aux-view", default="lr", choices=["lr", "hr"],
                   help="FASR (--run --protocol second): embed the aux images from their LR versions made with the model's operator ('lr', tiny "
                        "faces like the probe; default) or as they are ('hr', the FASR reference's test protocol)")
    p.add_argument("--ref-from", default="same", choices=["same", "other", "none"],
                   help="RefSR-VAE and FASR (--run --protocol second): the reference (first aux image) or the aux images "
                        "come from the probe's identity ('same'), or from the next identity ('other', the control); "
                        "FASR also 'none': the zero vector, the null identity of a model trained with vector dropout; "
                        "default: same")
    add_refs_gate(p, "FASR and a RefSR-VAE that reads who the reference is (--run --protocol second), as upscale "
                     "--refs: a probe whose LR face scores below this against its aux images or reference")
    p.add_argument("-o", "--out", default="outputs/eval", help="writes per_image.csv and summary.json here")
    p.add_argument("--overwrite", action="store_true",
                   help="--run: redo every probe; by default a killed run started again keeps the probes it finished")
    add_sampling_options(p)


def _conditions(args, model, hr):
    from facesr.cli.common import Reported
    from facesr.engine.conditions import parse_aux, protocol_conditions
    from facesr.errors import FacesrError

    parse_aux(args.aux, "--aux")  # a malformed --aux is an error whatever the model
    if not (model.needs.vector_dim or model.needs.reference):
        return hr, None, None
    if args.protocol != "second":
        raise FacesrError(f"{model.name} takes other images of each identity (aux images or a reference): "
                          "evaluate it with --protocol second")
    unusable = Reported()
    runnable, conditions, extra = protocol_conditions(model, hr, args.aux, args.ref_from, on_error=unusable,
                                                      view=args.aux_view)
    extra["unusable_images"] = unusable  # aux or reference images that could not be used
    if not runnable:
        raise FacesrError(f"{args.hr}: no probe has an aux image (identity folders need 3 or more images)")
    if len(runnable) < len(hr):
        print(f"{len(hr) - len(runnable)} probe(s) without a usable aux image left out")
    return runnable, conditions, extra


def _run(args):
    from facesr.cli.common import judge, load, progress_bar, sampling, stderr
    from facesr.engine.refs_gate import gated
    from facesr.errors import FacesrError
    from facesr.workflows import evaluate

    model, device = load(args)
    if args.op and args.op != model.operator.name or args.scale and args.scale != model.scale:
        raise FacesrError(f"--run makes LR with the model's own protocol ({model.lr_protocol.describe()}); drop --op/--scale")
    hr = evaluate.select_hr(args.hr, args.protocol, args.limit)
    who = judge(args.identity, args.hr, args.protocol)
    hr, conditions, extra = _conditions(args, model, hr)
    gate = args.refs_gate if gated(model) and args.ref_from != "none" else None
    with progress_bar("faces") as bar:
        return evaluate.run_and_evaluate(model, hr, sampling(args, model), device, args.out, args.y, args.crop, stderr,
                                         bar, judge=who, conditions=conditions, extra=extra, overwrite=args.overwrite,
                                         refs_gate=gate)


def _score(args):
    from facesr.cli.common import stderr
    from facesr.degrade.protocol import LRProtocol
    from facesr.errors import FacesrError
    from facesr.workflows import evaluate

    if not args.sr:
        raise FacesrError("give --sr DIR (images to score) or --run (make them with --model)")
    found = None if args.op or args.scale else evaluate.find_protocol(args.sr, args.lr)
    if found:
        protocol, source = found
    else:
        protocol = LRProtocol.of(args.op or "bicubic", args.scale or 8)
        source = "--op/--scale" if args.op or args.scale else "default (no degradation.json or run manifest found)"
    print(f"operator {protocol.operator.name} x{protocol.scale} from {source}")
    return evaluate.evaluate_folders(args.sr, args.hr, protocol, args.lr, args.y, args.crop, args.out, stderr)


def _mean(stats, digits: int = 4) -> str:
    return "–" if not stats else f"{stats['mean']:.{digits}f}"


def _print(result) -> None:
    for k, v in result["summary"]["metrics"].items():
        print(f"{k:<22} {v['mean']:.4f} ± {v['std']:.4f}  (n={v['n']})")
    for ident in result["summary"].get("judges", {}).values():
        _print_identity(ident)


def _print_identity(ident: dict) -> None:
    print(f"identity ({ident['embedder']}): CS SR {_mean(ident.get('cs'))}, bicubic {_mean(ident.get('bicubic_cs'))}")
    for kind in ("sr", "bicubic", "hr"):
        if f"{kind}_probes" in ident:
            r = ident[f"{kind}_probes"]
            ci = "" if not r.get("rank1_ci95") else " [95 % CI {:.3f}, {:.3f}]".format(*r["rank1_ci95"])
            rank1 = "–" if r.get("rank1") is None else f"{r['rank1']:.3f}"
            eer = "–" if r.get("eer") is None else f"{r['eer']:.3f}"
            ranked = f", {r['probes_ranked']} probes ranked" if "probes_ranked" in r else ""
            print(f"  {kind:<8} probes: rank-1 {rank1}{ci}  EER {eer}  "
                  f"(gallery of {ident['gallery_identities']} identities{ranked})")


def run(args) -> int:
    from pathlib import Path

    from facesr.cli.common import stderr, with_flags
    from facesr.io.images import check_output_folder
    from facesr.workflows.evaluate import OUT_WHAT

    check_output_folder(args.out, OUT_WHAT)  # before the model is loaded
    result = with_flags(_run)(args) if args.run else _score(args)
    _print(result)
    print(f"per-image CSV and summary JSON in {args.out}")
    failed = result["summary"]["failures"] + result["summary"].get("unusable_images", [])
    if failed:
        stderr(f"{len(failed)} input(s) could not be evaluated; listed in {Path(args.out) / 'summary.json'}")
    return 1 if failed else 0
