"""What several commands share: the model and sampling options, and how failures are reported."""

from __future__ import annotations

import argparse
import sys

from facesr.errors import FacesrError
from facesr.methods.hub import DEFAULT_MODEL

# the library names what a model lacks by its API parameter; the CLI by its flag
def gate_threshold(text: str) -> float | None:
    """argparse type of --refs-gate: a cosine or 'off' (argparse names the flag in its one error line)."""
    from facesr.engine.refs_gate import parse_threshold

    try:
        return parse_threshold(text, "")
    except FacesrError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def add_refs_gate(p, what: str) -> None:
    """--refs-gate: ``what`` says which input is gated against which references."""
    from facesr.engine.refs_gate import THRESHOLD

    p.add_argument("--refs-gate", metavar="COSINE", type=gate_threshold, default=THRESHOLD,
                   help=f"{what} (cosine, by the bundled student of the model's network) runs without them, on the "
                        f"null identity, and is named (default {THRESHOLD}; 'off': always use them)")


def add_refs_options(p) -> None:
    p.add_argument("--refs-embedder", metavar="EMBEDDER",
                   help="the network that embeds --refs, if not the model's own: 'dlib-lq' (dlib fine-tuned to read tiny "
                        "faces, bundled) for LR refs with a dlib-conditioned model")
    add_refs_gate(p, "an input whose LR face scores below this against its --refs (or the --ref of a RefSR-VAE that reads "
                     "who the reference is)")


FLAGS = {"refs": "--refs", "refs_embedder": "--refs-embedder", "refs_gate": "--refs-gate", "ref": "--ref",
         "frames": "--frames"}


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Reported(list):
    """An ``on_error`` callback: prints each message to stderr and keeps it for the exit code."""

    def __call__(self, message: str) -> None:
        self.append(message)
        stderr(message)


class progress_bar:
    """``with progress_bar("faces") as bar: work(progress=bar)``: ``bar(done, total)`` moves a tqdm bar on
    stderr (shown on a terminal only, so logs and pipes get the plain lines)."""

    def __init__(self, unit: str):
        self.unit, self.bar = unit, None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=f" {self.unit}", disable=None, file=sys.stderr, leave=False)
        elif total != self.bar.total or done < self.bar.n:  # the next clip, or a new pass
            self.bar.reset(total=total)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def add_recipe_options(p: argparse.ArgumentParser, default_note: str) -> None:
    """Sampler, steps, eta, strength, samples, init, guidance, identity gradient, projection and the SDE samplers' options: a model's recipe."""
    from facesr.diffusion.pc import CORRECTORS, PREDICTORS
    from facesr.diffusion.samplers import SAMPLERS

    p.add_argument("--sampler", choices=SAMPLERS.names(), help=f"sampler {default_note}")
    p.add_argument("--steps", type=int, help=f"noise levels per sample (= network evaluations; heun: 2 x steps - 1) {default_note}")
    p.add_argument("--eta", type=float, help=f"DDIM stochasticity, 0 = deterministic {default_note}")
    p.add_argument("--strength", type=float,
                   help=f"1: sample from pure noise; < 1: warm start from bicubic noised to that fraction of the schedule {default_note}")
    p.add_argument("--samples", type=int,
                   help=f"average this many samples per face (posterior-mean estimate; samples x steps evaluations) {default_note}")
    p.add_argument("--init", metavar="MODEL",
                   help=f"with --strength < 1: warm start from this regression model's output (e.g. msrresnet-x8) instead of bicubic {default_note}")
    p.add_argument("--guidance", type=float,
                   help=f"FASR: identity guidance weight w, D(v) + w (D(v) - D(0)); doubles the evaluations {default_note}")
    p.add_argument("--identity-scale", type=float, metavar="S",
                   help=f"FASR: the references' identity vector enters as S v (1: as made, 0: the null identity); below 1 "
                        f"a wrong person's references pull less, and so do the right person's {default_note}")
    p.add_argument("--identity-gradient", type=float, metavar="W",
                   help=f"FASR on dlib vectors: guide toward the identity vector through dlib's differentiable network, "
                        f"D + W sigma g / rms(g), g = grad cos {default_note}")
    p.add_argument("--project", type=int, metavar="N",
                   help=f"N rounds of back-projection make each output consistent with its LR (0: off; models with a "
                        f"known LR operator) {default_note}")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help=f"every second sample runs on the mirrored face and is mirrored back: a self-ensemble within the "
                        f"samples' cost (needs --samples 2 or more) {default_note}")
    pc = p.add_argument_group("SDE samplers (--sampler pc / ode)")
    pc.add_argument("--predictor", choices=sorted(PREDICTORS), help="PC predictor")
    pc.add_argument("--corrector", choices=sorted(CORRECTORS), help="PC corrector (runs before the predictor)")
    pc.add_argument("--snr", type=float, help="Langevin snr 'r': larger is smoother (PSNR up) but can lower identity similarity")
    pc.add_argument("--corrector-steps", type=int, help="Langevin steps per noise level")
    pc.add_argument("--probability-flow", action="store_const", const=True, help="deterministic PC (probability flow)")
    pc.add_argument("--ode-method", choices=["euler", "heun", "rk45"], help="probability-flow ODE solver")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same output")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "fp16"], help="autocast precision (default: bf16)")


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"bundled model name or a folder made by save_pretrained (default: {DEFAULT_MODEL})")
    add_recipe_options(p, "(default: the model's recommended setting, see 'facesr models')")
    add_run_options(p)


