"""facesr train-embedder"""

HELP = "fine-tune dlib's face network to read tiny LR faces (an identity student: --identity dlib-lq:FOLDER)"


def add_arguments(p) -> None:
    from facesr.cli.train import add_arguments as train_arguments

    train_arguments(p)


def run(args) -> int:
    import sys
    from pathlib import Path

    from facesr.cli.train import EXIT_SIGINT, EXIT_SIGTERM, resume_command
    from facesr.errors import FacesrError
    from facesr.train.student import load_student_config, train_student

    if args.max_steps is not None and args.max_steps < 1:
        raise FacesrError(f"--max-steps must be at least 1, got {args.max_steps}")
    cfg = load_student_config(args.config)
    if args.data:
        cfg.data.train_dirs = tuple(args.data)
    out = Path(args.out or f"runs/{cfg.name}")
    result = train_student(cfg, out, resume=args.resume, max_steps=args.max_steps)
    if result["stopped_by"]:
        again = resume_command(args, out).replace("facesr train ", "facesr train-embedder ", 1)
        print(f"facesr train-embedder: stopped by {result['stopped_by']} at step {result['step']}; checkpoint saved in "
              f"{result['checkpoint']}; continue with: {again}", file=sys.stderr)
        return EXIT_SIGTERM if result["stopped_by"] == "SIGTERM" else EXIT_SIGINT
    print(f"trained to step {result['step']} in {result['seconds']:.0f} s; the student: --identity "
          f"dlib-lq:{result['checkpoint']}")
    return 0
