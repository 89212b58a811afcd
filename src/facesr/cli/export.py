"""facesr export"""

HELP = "write a checkpoint's EMA weights as a compact model folder"


def add_arguments(p) -> None:
    from facesr.cli.common import add_recipe_options

    p.add_argument("checkpoint")
    p.add_argument("out")
    add_recipe_options(p, "(recorded as the model's recommended setting)")
    p.add_argument("--draw-steps", type=int, metavar="N",
                   help="for a recipe of one-step samples (estimates of the mean): the steps that make a sample a draw, "
                        "which the report and uncertainty maps use (recorded as the recipe's \"draws\")")


def run(args) -> int:
    import json
    from pathlib import Path

    from facesr.cli.common import recipe
    from facesr.errors import FacesrError
    from facesr.methods.hub import load_model, resolve_model_dir

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FacesrError(f"{out}: exists and is not a folder")
    source = resolve_model_dir(str(args.checkpoint), "checkpoint")
    if out.is_dir() and out.resolve() == source.resolve():
        raise FacesrError(f"{out}: is the checkpoint itself; export to another folder")
    model = load_model(source, use_ema=True, flag="checkpoint")
    state_file = source / "state.json"
    try:
        state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError):
        raise FacesrError(f"{state_file}: damaged checkpoint state (not valid JSON)") from None
    if not isinstance(state, dict):
        raise FacesrError(f"{state_file}: damaged checkpoint state (not a JSON object)")
    given = {k: v for k, v in recipe(args).items() if v is not None}
    if args.draw_steps is not None:
        if args.draw_steps < 2:
            raise FacesrError(f"--draw-steps must be 2 or more (one step estimates the mean), got {args.draw_steps}")
        given["draws"] = {"steps": args.draw_steps}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacesrError(f"{out}: cannot make the folder ({exc.strerror})") from None
    # a model folder (a new recipe for exported weights) has no state.json: its card's step count is kept
    steps = state.get("step", model.card.get("trained_steps"))
    model.save_pretrained(out, ema_state=model.state_dict(), include_raw=False, card={"trained_steps": steps},
                          sampling=given or None)
    print(f"wrote {out} (EMA weights)")
    return 0
