"""A batch that cannot fit is refused before any network runs, with the batch size that would fit."""

import os
import subprocess
import sys

import pytest
import torch

import facesr
from facesr.engine import run
from facesr.errors import FacesrError


MEASURE = """
import torch, facesr
from facesr.engine.options import SamplingOptions

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))

model = facesr.load_model("{name}", device="cpu")
lr = torch.rand(8, 3, model.lr_size, model.lr_size)
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from the current size
model.super_resolve(lr, None, SamplingOptions(steps=1, precision="fp32"), [torch.Generator() for _ in range(8)])
print(status("VmHWM:") - before, 8 * model.memory_per_face(16, 16))
"""


@pytest.mark.parametrize("name", ["sr3-x8", "msrresnet-x8"])
def test_the_estimate_covers_what_a_batch_really_takes(name):
    """In a fresh process, the peak memory an 8-face batch adds is under the estimate, and not far under."""
    out = subprocess.run([sys.executable, "-c", MEASURE.format(name=name)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    grew, estimate = map(int, out.stdout.split())
    assert 0 < grew < estimate < 4 * grew, (grew, estimate)


def test_a_batch_beyond_free_memory_is_refused(monkeypatch):
    model = facesr.load_model("msrresnet-x8", device="cpu")
    per_face = model.memory_per_face(16, 16)
    monkeypatch.setattr(run, "available_memory", lambda device: 10 * per_face)
    run.check_memory(model, 10, 16, 16, "cpu")
    with pytest.raises(FacesrError, match=r"a batch of 11 16x16 face\(s\) needs about .* use a batch size of 10 or less"):
        run.check_memory(model, 11, 16, 16, "cpu")


def test_the_api_refuses_before_running(monkeypatch):
    model = facesr.load_model("msrresnet-x8", device="cpu")
    monkeypatch.setattr(run, "available_memory", lambda device: model.memory_per_face(16, 16))
    calls = []
    monkeypatch.setattr(model, "super_resolve", lambda *a, **k: calls.append(1))
    lr = torch.zeros(16, 16, 3, dtype=torch.uint8).numpy()
    with pytest.raises(FacesrError, match="use a batch size of 1"):
        facesr.upscale([lr, lr], model=model)
    assert not calls
