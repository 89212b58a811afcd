"""facesr serve"""

HELP = "a local web page and JSON API: upload a photo, chip or video, see the faces restored (and identified)"


def add_arguments(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--gallery", help="<dir>/<identity>/<images>: faces are identified against it (server-side only)")
    p.add_argument("--models", nargs="+", default=[], help="the bundled models offered (default: all)")
    p.add_argument("--max-upload-mb", type=int, default=25)
    p.add_argument("--max-megapixels", type=float, default=16)
    p.add_argument("--queue", type=int, default=8, help="requests that may wait; more get 503 (default 8)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "fp16"])
    p.add_argument("--device", default="cpu")


def run(args) -> int:
    from pathlib import Path

    from facesr.errors import FacesrError
    from facesr.web.app import ServeConfig, create_app, serve

    if not 0 < args.port < 65536:
        raise FacesrError(f"--port must be 1 to 65535, got {args.port}")
    config = ServeConfig(gallery=Path(args.gallery) if args.gallery else None, models=tuple(args.models),
                         max_upload_bytes=args.max_upload_mb * 2**20, max_pixels=int(args.max_megapixels * 1e6),
                         max_waiting=args.queue, precision=args.precision, device=args.device)
    app = create_app(config)  # a bad gallery or model list stops here, with one line
    where = "this machine only" if args.host in ("127.0.0.1", "localhost", "::1") else "other machines too"
    print(f"facesr serve: http://{args.host}:{args.port}/ ({where}); Ctrl-C stops it")
    serve(app, args.host, args.port)
    return 0
