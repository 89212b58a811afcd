"""torchrun --nproc_per_node 2 on CPU splits upscale's and restore's inputs across the processes (each
writes its own outputs and manifest), and a later single-process run keeps all of them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from facesr.cli import main

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "facesr.cli"]
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "FACESR_NUM_THREADS": "1"}


def _manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("facesr-run.rank*.json"))]


def test_upscale_splits_the_inputs_across_two_processes(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(src / f"f{i}.png")
    out = tmp_path / "out"
    run = subprocess.run([*TORCHRUN, "upscale", str(src), "-o", str(out), "--model", "msrresnet-x8",
                          "--precision", "fp32"], env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    parts = [set(m["outputs"]) for m in _manifests(out)]
    assert len(parts) == 2 and all(len(p) == 3 for p in parts) and not parts[0] & parts[1]
    assert {Path(p).name for p in parts[0] | parts[1]} == {f"f{i}.png" for i in range(6)}
    assert main(["upscale", str(src), "-o", str(out), "--model", "msrresnet-x8", "--precision", "fp32"]) == 0
    assert "0 input(s) to restore, 6 done before" in capsys.readouterr().out


def test_restore_splits_the_photos_across_two_processes(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_restore import scene

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(scene(8)[0]).save(src / "a.png")
    for name in ("b", "c", "d"):
        shutil.copy(src / "a.png", src / f"{name}.png")
    out = tmp_path / "out"
    run = subprocess.run([*TORCHRUN, "restore", str(src), "-o", str(out)], env=ENV, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    parts = [set(m["outputs"]) for m in _manifests(out)]
    assert len(parts) == 2 and all(len(p) == 2 for p in parts) and not parts[0] & parts[1]
    assert all((out / f"{n}.json").is_file() for n in "abcd")
    assert main(["restore", str(src), "-o", str(out)]) == 0
    assert "4 kept from before" in capsys.readouterr().out
