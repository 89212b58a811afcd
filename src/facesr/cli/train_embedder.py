"""facesr train-embedder"""

HELP = "fine-tune dlib's face network to read tiny LR faces (an identity student: --identity dlib-lq:FOLDER)"


def add_arguments(p) -> None:
    from facesr.cli.train import add_arguments as train_arguments

    train_arguments(p)


def run(args) -> int:
    from facesr.cli.train import run_training
    from facesr.train.student import load_student_config, train_student

    def trainer(cfg, out):
        return train_student(cfg, out, resume=args.resume, max_steps=args.max_steps)

    return run_training(args, "train-embedder", load_student_config, trainer,
                        lambda r: f"the student: --identity dlib-lq:{r['checkpoint']}")
