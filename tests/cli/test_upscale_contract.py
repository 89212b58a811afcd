"""upscale's side of the error contract: outputs stream to disk, a killed run resumes without redoing
finished faces, bad inputs and options are named in one line before work (the other inputs are still
written), and an output that restores nothing is reported instead of written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facesr
from facesr.cli import main
from facesr.io.images import TEMP_PREFIX, read_image
from facesr.methods.hub import load_model

FAST = ["--model", "msrresnet-x8", "--precision", "fp32"]


def _faces(folder: Path, n: int, size: int = 16) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        paths.append(folder / f"f{i:03d}.png")
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.strip().splitlines() if line]


def _manifest(out: Path) -> dict:
    return json.loads((out / "facesr-run.json").read_text())


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_one(tmp_path):
    src = tmp_path / "in"
    paths = _faces(src, 60)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["upscale", str(src), "-o", str(whole), *FAST, "--batch-size", "1"]) == 0
    cmd = [sys.executable, "-m", "facesr.cli", "upscale", str(src), "-o", str(killed), *FAST, "--batch-size", "1"]
    env = _kill_when(cmd, lambda: len(_manifest(killed)["outputs"]) >= 3)
    listed = _manifest(killed)["outputs"]
    assert 3 <= len(listed) < len(paths) and not _manifest(killed)["complete"]
    for out in listed:  # what the manifest lists is complete
        assert read_image(out).shape == (128, 128, 3)
    (killed / f"{TEMP_PREFIX}f999.abc.png").write_bytes(b"")  # what a kill during a write leaves
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(paths) - len(listed)} input(s) to restore, {len(listed)} done before" in again.stdout
    assert not list(killed.glob(f"{TEMP_PREFIX}*"))
    assert _manifest(killed)["complete"] and len(_manifest(killed)["outputs"]) == len(paths)
    for p in paths:
        assert (killed / p.name).read_bytes() == (whole / p.name).read_bytes()


def test_other_settings_in_the_folder_need_overwrite(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 2)
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), *FAST]) == 0
    assert main(["upscale", str(src), "-o", str(out), *FAST, "--seed", "3"]) == 2
    (line,) = _err_lines(capsys)
    assert "2 output(s) already there" in line and "other settings (seed)" in line and "--overwrite" in line
    assert main(["upscale", str(src), "-o", str(out), *FAST, "--seed", "3", "--overwrite"]) == 0
    assert _manifest(out)["options"]["seed"] == 3 and len(_manifest(out)["outputs"]) == 2


def test_a_projection_is_a_setting_and_old_manifests_had_none(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 2)
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), *FAST]) == 0
    manifest = _manifest(out)
    del manifest["options"]["project"]  # a manifest written before the option existed
    (out / "facesr-run.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["upscale", str(src), "-o", str(out), *FAST]) == 0
    assert "0 input(s) to restore, 2 done before" in capsys.readouterr().out
    assert main(["upscale", str(src), "-o", str(out), *FAST, "--project", "3"]) == 2
    (line,) = _err_lines(capsys)
    assert "other settings (project)" in line


def test_an_uncertainty_map_is_drawn_and_one_from_one_step_samples_is_flagged(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    args = ["--model", "sr3-x8-res", "--precision", "fp32", "--samples", "2", "--uncertainty"]
    assert main(["upscale", str(src), "-o", str(tmp_path / "a"), *args]) == 0  # the recipe's draws: 8 steps
    out = capsys.readouterr().out
    assert "understates" not in out and _manifest(tmp_path / "a")["options"]["steps"] == 8
    assert main(["upscale", str(src), "-o", str(tmp_path / "b"), *args, "--steps", "1"]) == 0  # mean estimates
    assert "understates the uncertainty" in capsys.readouterr().out
    # a model whose samples are one image: the map would be blank, read as certain; refused before any work
    assert main(["upscale", str(src), "-o", str(tmp_path / "c"), "--model", "msrresnet-x8", "--samples", "2",
                 "--uncertainty"]) == 2
    (line,) = _err_lines(capsys)
    assert "msrresnet-x8 draws nothing at random" in line and not (tmp_path / "c").exists()


def test_other_references_in_the_folder_need_overwrite(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 2)
    ref_a, ref_b = sorted((Path(facesr.__file__).parent / "samples" / "faces").glob("*.png"))[:2]
    out = tmp_path / "out"
    refsr = ["--model", "refsr-vae-x8", "--precision", "fp32"]
    assert main(["upscale", str(src), "-o", str(out), *refsr, "--ref", str(ref_a)]) == 0
    assert _manifest(out)["conditions"]["ref"] == str(ref_a.resolve())
    # the refinement toward the reference's identity is part of the cost line (the bundled config: 10 steps)
    steps = load_model("refsr-vae-x8", "cpu").cfg.identity_refine.steps
    assert steps and (f"+ up to {steps} forward and backward pass(es) of the dlib face network toward "
                      "the reference's identity)") in capsys.readouterr().out
    assert _manifest(out)["identity_passes_per_face_at_most"] == steps
    assert main(["upscale", str(src), "-o", str(out), *refsr, "--ref", str(ref_a)]) == 0
    assert "0 input(s) to restore, 2 done before" in capsys.readouterr().out
    assert main(["upscale", str(src), "-o", str(out), *refsr, "--ref", str(ref_b)]) == 2
    (line,) = _err_lines(capsys)
    assert "2 output(s) already there" in line and "other settings (refs/ref)" in line


def test_a_file_not_from_facesr_is_not_replaced(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f000.png").write_bytes(b"mine")
    assert main(["upscale", str(src), "-o", str(out), *FAST]) == 2
    assert "not listed as finished" in _err_lines(capsys)[0] and (out / "f000.png").read_bytes() == b"mine"


def test_missing_paths_and_empty_folders_fail_alone(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 2)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    code = main(["upscale", str(src), str(tmp_path / "nope.png"), str(tmp_path / "empty"), "-o", str(out), *FAST])
    lines = _err_lines(capsys)
    assert code == 1
    assert any(l.endswith("nope.png: no such file or folder") for l in lines)
    assert any("empty: folder holds no images" in l for l in lines)
    assert len(_manifest(out)["outputs"]) == 2 and len(_manifest(out)["failures"]) == 2


@pytest.mark.parametrize("size, problem", [(1, "1x1 input is too small"), (3, "3x3 input is too small"),
                                           (33, "33x33 input is far larger")])
def test_sizes_no_model_can_restore_are_named(size, problem, tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    Image.new("RGB", (size, size)).save(src / "odd.png")
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), *FAST]) == 1
    line = _err_lines(capsys)[0]
    assert "odd.png: " in line and problem in line, line
    assert [Path(p).name for p in _manifest(out)["outputs"]] == ["f000.png"]


def test_noise_from_too_few_steps_is_reported_not_written(tmp_path, capsys):
    src = tmp_path / "in"
    face = read_image(next((Path(facesr.__file__).parent / "samples" / "faces").glob("*.png")))
    src.mkdir()
    Image.fromarray(face).resize((16, 16), Image.BICUBIC).save(src / "face.png")
    out = tmp_path / "out"
    code = main(["upscale", str(src), "-o", str(out), "--model", "sr3-x8", "--sampler", "heun", "--steps", "2",
                 "--strength", "1", "--samples", "1", "--precision", "fp32"])
    line = _err_lines(capsys)[0]
    assert code == 1 and "face.png: the output is not a restoration" in line and "warm start" in line
    assert not (out / "face.png").exists()


@pytest.mark.parametrize("flags, problem", [
    (["--eta", "5"], "eta must be in [0, 1]"),
    (["--eta", "-0.1"], "eta must be in [0, 1]"),
    (["--steps", "0"], "steps must be at least 1"),
    (["--samples", "0"], "samples must be at least 1"),
    (["--batch-size", "0"], "batch_size must be at least 1"),
    (["--strength", "0"], "strength must be in (0, 1]"),
    (["--strength", "nan"], "strength must be a finite number"),
    (["--snr", "-1", "--sampler", "pc"], "snr and corrector_steps must be 0 or more"),
    (["--snr", "0.2"], "snr is an option of the pc sampler, not of ddim"),
    (["--sampler", "heun", "--eta", "0.5"], "eta is an option of the ddim sampler, not of heun"),
    (["--init", "msrresnet-x8", "--strength", "1"], "init msrresnet-x8 warm-starts only with strength < 1"),
    (["--guidance", "1"], "guidance is for FASR models and RefSR-VAE with ref_identity"),
    (["--identity-scale", "0.5"], "identity_scale weighs a FASR model's identity vector; sr3-x8 takes none"),
    (["--identity-scale", "-1"], "identity_scale must be 0 or more"),
])
def test_bad_options_are_refused_before_any_work(flags, problem, tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--model", "sr3-x8", *flags]) == 2
    (line,) = _err_lines(capsys)
    assert problem in line, line
    assert not out.exists()


def test_the_cost_is_printed_before_the_work(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 2)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", "sr3-x8", "--steps", "3",
                 "--samples", "2", "--strength", "0.5", "--init", "msrresnet-x8", "--precision", "fp32"]) == 0
    note, cost = capsys.readouterr().out.splitlines()[:2]
    assert note == "from sr3-x8's recipe: --sampler ddim (give them to change)"
    assert cost == ("2 input(s) to restore; 6 network evaluation(s) per face "
                    "(ddim x 3 steps x 2 samples strength 0.5 from msrresnet-x8), 12 in all")
    assert main(["upscale", str(src), "-o", str(tmp_path / "reg"), "--model", "msrresnet-x8", "--samples", "2",
                 "--flip"]) == 0
    cost = capsys.readouterr().out.splitlines()[0]
    assert cost == ("2 input(s) to restore; 2 network evaluation(s) per face "
                    "(one forward pass x 2 samples, every second mirrored), 4 in all")
    ref = next((Path(facesr.__file__).parent / "samples" / "faces").glob("*.png"))
    assert main(["upscale", str(src), "-o", str(tmp_path / "fasr"), "--model", "fasr-x8", "--refs", str(ref),
                 "--identity-scale", "0.5", "--steps", "1", "--samples", "1", "--strength", "0.5",
                 "--precision", "fp32"]) == 0
    cost = capsys.readouterr().out.splitlines()[1]
    assert cost == ("2 input(s) to restore; 1 network evaluation(s) per face "
                    "(ddim x 1 steps identity scale 0.5 strength 0.5), 2 in all")


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    (tmp_path / "out").write_text("x")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out"), *FAST]) == 2
    assert _err_lines(capsys) == [f"facesr upscale: error: {tmp_path / 'out'}: is a file, not a folder (the output folder)"]


def test_a_video_without_frames_says_so(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    assert main(["upscale", str(video), "-o", str(tmp_path / "out"), *FAST]) == 1
    assert "clip.mp4: is a video, not an image: restore its frames with --frames K" in _err_lines(capsys)[0]


@pytest.mark.parametrize("size", [1, 2000])
def test_a_reference_that_is_no_face_chip_is_left_out(size, tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    refs = tmp_path / "refs"
    good = read_image(next((Path(facesr.__file__).parent / "samples" / "faces").glob("*.png")))
    refs.mkdir()
    Image.fromarray(good).save(refs / "good.png")
    Image.new("RGB", (size, size)).save(refs / "odd.png")
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--model", "fasr-x8", "--refs", str(refs), "--steps", "2",
                 "--strength", "0.5", "--samples", "1", "--precision", "fp32"]) == 1
    line = _err_lines(capsys)[0]
    assert "odd.png: a " in line and "reference is not a face chip" in line, line
    manifest = _manifest(out)
    assert len(manifest["outputs"]) == 1 and any("odd.png" in f for f in manifest["failures"])


def test_the_reference_gate_names_each_input_run_without_its_refs(tmp_path, capsys):
    """--refs-gate 1: no face reaches it, so each input runs on the null identity (the pixels of a run without
    --refs), is named in one line and listed in the manifest; a gate that is no cosine is one error line."""
    src = tmp_path / "in"
    paths = _faces(src, 2)
    ref = next((Path(facesr.__file__).parent / "samples" / "faces").glob("*.png"))
    fast = ["--model", "fasr-x8", "--steps", "2", "--strength", "0.5", "--samples", "1", "--precision", "fp32"]
    assert main(["upscale", str(src), "-o", str(tmp_path / "g"), *fast, "--refs", str(ref), "--refs-gate", "1"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "references not used" in line]
    assert sorted(said) == sorted(f"{p}: references not used (the face does not match them; null identity instead): "
                                  f"score {_manifest(tmp_path / 'g')['refs_gate']['scores'][str(p)]:.3f} against the gate 1.000"
                                  for p in paths)
    gate = _manifest(tmp_path / "g")["refs_gate"]
    assert gate["threshold"] == 1.0 and sorted(gate["not_used"]) == sorted(map(str, paths))
    assert main(["upscale", str(src), "-o", str(tmp_path / "n"), *fast]) == 0
    for p in paths:
        assert np.array_equal(read_image(tmp_path / "g" / f"{p.stem}.png"), read_image(tmp_path / "n" / f"{p.stem}.png"))
    assert main(["upscale", str(src), "-o", str(tmp_path / "o"), *fast, "--refs", str(ref), "--refs-gate", "off"]) == 0
    assert _manifest(tmp_path / "o")["refs_gate"]["not_used"] == []
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # argparse: usage, then the one error line
        main(["upscale", str(src), "-o", str(tmp_path / "b"), *fast, "--refs", str(ref), "--refs-gate", "high"])
    assert exit_.value.code == 2
    assert _err_lines(capsys)[-1:] == ["facesr upscale: error: argument --refs-gate: must be a cosine in [-1, 1] or 'off', got 'high'"]


def test_a_refsr_model_that_reads_who_the_reference_is_passes_the_gate_too(tmp_path, capsys):
    """A RefSR-VAE with ref_identity: --refs-gate 1 refuses its reference's identity for every input (named in one
    line, listed in the manifest) and keeps its pixels: the outputs of the same weights without the identity path."""
    import torch

    from facesr.methods.refsr_vae import RefSRVAE, RefSRVAEConfig

    widths = dict(trunk_channels=(4, 8, 8, 8), skip_channels=(8, 4), encoder_channels=(8, 4, 4), encoder_fc=(16, 16),
                  latent=8, noise_fc=8, decoder_fc=(16, 16), decoder_map_channels=4, upproj_channels=4)
    cfg = dict(variant="refsr", scale=4, hr_size=32, fusion="gated", **widths)
    torch.manual_seed(0)
    with_id = RefSRVAE(RefSRVAEConfig(**cfg, ref_identity=True))
    with torch.no_grad():
        with_id.ref_film[2].weight.normal_(0, 0.05)
    plain = RefSRVAE(RefSRVAEConfig(**cfg))
    plain.load_state_dict({k: v for k, v in with_id.state_dict().items() if not k.startswith("ref_film")})
    with_id.save_pretrained(tmp_path / "with_id")
    plain.save_pretrained(tmp_path / "plain")
    src = tmp_path / "in"
    paths = _faces(src, 2, size=8)
    ref = _faces(tmp_path / "ref", 1, size=32)[0]
    fast = ["--ref", str(ref), "--precision", "fp32"]
    assert main(["upscale", str(src), "-o", str(tmp_path / "g"), "--model", str(tmp_path / "with_id"), *fast,
                 "--refs-gate", "1"]) == 0
    gate = _manifest(tmp_path / "g")["refs_gate"]
    said = [line for line in capsys.readouterr().out.splitlines() if "identity not used" in line]
    assert sorted(said) == sorted(f"{p}: the reference's identity not used (the face does not match it; its pixels only): "
                                  f"score {gate['scores'][str(p)]:.3f} against the gate 1.000" for p in paths)
    assert sorted(gate["not_used"]) == sorted(map(str, paths))
    assert main(["upscale", str(src), "-o", str(tmp_path / "p"), "--model", str(tmp_path / "plain"), *fast]) == 0
    assert "refs_gate" not in _manifest(tmp_path / "p")  # nothing to gate: the pixels carry no identity vector
    assert main(["upscale", str(src), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "with_id"), *fast,
                 "--refs-gate", "off"]) == 0
    assert _manifest(tmp_path / "o")["refs_gate"]["not_used"] == []
    for p in paths:
        gated, without = read_image(tmp_path / "g" / f"{p.stem}.png"), read_image(tmp_path / "p" / f"{p.stem}.png")
        assert np.array_equal(gated, without)
        assert not np.array_equal(read_image(tmp_path / "o" / f"{p.stem}.png"), without)


def test_the_api_and_the_cli_give_the_same_pixels_whatever_the_spelling(tmp_path, monkeypatch):
    src = tmp_path / "in"
    (path,) = _faces(src, 1)
    out = tmp_path / "out"
    assert main(["upscale", str(path), "-o", str(out), "--model", "sr3-x8", "--steps", "3", "--strength", "0.5",
                 "--samples", "1", "--precision", "fp32"]) == 0
    monkeypatch.chdir(tmp_path)
    for spelling in (path, "in/f000.png", "./in/../in/f000.png"):
        (api,) = facesr.upscale([spelling], model="sr3-x8", steps=3, strength=0.5, samples=1, precision="fp32")
        assert np.array_equal(api, read_image(out / "f000.png")), spelling


def test_the_demo_writes_its_manifest(tmp_path):
    assert main(["demo", "-o", str(tmp_path / "demo"), *FAST]) == 0
    manifest = _manifest(tmp_path / "demo")
    assert manifest["complete"] and len(manifest["outputs"]) == 6
    assert all(Path(p).is_file() for p in manifest["outputs"])


def _kill_when(cmd, ready, env=None):
    """Start ``cmd``, SIGKILL it once ``ready()`` holds; fails if it ends first."""
    # the same thread count as this process: a different one rounds some float sums differently
    env = {**os.environ, "FACESR_NUM_THREADS": os.environ.get("FACESR_NUM_THREADS", "1"), "OMP_WAIT_POLICY": "PASSIVE",
           **(env or {})}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if ready():
                break
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return env


def test_a_killed_video_run_resumes_from_its_last_frame(tmp_path):
    clip = tmp_path / "clip"
    _faces(clip, 40)
    (clip / "meta.json").write_text('{"fps": 25}')
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    args = ["--frames", "1", *FAST, "--batch-size", "1"]
    assert main(["upscale", str(clip), "-o", str(whole), *args]) == 0
    cmd = [sys.executable, "-m", "facesr.cli", "upscale", str(clip), "-o", str(killed), *args]
    env = _kill_when(cmd, lambda: _manifest(killed)["clips"][0]["frames_done"] >= 3)
    done = _manifest(killed)["clips"][0]["frames_done"]
    assert 3 <= done < 40 and not _manifest(killed)["complete"]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    record = _manifest(killed)["clips"][0]
    assert record["complete"] and record["frames_done"] == 40 and Path(record["video"]).is_file()
    for i in range(40):
        name = f"clip/{i:04d}.png"
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_a_killed_evaluate_run_resumes_and_scores_as_an_uninterrupted_one(tmp_path):
    hr = tmp_path / "hr"
    _faces(hr, 40, size=128)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    args = ["--run", "--hr", str(hr), *FAST, "--batch-size", "1"]
    assert main(["evaluate", *args, "-o", str(whole)]) == 0
    cmd = [sys.executable, "-m", "facesr.cli", "evaluate", *args, "-o", str(killed)]
    env = _kill_when(cmd, lambda: len(json.loads((killed / "facesr-run.json").read_text())["rows"]) >= 3)
    done = len(json.loads((killed / "facesr-run.json").read_text())["rows"])
    assert 3 <= done < 40 and not (killed / "summary.json").exists()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr

    def scores(folder):
        lines = (folder / "per_image.csv").read_text().splitlines()
        seconds = lines[0].split(",").index("seconds")
        return [",".join(c for i, c in enumerate(line.split(",")) if i != seconds) for line in lines]

    assert scores(killed) == scores(whole)


def test_without_model_upscale_runs_the_default_diffusion_model(tmp_path, capsys):
    src = tmp_path / "in"
    _faces(src, 1)
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--precision", "fp32"]) == 0
    assert Path(_manifest(out)["model"]).name == "sr3-x8-res"
    recipe = facesr.load_model("sr3-x8-res").sampling  # the cost line counts the recipe's evaluations
    assert f"{recipe['samples'] * recipe['steps']} network evaluation(s) per face" in capsys.readouterr().out
