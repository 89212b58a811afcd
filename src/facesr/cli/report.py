"""facesr report"""

HELP = "a forensic report on one face: K restorations, who they say it is by two judges, how stable (HTML + JSON)"


def add_arguments(p) -> None:
    from facesr.cli.benchmark import DEFAULT_JUDGES
    from facesr.methods.hub import DEFAULT_MODEL
    from facesr.cli.common import add_recipe_options, add_refs_options, add_run_options

    p.add_argument("probe", help="an LR face chip (e.g. 16x16 for an x8 model), or a photo: its largest face (or --face N)")
    p.add_argument("--gallery", required=True, help="<gallery>/<identity>/<images>, or a folder of images each its own identity")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"bundled model name or folder (default: {DEFAULT_MODEL})")
    p.add_argument("--face", type=int, help="in a photo: the face to report, 0 = the largest (default)")
    p.add_argument("--refs", nargs="+", metavar="REF", help="FASR: other images of the person (adds the reference control)")
    add_refs_options(p)
    p.add_argument("--ref", metavar="FACE", help="RefSR-VAE: an aligned HR photo of the person (adds the reference control)")
    p.add_argument("--identity", nargs="+", default=list(DEFAULT_JUDGES), metavar="JUDGE",
                   help=f"judge networks (default: {' '.join(DEFAULT_JUDGES)})")
    p.add_argument("-o", "--out", required=True, help="writes <out>/report.html (self-contained) and <out>/report.json")
    add_recipe_options(p, "(default: the model's recommended setting)")
    p.set_defaults(samples=16)
    add_run_options(p)


def run(args) -> int:
    from facesr.cli.common import Reported, progress_bar, recipe, with_flags
    from facesr.identity.arcface import judges_dir
    from facesr.runtime import resolve_device
    from facesr.workflows.report import make_report, write_report

    overrides = {k: v for k, v in recipe(args).items() if v is not None and k != "samples"}
    overrides.update(batch_size=args.batch_size, precision=args.precision)
    failures = Reported()
    with progress_bar("samples") as bar:
        report, images = with_flags(lambda: make_report(
            args.probe, args.gallery, args.model, args.samples, args.seed, refs=args.refs, ref=args.ref,
            refs_embedder=args.refs_embedder, refs_gate=args.refs_gate, judges=args.identity, face=args.face, overrides=overrides, device=resolve_device(args.device),
            on_error=failures, cache_dir=judges_dir().parent / "embeddings", progress=bar))()
    paths = write_report(args.out, report, images)
    for j in report["judges"]:
        print(f"{j['judge']}: {j['verdict']}")
    if report["verdict"]:
        print(f"together: {report['verdict']}")
    print(f"wrote {paths['html']} and {paths['json']}")
    return 1 if failures else 0
