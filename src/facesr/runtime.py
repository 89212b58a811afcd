"""Safe CPU defaults, applied before torch starts its thread pool.

On a small machine PyTorch's default of one OpenMP thread per core stalls badly
when another process holds a core; facesr therefore uses a passive wait policy
and leaves one core free unless the user sets FACESR_NUM_THREADS.
"""

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported late, after the thread settings
    import torch


def default_num_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores - 1, 8))


def configure_cpu() -> int:
    """Set thread count and OpenMP wait policy; returns the thread count used. Before torch is
    imported this only sets the environment torch reads when it starts (so commands that never need
    torch, such as ``facesr models``, do not load it)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    requested = os.environ.get("FACESR_NUM_THREADS")
    threads = int(requested) if requested else default_num_threads()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    return threads


def resolve_device(name: str | None) -> "torch.device":
    import torch

    from facesr.errors import FacesrError

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacesrError(f"device {name}: no CUDA device is available on this machine")
    return torch.device(name)


def autocast(device: "torch.device", precision: str):
    """Autocast context for 'bf16', 'fp16' or 'fp32' (no-op)."""
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype)


class Share:
    """This process's share of a run started by torchrun / accelerate launch (``WORLD_SIZE`` > 1):
    inputs ``items[rank::world]``, through accelerate's PartialState (``cpu=True`` without CUDA, else it
    quietly runs a single process). One process: everything, no process group."""

    def __init__(self):
        self.rank, self.world, self.state = 0, 1, None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            self.state = PartialState(cpu=not torch.cuda.is_available())
            self.rank, self.world = self.state.process_index, self.state.num_processes

    def of(self, items: list) -> list:
        return list(items)[self.rank :: self.world]

    def device(self, name: str | None):
        """A process's device: its own GPU under a multi-GPU launch, else ``name``."""
        if self.state is not None and self.state.device.type == "cuda" and name in (None, "auto", "cuda"):
            return self.state.device
        return resolve_device(name)

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def manifest_name(self, base: str = "facesr-run.json") -> str:
        """Each process writes its own manifest: facesr-run.json, or facesr-run.rank1.json ..."""
        return base if self.world == 1 else base.replace(".json", f".rank{self.rank}.json")
