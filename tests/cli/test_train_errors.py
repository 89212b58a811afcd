"""facesr train / export: every user mistake is one line on stderr and exit 2, never a traceback; an
interrupted run saves its checkpoint, says how to resume, and exits non-zero."""

import json
import shlex
import signal

import pytest

from facesr.cli import main

def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def write_config(path, cfg: dict) -> str:
    path.write_text(json.dumps(cfg))
    return str(path)


def tiny(tiny_config) -> dict:
    return json.loads(tiny_config.read_text())


def run_error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    captured = capsys.readouterr()
    return one_line(captured.err)


@pytest.mark.parametrize("section, key, value, problem", [
    ("data", "hflip", "yes", 'data.hflip: expected true or false, got "yes"'),
    ("optim", "batch_size", True, "optim.batch_size: expected an integer, got true"),
    ("optim", "batch_size", 2.5, "optim.batch_size: expected an integer, got 2.5"),
    ("optim", "batch_size", 0, "optim.batch_size: must be at least 1, got 0"),
    ("optim", "lr", "fast", 'optim.lr: expected a number, got "fast"'),
    ("optim", "lr", 0, "optim.lr: must be a positive number, got 0.0"),
    ("optim", "max_steps", 0, "optim.max_steps: must be at least 1, got 0"),
    ("optim", "log_every", 0, "optim.log_every: must be at least 1, got 0"),
])
def test_bad_config_value_is_one_line(tiny_config, tmp_path, capsys, section, key, value, problem):
    cfg = tiny(tiny_config)
    cfg[section][key] = value
    path = write_config(tmp_path / "x.json", cfg)
    line = run_error(capsys, ["train", path, "--out", str(tmp_path / "run"), "--no-progress"])
    assert line == f"facesr train: error: {path}: {problem}"
    assert not (tmp_path / "run").exists()


def test_nan_learning_rate_is_one_line(tiny_config, tmp_path, capsys):
    path = tmp_path / "x.json"
    path.write_text(tiny_config.read_text().replace('"lr": 0.001', '"lr": NaN'))
    assert "NaN" in path.read_text()
    line = run_error(capsys, ["train", str(path), "--out", str(tmp_path / "run")])
    assert line == f"facesr train: error: {path}: optim.lr: expected a finite number, got NaN"


@pytest.mark.parametrize("net, problem", [
    ({"num_feat": 0}, "model.net.num_feat: must be an integer of at least 1, got 0"),
    ({"num_blocks": -1}, "model.net.num_blocks: must be an integer of at least 0, got -1"),
])
def test_bad_regression_width_is_one_line(tiny_config, tmp_path, capsys, net, problem):
    cfg = tiny(tiny_config)
    cfg.update(method="regression", model={"net": {"arch": "msrresnet", "num_feat": 8, "num_blocks": 1, **net},
                                           "scale": 8, "hr_size": 128})
    path = write_config(tmp_path / "r.json", cfg)
    line = run_error(capsys, ["train", path, "--out", str(tmp_path / "run")])
    assert line == f"facesr train: error: {path}: {problem}"


def test_max_steps_flag_must_be_positive(tiny_config, tmp_path, capsys):
    line = run_error(capsys, ["train", str(tiny_config), "--out", str(tmp_path / "run"), "--max-steps", "0"])
    assert line == "facesr train: error: --max-steps must be at least 1, got 0"


