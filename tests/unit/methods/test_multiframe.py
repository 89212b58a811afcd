"""MF-SR3: k stacked frames as the condition, training on bursts, sliding-window video restoration."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.cli import main
from facesr.engine.options import SamplingOptions
from facesr.errors import FacesrError


def mf_config(tmp_path, sample_faces, frames=3):
    cfg = {
        "name": "mf", "method": "sr3",
        "model": {"unet": {"block_out_channels": [32, 32], "attention_levels": [], "norm_num_groups": 8, "cond_images": frames},
                  "diffusion": {"schedule": "linear", "timesteps": 50}, "scale": 8, "hr_size": 128},
        "data": {"train_dirs": [str(sample_faces)], "patch_size": 32, "frames": frames, "motion_px": 1.5},
        "optim": {"batch_size": 2, "warmup_steps": 1, "max_steps": 2, "checkpoint_every": 2, "mixed_precision": "no"},
    }
    path = tmp_path / "mf.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.slow
def test_train_mf_model_and_restore_a_clip(tmp_path, sample_faces, tiny_model, capsys):
    run = tmp_path / "run"
    assert main(["train", str(mf_config(tmp_path, sample_faces)), "--out", str(run), "--no-progress"]) == 0
    model = tmp_path / "mf"
    assert main(["export", str(run / "checkpoints" / "step-00000002"), str(model)]) == 0
    clip = tmp_path / "clip"
    clip.mkdir()
    face = np.asarray(Image.open(next(sample_faces.glob("*.png"))).convert("RGB").resize((16, 16), Image.BICUBIC))
    for i in range(4):
        Image.fromarray(np.roll(face, i, axis=1)).save(clip / f"{i:04d}.png")
    (clip / "meta.json").write_text(json.dumps({"fps": 25}))
    out = tmp_path / "out"
    assert main(["upscale", str(clip), "-o", str(out), "--model", str(model), "--frames", "3", "--steps", "2"]) == 0
    frames = sorted((out / "clip").glob("*.png"))
    assert [f.name for f in frames] == [f"{i:04d}.png" for i in range(4)]
    assert np.asarray(Image.open(frames[0])).shape == (128, 128, 3)
    import av

    with av.open(str(out / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 4 and decoded[0].shape == (128, 128, 3)
    manifest = json.loads((out / "facesr-run.json").read_text())
    assert manifest["clips"][0]["window"] == 3 and manifest["failures"] == []
    # the same noise for every frame: two identical windows give identical frames
    still = tmp_path / "still"
    still.mkdir()
    for i in range(3):
        Image.fromarray(face).save(still / f"{i:04d}.png")
    assert main(["upscale", str(still), "-o", str(out), "--model", str(model), "--frames", "3", "--steps", "2",
                 "--fps", "25", "--no-video"]) == 0
    a, b, c = (np.asarray(Image.open(out / "still" / f"{i:04d}.png")) for i in range(3))
    assert np.array_equal(a, b) and np.array_equal(b, c)
    # --no-neighbours: each frame in place of its neighbours, so frame 1 is what a clip of frame 1 alone gives
    capsys.readouterr()
    assert main(["upscale", str(clip), "-o", str(tmp_path / "nn"), "--model", str(model), "--frames", "3",
                 "--steps", "2", "--no-neighbours", "--no-video"]) == 0
    assert sum("baseline without neighbours" in line for line in capsys.readouterr().out.splitlines()) == 1
    alone = tmp_path / "alone" / "clip"
    alone.mkdir(parents=True)
    for i in range(3):
        Image.open(clip / "0001.png").save(alone / f"{i:04d}.png")
    assert main(["upscale", str(alone), "-o", str(tmp_path / "al"), "--model", str(model), "--frames", "3",
                 "--steps", "2", "--fps", "25", "--no-video"]) == 0
    nn, al = (np.asarray(Image.open(tmp_path / d / "clip" / "0001.png")).astype(int) for d in ("nn", "al"))
    assert np.abs(nn - al).max() <= 1  # batches of 4 and 3 frames: float rounding only
    # a still image: the same, said in one line; --no-neighbours without --frames is refused
    assert main(["upscale", str(clip / "0001.png"), "-o", str(tmp_path / "st"), "--model", str(model),
                 "--steps", "2"]) == 0
    assert "baseline without neighbours" in capsys.readouterr().out and (tmp_path / "st" / "0001.png").is_file()
    assert main(["upscale", str(clip / "0001.png"), "-o", str(tmp_path / "st"), "--model", str(model),
                 "--no-neighbours"]) == 2
    assert "--no-neighbours goes with --frames" in capsys.readouterr().err
    # --frames must match the model; an unreadable clip fails alone
    capsys.readouterr()
    assert main(["upscale", str(clip), "-o", str(out), "--model", str(model), "--frames", "5"]) == 2
    assert main(["upscale", str(tmp_path / "missing"), str(clip), "-o", str(tmp_path / "o2"), "--model", str(model),
                 "--frames", "3", "--steps", "1", "--no-video"]) == 1
    err = capsys.readouterr().err
    assert "takes 3 frame(s)" in err and "missing: file or folder not found" in err
    assert len(list((tmp_path / "o2" / "clip").glob("*.png"))) == 4


def test_frames_must_match_the_model(tmp_path, sample_faces, capsys):
    cfg = json.loads(mf_config(tmp_path, sample_faces).read_text())
    cfg["data"]["frames"] = 1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert "takes 3 condition frame(s)" in capsys.readouterr().err


def test_a_k_frame_model_initialised_from_a_single_frame_model_equals_it_on_the_middle_frame(tiny_model):
    from facesr.methods.hub import load_model
    from facesr.methods.sr3 import SR3

    single = load_model(str(tiny_model))
    cfg = single.cfg
    mf = SR3(type(cfg)(**{**cfg.__dict__, "unet": type(cfg.unet)(**{**cfg.unet.__dict__, "cond_images": 3})}))
    missing, unexpected = mf.load_state_dict(mf.adapt_init_state(single.state_dict()), strict=False)
    assert not missing and not unexpected
    lr = torch.rand(2, 9, 16, 16)
    g = [torch.Generator().manual_seed(i) for i in range(2)]
    opts = SamplingOptions(sampler="ddim", steps=3, precision="fp32")
    a = mf.super_resolve(lr, None, opts, g)
    g = [torch.Generator().manual_seed(i) for i in range(2)]
    b = single.super_resolve(lr[:, 3:6], None, opts, g)
    assert torch.allclose(a, b, atol=1e-5)


def test_spread_frame_init_starts_from_the_single_frame_model_on_the_frames_mean(tiny_model):
    from facesr.methods.hub import load_model
    from facesr.methods.sr3 import SR3

    single = load_model(str(tiny_model))
    cfg = single.cfg
    unet = type(cfg.unet)(**{**cfg.unet.__dict__, "cond_images": 3})
    mf = SR3(type(cfg)(**{**cfg.__dict__, "unet": unet, "frame_init": "spread"}))
    state = mf.adapt_init_state(single.state_dict())
    w, w1 = state["net.unet.conv_in.weight"], single.state_dict()["net.unet.conv_in.weight"]
    for frame in range(3):  # every frame a third of the single-frame condition weights; the noise input as it was
        torch.testing.assert_close(w[:, 3 * frame : 3 * frame + 3], w1[:, :3] / 3)
    torch.testing.assert_close(w[:, 9:], w1[:, 3:])
    missing, unexpected = mf.load_state_dict(state, strict=False)
    assert not missing and not unexpected
    cond, x_t, t = torch.rand(2, 3, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.rand(2)
    with torch.no_grad():  # at step 0 the network sees the frames' mean
        torch.testing.assert_close(mf.net(x_t, t, cond.flatten(1, 2)), single.net(x_t, t, cond.mean(1)),
                                   atol=1e-5, rtol=1e-4)
    with pytest.raises(FacesrError, match="frame_init"):
        type(cfg)(**{**cfg.__dict__, "frame_init": "zeros"})


def test_benchmark_runs_a_multi_frame_model_on_stills_as_its_baseline_without_neighbours(tmp_path, sample_faces, capsys):
    """Each still probe stands in for its neighbour frames, as in `facesr upscale` of a still: the same pixels."""
    import shutil

    from facesr.diffusion.schedules import DDPMConfig
    from facesr.methods.sr3 import SR3, SR3Config
    from facesr.nets.unet import UNetConfig

    torch.manual_seed(0)
    SR3(SR3Config(unet=UNetConfig(block_out_channels=(32, 32), attention_levels=(), norm_num_groups=8, cond_images=3),
                  diffusion=DDPMConfig(timesteps=50))).save_pretrained(tmp_path / "mf")
    root = tmp_path / "ids"
    for face in sorted(sample_faces.glob("*.png"))[:2]:
        for k in range(2):
            (root / face.stem).mkdir(parents=True, exist_ok=True)
            shutil.copy(face, root / face.stem / f"{k}.png")
    out = tmp_path / "bench"
    assert main(["benchmark", "--hr", str(root), "-o", str(out), "--method", f"mf={tmp_path / 'mf'},steps=1,samples=1",
                 "--identity", "dlib"]) == 0
    assert "each image stands in for its 2 neighbour frames" in capsys.readouterr().out
    lr = sorted((out / "mf" / "lr").glob("*.png"))[0]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(lr, alone / "1.png")  # the probe's own file name, which seeds its noise in both commands
    assert main(["upscale", str(alone), "-o", str(tmp_path / "up"), "--model", str(tmp_path / "mf"), "--steps", "1",
                 "--samples", "1"]) == 0
    bench = np.asarray(Image.open(out / "mf" / "sr" / lr.name)).astype(int)
    assert np.abs(bench - np.asarray(Image.open(tmp_path / "up" / "1.png"))).max() <= 1  # batch of 2 against 1
