"""Speed benchmark: faces per second for every bundled model, and training step time.

Run with `make bench` (bf16 autocast and fp32, tcmalloc when installed, 1 and 2 threads). Writes
benchmarks/SPEED.md. Timings are the median of repeated runs after a warm-up; run it on an otherwise
idle machine, since two threads stall whenever another process holds a core.

Regression models: one forward pass per face. Diffusion models: the time of one network evaluation
per face, and the faces per second of the model's recommended recipe (network evaluations of the recipe
times that time, plus the warm-start model's pass when the recipe names one). The default model's recipe is also
timed end to end, as `facesr upscale` runs it: 16 faces, all their samples in one batch, through the engine; so is
every diffusion model whose recipe takes at most 8 evaluations (issue 21's few-step target; ``--recipes`` names others).
Each timing is appended to `--state` (default: the output's name + `.partial.jsonl`) as soon as it is measured; a
killed run started again with the same settings keeps the timings it has (`--overwrite`: afresh); the state is
deleted once the table is written, so a finished run's successor measures everything again.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

from facesr.engine.options import SamplingOptions  # noqa: E402
from facesr.io.images import atomic_write_text  # noqa: E402
from facesr.io.records import ResultLog  # noqa: E402
from facesr.methods.base import Conditions  # noqa: E402
from facesr.methods.hub import DEFAULT_MODEL, bundled_models, load_model  # noqa: E402
from facesr.workflows.upscale import describe_recipe  # noqa: E402


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_conditions(model, batch: int, hr_size: int) -> Conditions:
    """Random stand-ins for what a model needs besides the LR: FASR's identity vector, RefSR's reference."""
    needs = model.needs
    vector = torch.nn.functional.normalize(torch.randn(batch, needs.vector_dim), dim=1) if needs.vector_dim else None
    ref = torch.rand(batch, 3, hr_size, hr_size) if needs.reference else None
    return Conditions(vector, ref)


def forward_seconds(model, batch: int, precision: str, steps: int, repeats: int) -> float:
    """Seconds per face of one network evaluation (diffusion), one forward pass (regression), or one
    self-ensemble view (the VAEs)."""
    lr = torch.rand(batch, 3 * model.needs.frames, model.lr_size, model.lr_size)
    cond = random_conditions(model, batch, model.hr_size)
    if not model.uses_sampler:
        opts = SamplingOptions(precision=precision)
        views = model.network_evaluations(opts)
        return median_time(lambda: model.super_resolve(lr, cond, opts), repeats) / batch / views
    opts = SamplingOptions(sampler="ddim", steps=steps, precision=precision)
    g = torch.Generator().manual_seed(0)
    return median_time(lambda: model.super_resolve(lr, cond, opts, generator=g), repeats) / batch / steps


def recipe_seconds(model, faces: int, precision: str, repeats: int) -> float:
    """Seconds per face of the model's recipe end to end through the engine, every sample of ``faces`` faces in one
    batch (the K samples of a face share what they can, e.g. a base network's pass)."""
    from facesr.engine.run import super_resolve_tensors

    opts = SamplingOptions.for_model(model, precision=precision)
    opts = dataclasses.replace(opts, batch_size=faces * opts.samples)
    lrs = [torch.rand(3 * model.needs.frames, model.lr_size, model.lr_size) for _ in range(faces)]
    keys = [f"face{i}" for i in range(faces)]
    conditions = None
    if model.needs.vector_dim or model.needs.reference:  # as forward_seconds: random stand-ins, one per face
        c = random_conditions(model, faces, model.hr_size)
        conditions = [Conditions(None if c.vector is None else c.vector[i], None if c.ref is None else c.ref[i])
                      for i in range(faces)]
    return median_time(lambda: super_resolve_tensors(model, lrs, keys, opts, "cpu", conditions=conditions),
                       repeats) / faces


def timed(state, key: tuple, measure) -> float:
    """The seconds ``measure()`` returns, kept in ``state`` (a ResultLog) under ``key``: measured once across runs."""
    kept = state.get(key)
    if kept is None:
        kept = {"seconds": measure()}
        state.add(key, kept)
    return kept["seconds"]


def training_step_kind(model) -> str:
    """What one training step of the model's config does: plain, or distillation from a teacher's draw."""
    cfg = getattr(model, "cfg", None)
    if getattr(cfg, "distill_from", None):
        return f"distillation ({cfg.distill_steps}-step teacher)"
    return "plain"


def train_step_seconds(model, batch: int, patch: int, repeats: int) -> float:
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-5)
    k, s = model.needs.frames, model.scale
    hr = torch.rand(batch, 3, patch, patch)
    lr = torch.rand(batch, 3 * k, patch // s, patch // s)
    up = torch.nn.functional.interpolate(lr, scale_factor=s, mode="bicubic")
    cond = random_conditions(model, batch, patch)
    inputs = {"hr": hr, "up": up, "lr": lr, "vector": cond.vector, "ref": cond.ref}

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(inputs, torch.Generator().manual_seed(0))
        loss.backward()
        opt.step()
        opt.zero_grad()

    t = median_time(step, repeats)
    model.eval()
    return t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", help="model names or folders (default: every bundled model)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=5, help="sampling steps per timed diffusion run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="skip the training step timings")
    parser.add_argument("--recipes", nargs="*", help="models whose recipe is timed end to end (default: the default "
                        "model and every diffusion model with at most 8 evaluations a face)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("SPEED.md")))
    parser.add_argument("--state", help="timings kept across runs (default: OUT.partial.jsonl)")
    parser.add_argument("--overwrite", action="store_true", help="forget kept timings and measure every one again")
    args = parser.parse_args()
    names = args.models or [m["name"] for m in bundled_models()]
    models = {name: load_model(name) for name in names}
    state_path = Path(args.state or args.out + ".partial.jsonl")
    if state_path.exists() and not state_path.is_file():
        parser.error(f"--state {state_path}: not a file")
    settings = {"steps": args.steps, "repeats": args.repeats, "machine": platform.machine(), "torch": torch.__version__}
    try:
        state = ResultLog(state_path, settings, args.overwrite)
    except UnicodeDecodeError:
        parser.error(f"--state {state_path}: not a state file of this script (not text)")
    ends = args.recipes if args.recipes is not None else [
        name for name, m in models.items()
        if name == DEFAULT_MODEL or (m.uses_sampler and m.network_evaluations(SamplingOptions.for_model(m)) <= 8)]
    ends = {name: models.get(name) or load_model(name) for name in ends}
    infer, train, recipe = [], [], []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, model in ends.items():
            for precision in ("bf16", "fp32"):
                t = timed(state, ("recipe", threads, name, precision, repr(sorted(model.sampling.items()))),
                          lambda: recipe_seconds(model, 16, precision, args.repeats))
                recipe.append((threads, name, precision, t))
            print(f"{threads} thread(s): {name} recipe timed end to end", file=sys.stderr)  # progress
        for name, model in models.items():
            opts = SamplingOptions.for_model(model)
            nfe = model.network_evaluations(opts)
            init = models.get(opts.init) or (load_model(opts.init) if opts.init and opts.strength < 1 else None)
            for precision in ("bf16", "fp32"):
                for batch in (1, 16):
                    t = timed(state, ("forward", threads, name, precision, batch),
                              lambda: forward_seconds(model, batch, precision, args.steps, args.repeats))
                    t_init = timed(state, ("forward", threads, opts.init, precision, batch, "init"),
                                   lambda: forward_seconds(init, batch, precision, 1, args.repeats)) if init is not None else 0.0
                    infer.append((threads, name, model.method, precision, batch, t, nfe, 1 / (t * nfe + t_init)))
            print(f"{threads} thread(s): {name} timed", file=sys.stderr)  # progress; each timing is kept in --state
        if not args.no_train:
            for name, model in models.items():
                patches = (64, model.hr_size) if model.uses_sampler else (model.hr_size,)
                batch = 16 if model.method == "regression" else 8
                for patch in patches:
                    t = timed(state, ("train", threads, name, batch, patch),
                              lambda: train_step_seconds(model, batch, patch, args.repeats))
                    train.append((threads, name, batch, patch, t))
                print(f"{threads} thread(s): {name} training step timed", file=sys.stderr)
    lines = [
        "# Speed benchmark",
        "",
        "Command: `make bench` (= `python benchmarks/speed.py --threads 1 2`, tcmalloc preloaded when installed, "
        "OMP_WAIT_POLICY=PASSIVE).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; median of {args.repeats} "
        "runs after a warm-up; random inputs of the model's LR size.",
        "",
        "## Inference",
        "",
        "Per evaluation: seconds per face of one network evaluation (diffusion), one forward pass (regression) or one "
        "self-ensemble view (the VAEs). FASR gets a random unit identity vector, RefSR a random reference image. "
        "Recipe: the model's recommended sampling (`facesr models`), end to end per face.",
        "",
        "| threads | model | method | precision | batch | s / face / evaluation | evaluations per face | faces / s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for threads, name, method, prec, batch, t, nfe, fps in infer:
        lines.append(f"| {threads} | {name} | {method} | {prec} | {batch} | {t:.4f} | {nfe} | {fps:.2f} |")
    if recipe:
        lines += ["", f"### Recipes end to end (the default model, {DEFAULT_MODEL}, and the few-step ones)", "",
                  "16 faces with all their samples in one batch, through the engine as `facesr upscale` runs it (the "
                  "per-evaluation table above times separate steps; here the samples of one face share what they can, "
                  "e.g. a base network's pass).", "",
                  "| threads | model | recipe | evaluations per face | precision | faces | s / face | faces / s |",
                  "|---|---|---|---|---|---|---|---|"]
        for threads, name, prec, t in recipe:
            opts = SamplingOptions.for_model(ends[name])
            lines.append(f"| {threads} | {name} | {describe_recipe(ends[name], opts)} | "
                         f"{ends[name].network_evaluations(opts)} | {prec} | 16 | {t:.3f} | {1 / t:.2f} |")
    if train:
        lines += ["", "## Training (bf16 autocast)", "",
                  "A step of the model's own config: for a distilled model that is a distillation step (its frozen "
                  "teacher's few-step draw, then the student's step), which costs several of the plain steps its "
                  "teacher trained with.", "",
                  "| threads | model | step | batch | patch | s / step | steps / hour |",
                  "|---|---|---|---|---|---|---|"]
        for threads, name, batch, patch, t in train:
            lines.append(f"| {threads} | {name} | {training_step_kind(models[name])} | {batch} | {patch}px | {t:.3f} | "
                         f"{3600 / t:.0f} |")
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    state_path.unlink(missing_ok=True)  # the table holds them now: the next run measures afresh
    print("\n".join(lines))


if __name__ == "__main__":
    main()
