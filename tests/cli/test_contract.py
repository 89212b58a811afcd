"""The CLI's side of the engine: conditions a model lacks are named by their flag, inputs far larger
than a face chip are refused before any work (the other images are still written), and --help and
--version start without torch."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facesr.cli import COMMANDS, main


def _err_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line]
    assert len(lines) == 1, lines
    return lines[0]


def _chip(path, size):
    rng = np.random.default_rng(size)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_a_missing_reference_is_named_by_its_flag(tmp_path, capsys):
    chip = _chip(tmp_path / "probe.png", 16)
    assert main(["upscale", str(chip), "-o", str(tmp_path / "out"), "--model", "refsr-vae-x8"]) == 2
    line = _err_line(capsys)
    assert "give --ref" in line, line


def test_a_condition_the_model_does_not_take_is_named_by_its_flag(tmp_path, capsys, sample_faces):
    chip = _chip(tmp_path / "probe.png", 16)
    ref = next(sample_faces.glob("*.png"))
    assert main(["upscale", str(chip), "-o", str(tmp_path / "out"), "--model", "msrresnet-x8", "--ref", str(ref)]) == 2
    assert _err_line(capsys) == ("facesr upscale: error: --ref: msrresnet-x8 takes no reference photo "
                                 "(only RefSR-VAE models do)")


def test_an_input_far_larger_than_a_chip_is_refused_and_the_others_are_written(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _chip(src / "chip.png", 16)
    _chip(src / "photo.png", 128)  # an HR chip given to an x8 model: 64x the work of a 16-px face
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--model", "msrresnet-x8"]) == 1
    line, summary = capsys.readouterr().err.strip().splitlines()
    assert "photo.png: " in line and "128x128" in line and "limit 32x32" in line, line
    assert "1 input(s) failed" in summary
    assert [p.name for p in out.glob("*.png")] == ["chip.png"]
    manifest = json.loads((out / "facesr-run.json").read_text())
    assert len(manifest["failures"]) == 1 and len(manifest["outputs"]) == 1


def test_every_command_has_a_help_line():
    assert {"upscale", "evaluate", "train", "benchmark", "compare", "models"} <= set(COMMANDS)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["train", "--help"], ["models"]])
def test_help_and_version_import_no_torch(args):
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "facesr.cli", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-500:]
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "facesr.cli" in imported  # the control: importtime lists what was imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}, "torch imported"
