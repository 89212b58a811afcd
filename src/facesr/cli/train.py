"""facesr train"""

HELP = "train a model from a JSON experiment config"


def add_arguments(p) -> None:
    p.add_argument("config")
    p.add_argument("--data", nargs="+", help="training image folders (override data.train_dirs)")
    p.add_argument("--out", help="run folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    p.add_argument("--max-steps", type=int, help="stop at this step (overrides optim.max_steps)")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from pathlib import Path

    from facesr.train.config import load_experiment
    from facesr.train.loop import train

    cfg = load_experiment(args.config)
    if args.data:
        cfg.data.train_dirs = tuple(args.data)
    out = Path(args.out or f"runs/{cfg.name}")
    result = train(cfg, out, resume=args.resume, max_steps=args.max_steps, progress=not args.no_progress)
    if result["stopped_by"]:
        print(f"stopped by {result['stopped_by']} at step {result['step']}; checkpoint {result['checkpoint']}")
        data = f" --data {' '.join(args.data)}" if args.data else ""
        print(f"continue with: facesr train {args.config}{data} --out {out} --resume")
    else:
        print(f"trained to step {result['step']} in {result['seconds']:.0f} s; checkpoint {result['checkpoint']}")
    return 0
