"""facesr demo"""

HELP = "super-resolve the bundled sample faces and write a comparison sheet"


def add_arguments(p) -> None:
    from facesr.cli.common import add_sampling_options

    p.add_argument("-o", "--out", default="outputs/demo")
    add_sampling_options(p)


def run(args) -> int:
    from facesr.cli.common import load, sampling
    from facesr.workflows.demo import run_demo

    model, device = load(args)
    run_demo(model, sampling(args, model), device, args.out)
    return 0
