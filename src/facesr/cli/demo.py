"""facesr demo"""

HELP = "super-resolve the bundled sample faces and write a comparison sheet"


def add_arguments(p) -> None:
    from facesr.cli.common import add_sampling_options

    p.add_argument("-o", "--out", default="outputs/demo")
    add_sampling_options(p)


def run(args) -> int:
    from facesr.cli.common import load, progress_bar, sampling
    from facesr.workflows.demo import run_demo
    from facesr.io.images import check_output_folder

    check_output_folder(args.out)
    model, device = load(args)
    with progress_bar("samples") as bar:
        run_demo(model, sampling(args, model), device, args.out, progress=bar)
    return 0
