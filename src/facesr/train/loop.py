"""The training loop: Adam, linear warm-up, gradient clipping, EMA, accelerate.

The same code trains on a CPU, one GPU or several (``accelerate launch``).
Data order and augmentation depend only on the seed and the step, so ``resume``
continues exactly where a killed or interrupted run stopped.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import time
from pathlib import Path

import torch

from facesr.data.datasets import EpochSampler, HRFolderDataset
from facesr.errors import FacesrError
from facesr.io.images import atomic_write_text
from facesr.methods.base import read_config
from facesr.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from facesr.train.config import ExperimentConfig, learning_rate, param_groups


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checkpoints and exits at the next step."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _any_process(accel, flag: bool) -> bool:
    """True if ``flag`` is set on any process (a signal may reach only one of them)."""
    if accel.num_processes == 1:
        return flag
    t = torch.tensor([float(flag)], device=accel.device)
    return bool(accel.reduce(t, reduction="sum").item() > 0)


def ema_state_dict(model, ema) -> dict:
    # EMAModel keeps one shadow per parameter of model.parameters(), frozen ones included (copied)
    names = [n for n, _ in model.named_parameters()]
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state.update({n: s.detach().clone() for n, s in zip(names, ema.shadow_params)})
    return state


def load_vector_tables(cfg: ExperimentConfig, model) -> list:
    """The config's per-image identity feature files, checked against the model's vector input."""
    from facesr.identity.features import FeatureTable

    dim = model.needs.vector_dim
    if not cfg.data.vectors:
        if dim:
            raise FacesrError(f"this model is conditioned on {dim}-d identity vectors: set data.vectors "
                              "(files from 'facesr features --per-image')")
        return []
    if not dim:
        raise FacesrError("data.vectors is set, but the model takes no identity vector (unet.vector_dim is 0)")
    tables = [FeatureTable.load(path) for path in cfg.data.vectors]
    for path, table in zip(cfg.data.vectors, tables):
        if table.meta.get("kind") != "per_image":
            raise FacesrError(f"{path}: made per identity; training needs 'facesr features --per-image'")
        if table.dim != dim:
            raise FacesrError(f"{path}: {table.dim}-d vectors, the model takes {dim}-d")
        spec = table.meta.get("embedder_spec")
        if spec != model.needs.vector_embedder:
            raise FacesrError(f"{path}: made with embedder {spec!r}, the model expects {model.needs.vector_embedder!r}")
    return tables


def init_weights(model, source: str) -> list[str]:
    """Copy the weights of model ``source`` into ``model``; returns the top-level modules that keep their init."""
    from facesr.methods.hub import load_model

    src = load_model(source, flag="init_from")
    model.carry_records(src.config_dict())
    state = model.adapt_init_state(src.state_dict())
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise FacesrError(f"init_from {source}: weights do not fit this model ({str(exc).splitlines()[-1].strip()})") from None
    if unexpected:
        raise FacesrError(f"init_from {source}: {len(unexpected)} weight(s) this model does not have, e.g. {unexpected[0]}")
    return sorted({".".join(k.split(".")[:2]) for k in missing})


def build_dataset(cfg: ExperimentConfig, model) -> HRFolderDataset:
    """The training data the model's ``needs`` ask for, made with its LR protocol."""
    needs = model.needs
    if needs.reference and not cfg.data.reference:
        raise FacesrError("a RefSR-VAE model trains with reference faces: set data.reference to 'same-identity' or 'self'")
    if cfg.data.frames != needs.frames:
        raise FacesrError(f"data.frames is {cfg.data.frames}, but the model takes {needs.frames} condition frame(s) (unet.cond_images)")
    return HRFolderDataset(cfg.data.train_dirs, model.lr_protocol, model.hr_size, cfg.data.patch_size, cfg.data.hflip,
                           augment=cfg.data, vectors=load_vector_tables(cfg, model), frames=needs.frames,
                           motion_px=cfg.data.motion_px, reference=cfg.data.reference,
                           vector_dropout=cfg.data.vector_dropout)


