"""facesr train"""

HELP = "train a model from a JSON experiment config"

# exit status after SIGINT / SIGTERM (the checkpoint is saved first): 128 + the signal's number, the shell's
# convention, so a job scheduler or script sees that the run did not finish
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def add_arguments(p) -> None:
    p.add_argument("config")
    p.add_argument("--data", nargs="+", help="training image folders (override data.train_dirs)")
    p.add_argument("--out", help="run folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    p.add_argument("--max-steps", type=int, help="stop at this step (overrides optim.max_steps)")
    p.add_argument("--no-progress", action="store_true")


def resume_command(args, out, command: str = "train") -> str:
    """The command line that continues this run from its latest checkpoint."""
    import shlex

    words = ["facesr", command, args.config]
    if args.data:
        words += ["--data", *args.data]
    words += ["--out", str(out), "--resume"]
    if args.max_steps:
        words += ["--max-steps", str(args.max_steps)]
    return " ".join(shlex.quote(w) for w in words)


def run(args) -> int:
    from facesr.train.config import load_experiment
    from facesr.train.loop import train

    def trainer(cfg, out):
        return train(cfg, out, resume=args.resume, max_steps=args.max_steps, progress=not args.no_progress)

    return run_training(args, "train", load_experiment, trainer, lambda r: f"checkpoint {r['checkpoint']}")


def run_training(args, command: str, load_config, trainer, finished) -> int:
    """Load the config, apply --data and --out, train; a signal ends it with the line that resumes it."""
    import sys
    from pathlib import Path

    from facesr.errors import FacesrError

    if args.max_steps is not None and args.max_steps < 1:
        raise FacesrError(f"--max-steps must be at least 1, got {args.max_steps}")
    cfg = load_config(args.config)
    if args.data:
        cfg.data.train_dirs = tuple(args.data)
    out = Path(args.out or f"runs/{cfg.name}")
    result = trainer(cfg, out)
    if result["stopped_by"]:
        print(f"facesr {command}: stopped by {result['stopped_by']} at step {result['step']}; checkpoint saved in "
              f"{result['checkpoint']}; continue with: {resume_command(args, out, command)}", file=sys.stderr)
        return EXIT_SIGTERM if result["stopped_by"] == "SIGTERM" else EXIT_SIGINT
    print(f"trained to step {result['step']} in {result['seconds']:.0f} s; {finished(result)}")
    return 0