def test_out_is_an_existing_file(tiny_config, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    line = run_error(capsys, ["train", str(tiny_config), "--out", str(out), "--no-progress"])
    assert line == f"facesr train: error: {out}: exists and is not a folder"
    assert out.read_text() == "keep me"
    line = run_error(capsys, ["train", str(tiny_config), "--out", str(out), "--resume", "--no-progress"])
    assert line == f"facesr train: error: {out}: exists and is not a folder"


def test_out_inside_a_file(tiny_config, tmp_path, capsys):
    parent = tmp_path / "notes.txt"
    parent.write_text("")
    out = parent / "run"
    line = run_error(capsys, ["train", str(tiny_config), "--out", str(out), "--no-progress"])
    assert line == f"facesr train: error: {out}: {parent} exists and is not a folder"


def test_resume_with_a_broken_checkpoint_pointer(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text("step-00000002\n")
    line = run_error(capsys, ["train", str(tiny_config), "--out", str(run), "--resume", "--no-progress"])
    assert line == (f"facesr train: error: {run / 'checkpoints' / 'latest'}: names step-00000002, "
                    "which is missing or incomplete")


@pytest.mark.slow  # trains a tiny model
def test_resume_with_damaged_state_or_another_model(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(run), "--max-steps", "2", "--no-progress"]) == 0
    ckpt = run / "checkpoints" / "step-00000002"
    # another model width: the checkpoint's weights do not fit
    cfg = tiny(tiny_config)
    cfg["model"]["unet"]["block_out_channels"] = [64, 64]
    other = write_config(tmp_path / "other.json", cfg)
    line = run_error(capsys, ["train", other, "--out", str(run), "--resume", "--no-progress"])
    assert line == f"facesr train: error: {ckpt}: checkpoint does not match the model config (was the config changed?)"
    # state.json cut short
    (ckpt / "state.json").write_text('{"step": 2, "param_gr')
    line = run_error(capsys, ["train", str(tiny_config), "--out", str(run), "--resume", "--no-progress"])
    assert line == (f"facesr train: error: {ckpt / 'state.json'}: damaged checkpoint state "
                    "(not the JSON a checkpoint writes)")


@pytest.mark.slow  # trains a tiny model
def test_resume_of_a_folder_without_checkpoints_starts_at_zero(tiny_config, tmp_path, capsys):
    run = tmp_path / "somewhere"
    run.mkdir()
    (run / "unrelated.txt").write_text("x")
    assert main(["train", str(tiny_config), "--out", str(run), "--resume", "--max-steps", "1", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "no checkpoint to resume from; starting at step 0" in captured.out and "Traceback" not in captured.err
    assert (run / "checkpoints" / "step-00000001").is_dir() and (run / "unrelated.txt").read_text() == "x"


def send_signal_during_step(monkeypatch, signum, at_step: int):
    """Deliver ``signum`` to this process while the loop computes the learning rate of step ``at_step``."""
    import facesr.train.loop as loop

    real = loop.learning_rate

    def learning_rate(o, step):
        if step == at_step:
            signal.raise_signal(signum)
        return real(o, step)

    monkeypatch.setattr(loop, "learning_rate", learning_rate)


def log_steps(run) -> list[int]:
    return [int(line.split(",")[0]) for line in (run / "log.csv").read_text().splitlines()[1:]]


@pytest.mark.slow  # trains a tiny model
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_exits_non_zero(tiny_config, tmp_path, capsys, monkeypatch, signum, code):
    before = signal.getsignal(signum)
    run = tmp_path / "run"
    send_signal_during_step(monkeypatch, signum, at_step=2)  # the third update (0-based)
    capsys.readouterr()
    assert main(["train", str(tiny_config), "--out", str(run), "--no-progress"]) == code
    assert signal.getsignal(signum) is before  # the loop's handler is gone again
    line = one_line(capsys.readouterr().err)
    ckpt = run / "checkpoints" / "step-00000003"
    name = signal.Signals(signum).name
    resume = f"facesr train {tiny_config} --out {run} --resume"
    assert line == f"facesr train: stopped by {name} at step 3; checkpoint saved in {ckpt}; continue with: {resume}"
    assert json.loads((ckpt / "state.json").read_text())["step"] == 3
    assert (run / "checkpoints" / "latest").read_text().strip() == ckpt.name

    # the printed command continues the run to its end; each step is logged once
    monkeypatch.undo()
    words = shlex.split(line.split("continue with: ", 1)[1])
    assert words[:2] == ["facesr", "train"]
    assert main(words[1:] + ["--no-progress"]) == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    assert log_steps(run) == [1, 2, 3, 4]


@pytest.mark.slow  # trains a tiny model
def test_resume_command_keeps_data_and_max_steps(tiny_config, tmp_path, capsys, monkeypatch, sample_faces):
    run = tmp_path / "my run"
    send_signal_during_step(monkeypatch, signal.SIGINT, at_step=0)
    assert main(["train", str(tiny_config), "--data", str(sample_faces), "--out", str(run), "--max-steps", "3",
                 "--no-progress"]) == 130
    line = one_line(capsys.readouterr().err)
    words = shlex.split(line.split("continue with: ", 1)[1])
    assert words == ["facesr", "train", str(tiny_config), "--data", str(sample_faces), "--out", str(run), "--resume",
                     "--max-steps", "3"]


@pytest.mark.slow  # trains a tiny model
def test_export_errors_are_one_line(tiny_config, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_config), "--out", str(run), "--max-steps", "1", "--no-progress"]) == 0
    ckpt = run / "checkpoints" / "step-00000001"
    out = tmp_path / "model.txt"
    out.write_text("keep")
    assert run_error(capsys, ["export", str(ckpt), str(out)]) == f"facesr export: error: {out}: exists and is not a folder"
    assert out.read_text() == "keep"
    line = run_error(capsys, ["export", str(ckpt), str(ckpt)])
    assert line == f"facesr export: error: {ckpt}: is the checkpoint itself; export to another folder"
    assert (ckpt / "model.safetensors").is_file()
    line = run_error(capsys, ["export", str(ckpt), str(tmp_path / "m1"), "--draw-steps", "1"])
    assert line == "facesr export: error: --draw-steps must be 2 or more (one step estimates the mean), got 1"
    assert main(["export", str(ckpt), str(tmp_path / "m8"), "--steps", "1", "--samples", "4", "--draw-steps", "8"]) == 0
    sampling = json.loads((tmp_path / "m8" / "config.json").read_text())["sampling"]
    assert sampling == {"steps": 1, "samples": 4, "draws": {"steps": 8}}
    (ckpt / "state.json").write_text("{cut")
    line = run_error(capsys, ["export", str(ckpt), str(tmp_path / "m")])
    assert line == f"facesr export: error: {ckpt / 'state.json'}: damaged checkpoint state (not valid JSON)"


@pytest.mark.slow  # trains a tiny model
def test_signal_during_the_last_step_finishes_normally(tiny_config, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    send_signal_during_step(monkeypatch, signal.SIGINT, at_step=3)  # the fourth and last update
    assert main(["train", str(tiny_config), "--out", str(run), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "stopped by" not in captured.err and "trained to step 4" in captured.out
    assert log_steps(run) == [1, 2, 3, 4]