def check_run_dir(run_dir: Path) -> None:
    """A run folder must be a folder (or not exist yet), and so must the place it goes in."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FacesrError(f"{run_dir}: exists and is not a folder")
    for parent in run_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FacesrError(f"{run_dir}: {parent} exists and is not a folder")
            break


def restore(cfg: ExperimentConfig, run_dir: Path, resume: bool, model, optimizer, ema, generator, log) -> int:
    """The step to continue from: a checkpoint's (``resume``), else 0 with ``init_from``'s weights if set."""
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        log(f"{run_dir}: no checkpoint to resume from; starting at step 0")
    if ckpt is not None:
        state, ema_tensors = load_checkpoint(ckpt, model, optimizer, generator)
        model.carry_records(read_config(ckpt))
        ema.shadow_params = [ema_tensors[n].clone() for n, _ in model.named_parameters()]
        ema.optimization_step = state["ema_step"]
        log(f"resumed from {ckpt} at step {state['step']}")
        return state["step"]
    if not resume and latest_checkpoint(run_dir) is not None:
        raise FacesrError(f"{run_dir} already holds checkpoints: pass --resume, or choose another --out")
    if cfg.init_from:
        log(f"starting from the weights of {cfg.init_from}; new: {', '.join(init_weights(model, cfg.init_from)) or 'none'}")
    prepared = model.prepare_training()
    for line in prepared:
        log(line)
    if cfg.init_from or prepared:  # the EMA starts from the weights the run starts from
        ema.shadow_params = [p.detach().clone() for p in model.parameters()]
    return 0


LOG_HEADER = ["step", "loss", "lr", "steps_per_s", "elapsed_s"]


def truncate_log(path: Path, step: int) -> float:
    """Keep only the rows of log.csv ``path`` up to ``step`` (the checkpoint a run continues from), so a
    resumed run logs each step once; rewritten atomically. Returns the last kept row's elapsed_s (0 if none).
    Rows that do not parse (a line cut short by a kill) are dropped."""
    if not path.exists():
        return 0.0
    try:
        text = path.read_bytes().decode()  # as written: csv's \r\n line ends kept
    except (OSError, UnicodeDecodeError) as exc:
        raise FacesrError(f"{path}: cannot read the training log ({getattr(exc, 'strerror', None) or exc})") from None
    kept, elapsed = [], 0.0
    for row in list(csv.reader(text.splitlines()))[1:]:
        try:
            row_step, row_elapsed = int(row[0]), float(row[4])
        except (IndexError, ValueError):
            continue
        if len(row) == len(LOG_HEADER) and row_step <= step:
            kept.append(row)
            elapsed = row_elapsed
    out = io.StringIO()
    csv.writer(out).writerows([LOG_HEADER, *kept])
    if out.getvalue() != text:
        atomic_write_text(path, out.getvalue())
    return elapsed


class _Log:
    """log.csv of the main process: mean loss, learning rate and speed every ``log_every`` steps.
    Rows after ``step`` (the step the run starts from) are dropped first: a resumed run logs each step once,
    and elapsed_s goes on from the last kept row."""

    def __init__(self, run_dir: Path, main: bool, step: int = 0):
        self.offset = truncate_log(run_dir / "log.csv", step) if main else 0.0
        self.file = open(run_dir / "log.csv", "a", newline="") if main else None
        self.writer = csv.writer(self.file) if main else None
        if main and self.file.tell() == 0:
            self.writer.writerow(LOG_HEADER)
        self.losses, self.t_log, self.t0 = [], time.time(), time.time()

    def step(self, step: int, loss: float, lr: float, due: bool, bar) -> None:
        self.losses.append(loss)
        if self.file is None or not due:
            return
        now = time.time()
        rate = len(self.losses) / max(now - self.t_log, 1e-9)
        mean_loss = sum(self.losses) / len(self.losses)
        self.writer.writerow([step, f"{mean_loss:.6f}", f"{lr:.3e}", f"{rate:.3f}", f"{self.offset + now - self.t0:.1f}"])
        self.file.flush()
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.1e}")
        self.losses, self.t_log = [], now

    def close(self) -> None:
        if self.file:
            self.file.close()


def train(cfg: ExperimentConfig, run_dir, resume: bool = False, max_steps: int | None = None,
          progress: bool = True, log=print) -> dict:
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    if not cfg.data.train_dirs:
        raise FacesrError("no training data: set data.train_dirs in the config or pass --data")
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    o = cfg.optim
    total_steps = max_steps or o.max_steps
    accel = Accelerator(mixed_precision=o.mixed_precision, cpu=not torch.cuda.is_available())
    rank, world = accel.process_index, accel.num_processes

    torch.manual_seed(o.seed)  # initial weights are part of the experiment
    model = cfg.build_model()
    dataset = build_dataset(cfg, model)
    optimizer = torch.optim.Adam(param_groups(model, o.lr_scale), lr=o.lr, betas=tuple(o.betas))
    ema = EMAModel(model.parameters(), decay=o.ema_decay)
    generator = torch.Generator().manual_seed(o.seed * 1000 + rank)
    step = restore(cfg, run_dir, resume, model, optimizer, ema, generator, log)

    main = accel.is_main_process
    if main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FacesrError(f"{run_dir}: cannot make the run folder ({exc.strerror})") from None
        atomic_write_text(run_dir / "experiment.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    model, optimizer = accel.prepare(model, optimizer)
    raw = accel.unwrap_model(model)
    ema.to(accel.device)
    sampler = EpochSampler(len(dataset), o.seed)
    logger = _Log(run_dir, main, step)

    def checkpoint():
        accel.wait_for_everyone()
        if main:
            save_checkpoint(run_dir, step, raw, ema_state_dict(raw, ema), optimizer, {"ema_step": ema.optimization_step},
                            generator, cfg.to_dict(), o.keep_checkpoints)

    bar = tqdm(total=total_steps, initial=step, disable=not (progress and main), unit="step", dynamic_ncols=True)
    stopped_by = None
    with _StopFlag() as stop:
        while step < total_steps:
            first = step * o.batch_size * world + rank * o.batch_size
            batch = dataset.batch([sampler(first + j) for j in range(o.batch_size)], generator)
            lr = learning_rate(o, step)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            with accel.autocast():
                loss = model({k: v.to(accel.device) for k, v in batch.items()}, generator)
            if not torch.isfinite(loss):
                raise FacesrError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            accel.backward(loss)
            if o.grad_clip > 0:
                accel.clip_grad_norm_(model.parameters(), o.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            ema.step(raw.parameters())
            step += 1
            bar.update(1)
            logger.step(step, loss.item(), lr, step % o.log_every == 0 or step == total_steps, bar)
            saved = step % o.checkpoint_every == 0 or step == total_steps
            if saved:
                checkpoint()
            # a signal stops the run (the CLI exits non-zero) unless this was its last step anyway
            if step < total_steps and _any_process(accel, stop.signal is not None):
                stopped_by = stop.signal or "a signal to another process"
                if not saved:
                    checkpoint()
                break
    bar.close()
    logger.close()
    accel.end_training()
    return {"step": step, "stopped_by": stopped_by, "checkpoint": str(latest_checkpoint(run_dir)),
            "seconds": time.time() - logger.t0}