def recipe(args) -> dict:
    from facesr.engine.options import RECIPE_KEYS

    return {k: getattr(args, k) for k in RECIPE_KEYS}


def sampling(args, model, draws: bool = False, **overrides):
    """The options of this run: the model's recipe (``draws``: for samples that are draws) under the flags given."""
    from facesr.engine.options import SamplingOptions

    return SamplingOptions.for_model(model, draws, **{**recipe(args), **overrides}, seed=args.seed,
                                     batch_size=args.batch_size, precision=args.precision)


def recipe_note(args, model, draws: bool = False) -> str | None:
    """Which options come from the model's recipe because they were not given (they multiply the ones
    that were: --steps 50 on an 8-sample recipe is 400 evaluations a face)."""
    from facesr.engine.options import model_recipe

    taken = {k: v for k, v in model_recipe(model, draws).items() if getattr(args, k, None) is None}
    given = [k for k in recipe(args) if getattr(args, k) is not None]
    if not taken or not given:
        return None
    listed = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in taken.items())
    return f"from {model.name}'s recipe: {listed} (give them to change)"


def load(args, name: str | None = None, device=None):
    """(model, device) for --model (or ``name``) on --device (or ``device``)."""
    from facesr.methods.hub import load_model
    from facesr.runtime import resolve_device

    device = device or resolve_device(args.device)
    return load_model(name or args.model, device, flag="--model"), device


def judge(specs, hr_root, protocol: str = "second"):
    """The identity judges of --identity (one spec or a list): their embedders and, with --protocol
    second, the gallery (the first image of every identity folder); None without any."""
    if not specs:
        return None
    from facesr.identity.embedders import make_embedder
    from facesr.identity.recognition import identity_split
    from facesr.workflows.evaluate import Judge, as_judges

    gallery = None
    if protocol == "second":
        gallery = {name: entry["gallery"] for name, entry in identity_split(hr_root).items()}
    specs = [specs] if isinstance(specs, str) else list(specs)
    return as_judges([Judge(make_embedder(spec), gallery) for spec in specs])


def with_flags(fn):
    """Run ``fn``; a ConditionError names the CLI flag instead of the API parameter."""
    from facesr.methods.base import ConditionError

    def wrapped(*a, **k):
        try:
            return fn(*a, **k)
        except ConditionError as exc:
            raise exc.for_flags(FLAGS) from None

    return wrapped


__all__ = ["FacesrError", "Reported", "stderr"]
