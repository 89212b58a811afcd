"""benchmarks/video_fasr.py: a track's faces condition every frame, against the null identity."""

import numpy as np
import pytest
import torch

from facesr.engine.conditions import identity_vector, null_identity
from facesr.engine.options import SamplingOptions
from facesr.engine.run import super_resolve_tensors
from facesr.identity.embedders import make_embedder
from facesr.io.images import list_images, read_image, to_tensor, to_uint8, write_image
from facesr.methods.base import Conditions
from facesr.metrics import psnr


@pytest.fixture
def tiny_fasr():
    from facesr.diffusion.schedules import DDPMConfig
    from facesr.methods.sr3 import SR3, SR3Config
    from facesr.nets.unet import UNetConfig

    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), norm_num_groups=8, vector_dim=128,
                      vector_embedder="dlib")
    model = SR3(SR3Config(unet=unet, diffusion=DDPMConfig(timesteps=50), scale=8, hr_size=128)).eval()
    with torch.no_grad():  # the vector's per-channel biases start at zero: open them so the condition shows
        for name, p in model.named_parameters():
            if "vector" in name:
                p.normal_(0, 0.5)
    return model


def test_each_frame_is_scored_with_the_track_condition_and_the_null_identity(tmp_path, tiny_fasr, sample_faces,
                                                                             benchmark_script):
    video_fasr = benchmark_script("video_fasr")
    clip = tmp_path / "clip"
    for i, face in enumerate(list_images(sample_faces)[:3]):
        write_image(clip / f"{i:04d}.png", read_image(face))
    opts = SamplingOptions.for_model(tiny_fasr, sampler="ddim", steps=2, strength=0.5, samples=1, precision="fp32")
    judge = make_embedder("dlib")
    scores = video_fasr.clip_scores(tiny_fasr, clip, 2, opts, "cpu", [judge])
    # by hand: the first 2 frames, their 8-bit LR, the track's vector made by restore's track embedder
    hrs = [read_image(f) for f in list_images(clip)[:2]]
    lrs = [to_tensor(to_uint8(tiny_fasr.lr_protocol.operator_lr(to_tensor(h)[None])[0])) for h in hrs]
    track = identity_vector(tiny_fasr, [to_uint8(lr) for lr in lrs], embedder="dlib-lq")
    keys = [f"clip/{i:04d}" for i in range(2)]
    for name, vector in (("track", track), ("null", null_identity(tiny_fasr))):
        srs = [to_uint8(s) for s in super_resolve_tensors(tiny_fasr, lrs, keys, opts, "cpu",
                                                          conditions=[Conditions(vector=vector)] * 2)]
        assert scores[name]["psnr"] == pytest.approx(np.mean([psnr(s, h) for s, h in zip(srs, hrs)]))
        a, b = judge.embed(srs), judge.embed(hrs)
        cs = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert scores[name][judge.name] == pytest.approx(float(cs.mean()), abs=1e-5)
    assert scores["track"]["psnr"] != scores["null"]["psnr"]  # the condition reaches the output
