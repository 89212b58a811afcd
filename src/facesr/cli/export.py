"""facesr export"""

HELP = "write a checkpoint's EMA weights as a compact model folder"


def add_arguments(p) -> None:
    from facesr.cli.common import add_recipe_options

    p.add_argument("checkpoint")
    p.add_argument("out")
    add_recipe_options(p, "(recorded as the model's recommended setting)")


def run(args) -> int:
    import json
    from pathlib import Path

    from facesr.cli.common import recipe
    from facesr.methods.hub import load_model

    model = load_model(args.checkpoint, use_ema=True, flag="checkpoint")
    state_file = Path(args.checkpoint) / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    given = {k: v for k, v in recipe(args).items() if v is not None}
    model.save_pretrained(args.out, ema_state=model.state_dict(), include_raw=False,
                          card={"trained_steps": state.get("step")}, sampling=given or None)
    print(f"wrote {args.out} (EMA weights)")
    return 0
