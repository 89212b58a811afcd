"""facesr features"""

HELP = "identity features per identity folder (FASR's --refs) or per image (training)"


def add_arguments(p) -> None:
    p.add_argument("root", help="<root>/<identity>/<images>, or any image folder with --per-image")
    p.add_argument("out", help="features file to write (.safetensors)")
    p.add_argument("--per-image", action="store_true", help="one row per image, named by its path under ROOT (for training)")
    p.add_argument("--embedder", default="dlib", help="'dlib' (aligned chips), 'dlib-detect', 'dlib-lq:FOLDER' (a student) or 'adaface:CKPT[:ARCH]' (default: dlib)")
    p.add_argument("--lr", metavar="OPERATOR:SCALE",
                   help="embed each image's LR version made with this operator (e.g. bicubic:8) instead of the file as it is")
    p.add_argument("--aggregate", default="mean", choices=["mean", "trimmed"], help="how one identity's embeddings are combined")
    p.add_argument("--renorm", action="store_true", help="re-normalise each aggregated vector to unit length")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first N images of each identity folder (2: facesr's gallery and probe)")
    p.add_argument("--max-images", type=int, default=0, help="use at most this many images per identity (0: all)")
    p.add_argument("--limit", type=int, default=0, help="--per-image: embed only N images, evenly spaced over the sorted list")
    p.add_argument("--others", metavar="N|all",
                   help="--per-image over identity folders: each image's row aggregates N (or all) *other* images of its "
                        "identity, drawn with --seed (FASR training on the test-time condition)")
    p.add_argument("--seed", type=int, default=0, help="--others: random draw of the other images")


def run(args) -> int:
    from facesr.cli.common import Reported, progress_bar, stderr
    from facesr.degrade.protocol import LRProtocol
    from facesr.engine.conditions import parse_aux
    from facesr.identity.embedders import make_embedder
    from facesr.identity.features import build_table, check_features_path

    check_features_path(args.out)  # before any work
    protocol = LRProtocol.parse(args.lr, "--lr") if args.lr else None
    others = parse_aux(args.others, "--others") if args.others is not None else None
    embedder = make_embedder(args.embedder)
    failures = Reported()
    with progress_bar("images" if args.per_image else "identities") as bar:
        table = build_table(embedder, args.root, args.per_image, protocol, args.aggregate, args.renorm, args.skip,
                            args.max_images, args.limit, others, args.seed, on_error=failures, progress=bar)
    table.meta["embedder_spec"] = args.embedder
    table.save(args.out)
    kind = "images" if args.per_image else "identities"
    print(f"wrote {args.out}: {len(table.names)} {kind} x {table.dim} ({table.meta['embedder']}, view {table.meta['view']})")
    if failures:
        stderr(f"{len(failures)} input(s) could not be used")
        return 1
    return 0
