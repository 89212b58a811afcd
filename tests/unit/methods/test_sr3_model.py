"""SR3 model: target encoding, warm start, sample averaging, save/load."""

import numpy as np
import pytest
import torch

from facesr.cli import main
from facesr.io.images import read_image
from facesr.diffusion.schedules import DDPMConfig
from facesr.errors import FacesrError
from facesr.nets.unet import UNetConfig
from facesr.engine.options import SamplingOptions
from facesr.engine.run import super_resolve_tensors
from facesr.methods.hub import load_model
from facesr.methods.sr3 import SR3, SR3Config


def tiny(target="residual", vector_dim=0, cond_images=1):
    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), vector_dim=vector_dim, cond_images=cond_images)
    return SR3(SR3Config(unet=unet, diffusion=DDPMConfig(timesteps=50), target=target)).eval()


def sr(model, lr, generator=None, init=None, **options):
    """super_resolve without conditions, in fp32, with the given sampling options (default: DDIM, 50 steps)."""
    return model.super_resolve(lr, None, SamplingOptions(precision="fp32", **options), generator, init)


@pytest.mark.parametrize("target", ["image", "residual"])
def test_encode_decode_round_trip_and_clip(target):
    m = tiny(target)
    hr, up = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    x0 = m.encode(hr, up)
    assert torch.allclose(m.decode(x0, up), hr, atol=1e-6)
    clipped = m.decode(m.clip_fn(up)(x0 * 100), up)
    assert clipped.min() >= -1e-6 and clipped.max() <= 1 + 1e-6


def test_residual_of_bicubic_is_zero():
    m = tiny()
    up = torch.rand(1, 3, 8, 8)
    assert torch.count_nonzero(m.encode(up, up)) == 0


def test_warm_start_at_the_lowest_level_returns_nearly_bicubic():
    m = tiny()
    lr = torch.rand(2, 3, 4, 4)
    up = m.upsample(lr)
    # t0 = 1: sigma_1 of the linear schedule is ~1.4e-3, so the noised start is almost bicubic
    out = sr(m, lr, torch.Generator().manual_seed(0), steps=2, strength=1 / 49)
    assert out.shape == (2, 3, 32, 32)
    assert (out - up).abs().max() < 0.05


def test_warm_start_from_a_given_estimate():
    m = tiny()
    lr = torch.rand(1, 3, 4, 4)
    init = torch.full((1, 3, 32, 32), 0.5)
    out = sr(m, lr, torch.Generator().manual_seed(0), init, steps=2, strength=1 / 49)
    assert (out - 0.5).abs().max() < 0.05


def test_strength_and_steps_are_checked():
    m = tiny()
    with pytest.raises(FacesrError):
        sr(m, torch.rand(1, 3, 4, 4), steps=10, strength=0.1)  # only 5 timesteps left
    with pytest.raises(FacesrError):
        sr(m, torch.rand(1, 3, 4, 4), steps=1, strength=0)
    with pytest.raises(FacesrError, match=r"strength must be in \(0, 1\]"):
        SamplingOptions.for_model(m, strength=0)


def test_sample_average_is_the_mean_of_seeded_samples():
    m = tiny()
    lrs = [torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    keys = ["a", "b", "c"]
    opts = dict(steps=3, batch_size=4, precision="fp32")
    mean, std = super_resolve_tensors(m, lrs, keys, SamplingOptions(samples=3, seed=5, **opts), "cpu", with_std=True)
    singles = [super_resolve_tensors(m, lrs, keys, SamplingOptions(samples=1, seed=5 + k, **opts), "cpu") for k in range(3)]
    for i in range(3):
        stack = torch.stack([s[i] for s in singles])
        assert torch.allclose(mean[i], stack.mean(0), atol=1e-5)
        assert torch.allclose(std[i], stack.std(0, unbiased=False), atol=1e-4)
    assert all(s.max() > 0 for s in std)  # different seeds give different samples


def test_vector_and_multi_image_conditioning_hooks():
    m = tiny(vector_dim=8, cond_images=3)
    x = torch.rand(2, 3, 16, 16)
    g = torch.rand(2)
    cond = torch.rand(2, 9, 16, 16)
    v1, v2 = torch.zeros(2, 8), torch.ones(2, 8)
    for dense in m.net.vector_bias:  # zero-initialised: give the vector an effect
        torch.nn.init.normal_(dense.weight)
    with torch.no_grad():
        a, b = m.net(x, g, cond, v1), m.net(x, g, cond, v2)
    assert a.shape == (2, 3, 16, 16) and not torch.allclose(a, b)
    with pytest.raises(FacesrError):
        m.net(x, g, cond)  # the vector is required
    with pytest.raises(FacesrError):
        m.net(x, g, cond[:, :3], v1)  # three condition images expected


def test_save_and_load_prefers_ema(tmp_path):
    m = tiny()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in m.state_dict().items()}
    m.save_pretrained(tmp_path / "m", ema_state=ema)
    loaded = load_model(str(tmp_path / "m"))
    raw = load_model(str(tmp_path / "m"), use_ema=False)
    k = "net.unet.conv_in.weight"
    assert torch.equal(loaded.state_dict()[k], ema[k]) and torch.equal(raw.state_dict()[k], m.state_dict()[k])
    assert loaded.cfg == m.cfg
    import stat

    from facesr.io.images import default_file_mode

    assert stat.S_IMODE((tmp_path / "m" / "ema.safetensors").stat().st_mode) == default_file_mode()
    m.save_pretrained(tmp_path / "m")  # saving again without EMA leaves no stale EMA weights behind
    assert not (tmp_path / "m" / "ema.safetensors").exists()
    assert torch.equal(load_model(str(tmp_path / "m")).state_dict()[k], m.state_dict()[k])


def test_uncertainty_map_cli(tmp_path, capsys):
    from PIL import Image

    m = tiny()
    m.save_pretrained(tmp_path / "m")
    src = tmp_path / "in"
    src.mkdir()
    # the model's own LR size (16x16): another size is run too, with a warning (not what this test is about)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(src / "f.png")
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--model", str(tmp_path / "m"), "--steps", "2", "--uncertainty"]) == 2
    assert "--samples" in capsys.readouterr().err
    assert main(["upscale", str(src), "-o", str(out), "--model", str(tmp_path / "m"), "--steps", "2",
                 "--samples", "3", "--uncertainty"]) == 0
    assert read_image(out / "f.png").shape == (128, 128, 3) and read_image(out / "f.std.png").shape == (128, 128, 3)


@pytest.mark.parametrize("sampler, strength", [("pc", 1.0), ("pc", 0.5), ("ode", 1.0), ("ode", 0.5)])
def test_sde_samplers_run_on_sr3_through_its_vp_view(sampler, strength):
    m = tiny()
    lr = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    out = sr(m, lr, torch.Generator().manual_seed(1), sampler=sampler, steps=4, strength=strength,
             predictor="euler_maruyama", corrector="langevin", snr=0.1)
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1


def test_sr3_vp_view_matches_the_ddpm_marginals():
    m = tiny()  # linear schedule, T = 50
    sde = m.sde_view()
    T = m.cfg.diffusion.timesteps
    t = torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64)
    discrete = m.schedule.sqrt_alpha_bar[(t * T).long() - 1]
    # the VP SDE is the continuous limit of the DDPM chain: close, not equal, at T = 50
    assert torch.allclose(sde.mean_coef(t), discrete, rtol=0.05)


def test_sde_sampler_needs_a_linear_schedule():
    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=())
    m = SR3(SR3Config(unet=unet, diffusion=DDPMConfig(schedule="cosine", timesteps=50))).eval()
    with pytest.raises(FacesrError, match="SDE view"):
        sr(m, torch.rand(1, 3, 4, 4), sampler="pc", steps=2)


def test_network_evaluations_of_sde_samplers():
    opts = SamplingOptions(sampler="pc", steps=10, samples=2, corrector_steps=2)
    assert opts.network_evaluations == 2 * 10 * 3
    assert SamplingOptions(sampler="pc", steps=10, corrector="none").network_evaluations == 10
    assert SamplingOptions(sampler="ode", steps=10).network_evaluations == 20  # Heun: 2 per step


def with_base(base_from=None):
    from facesr.nets.regression import RegressionNetConfig

    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), cond_images=1)
    cfg = SR3Config(unet=unet, diffusion=DDPMConfig(timesteps=50), scale=4, hr_size=16,
                    base=RegressionNetConfig(num_feat=8, num_blocks=1), base_from=base_from)
    return SR3(cfg).eval()


def test_a_base_network_is_the_condition_and_the_frame_of_the_residual():
    m = with_base()
    lr = torch.rand(2, 3, 4, 4)
    base_out = m.base(lr).clamp(0, 1)
    torch.testing.assert_close(m.condition_image(lr), base_out)
    assert not torch.allclose(base_out, m.upsample(lr), atol=1e-2)
    # the lowest-level warm start returns (nearly) the base's output, not bicubic
    out = sr(m, lr, torch.Generator().manual_seed(0), steps=2, strength=1 / 49)
    assert (out - base_out).abs().max() < 0.02
    # training diffuses HR - base(LR): an HR equal to the base output is a zero target
    seen = {}
    m.denoising_loss = lambda hr, up, generator=None, vector=None: seen.setdefault("x0", m.encode(hr, up))
    m.training_loss({"hr": base_out, "up": m.upsample(lr), "lr": lr})
    assert torch.count_nonzero(seen["x0"]) == 0
    assert not any(p.requires_grad for p in m.base.parameters())


def test_the_samples_of_a_face_share_one_base_pass():
    """The engine puts a face's K samples in one batch: the base runs once per distinct LR, with each row's output."""
    m = with_base()
    faces = torch.rand(3, 3, 4, 4)
    batch = faces[[0, 0, 0, 1, 2, 2, 1]]  # three faces, 3 + 2 + 2 samples, interleaved
    rows = []
    hook = m.base.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    got = m.condition_image(batch)
    hook.remove()
    assert rows == [3]
    torch.testing.assert_close(got, m.base(batch).clamp(0, 1))


def test_base_weights_come_from_base_from_and_travel_with_the_model(tmp_path):
    from facesr.methods.regression import RegressionConfig, RegressionSR
    from facesr.nets.regression import RegressionNetConfig

    torch.manual_seed(1)
    reg = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=4, hr_size=16))
    reg.save_pretrained(tmp_path / "reg")
    m = with_base(str(tmp_path / "reg"))
    assert m.prepare_training() == [f"base: the network of {tmp_path / 'reg'}, frozen"]
    for a, b in zip(m.base.state_dict().values(), reg.net.state_dict().values()):
        assert torch.equal(a, b)
    m.save_pretrained(tmp_path / "sr3")
    back = load_model(str(tmp_path / "sr3"))
    lr = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(back.condition_image(lr), reg.net(lr).clamp(0, 1))
    other = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=16, num_blocks=1), scale=4, hr_size=16))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(FacesrError, match="base_from .*other: not a x4 regression model with the network of base"):
        with_base(str(tmp_path / "other")).prepare_training()
    with pytest.raises(FacesrError, match="base_from names the weights of base"):
        SR3Config(base_from="msrresnet-x8")


@pytest.mark.slow
def test_training_keeps_the_base_frozen_and_exports_it(tmp_path, sample_faces):
    import json

    from facesr.methods.regression import RegressionConfig, RegressionSR
    from facesr.nets.regression import RegressionNetConfig

    torch.manual_seed(1)
    reg = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=8, hr_size=128,
                                        identity_weight=0.1))  # as if trained with dlib's identity loss
    reg.save_pretrained(tmp_path / "reg")
    cfg = {"name": "res", "method": "sr3",
           "model": {"unet": {"block_out_channels": [32, 32], "attention_levels": []},
                     "diffusion": {"timesteps": 50}, "base": {"num_feat": 8, "num_blocks": 1},
                     "base_from": str(tmp_path / "reg")},
           "data": {"train_dirs": [str(sample_faces)], "patch_size": 0},
           "optim": {"batch_size": 2, "warmup_steps": 1, "max_steps": 2, "checkpoint_every": 2, "mixed_precision": "no"}}
    (tmp_path / "res.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "res.json"), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "step-00000002"), str(tmp_path / "m")]) == 0
    m = load_model(str(tmp_path / "m"))
    for a, b in zip(m.base.state_dict().values(), reg.net.state_dict().values()):
        assert torch.equal(a, b)
    # the base's outputs carry what it was trained with: dlib is no independent judge of this model, after a resume too
    assert m.identity_networks == ("dlib",)
    assert main(["train", str(tmp_path / "res.json"), "--out", str(tmp_path / "run"), "--resume", "--max-steps", "4",
                 "--no-progress"]) == 0
    assert main(["export", str(tmp_path / "run" / "checkpoints" / "step-00000004"), str(tmp_path / "m4")]) == 0
    assert load_model(str(tmp_path / "m4")).identity_networks == ("dlib",)
    # ... and after a fine-tune that starts from its weights (init_from) with no base_from of its own
    cfg["init_from"] = str(tmp_path / "m")
    del cfg["model"]["base_from"]
    (tmp_path / "ft.json").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "ft.json"), "--out", str(tmp_path / "ft"), "--no-progress"]) == 0
    assert main(["export", str(tmp_path / "ft" / "checkpoints" / "step-00000002"), str(tmp_path / "mft")]) == 0
    assert load_model(str(tmp_path / "mft")).identity_networks == ("dlib",)


def test_identity_weight_adds_the_weighted_identity_loss_and_marks_dlib(sample_faces):
    """The added term is w x mean(gamma x (1 - cos)) of the denoised estimate, recomputed here from the same draws."""
    from facesr.diffusion.losses import sr3_eps_loss
    from facesr.identity.loss import identity_losses
    from facesr.io.images import list_images, to_tensor

    hr = torch.stack([to_tensor(read_image(p)) for p in list_images(sample_faces)[:2]])
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=())
    torch.manual_seed(0)
    plain = SR3(SR3Config(unet=unet, diffusion=DDPMConfig(timesteps=50)))
    torch.manual_seed(0)
    weighted = SR3(SR3Config(unet=unet, diffusion=DDPMConfig(timesteps=50), identity_weight=0.5))
    up = weighted.upsample(torch.nn.functional.interpolate(hr, scale_factor=1 / 8, mode="area"))
    seen = {}

    def record(x0_hat, gamma):
        seen["id"] = (gamma * identity_losses(weighted.decode(x0_hat, up), hr)).mean()
        return torch.zeros(())

    def eps_fn(x_t, sg):
        return weighted.net(x_t, weighted.noise_input(sg), up * 2 - 1, None)

    base = sr3_eps_loss(eps_fn, weighted.encode(hr, up), weighted.schedule, torch.Generator().manual_seed(3),
                        x0_loss=record)
    total = weighted.denoising_loss(hr, up, torch.Generator().manual_seed(3))
    torch.testing.assert_close(total, base + 0.5 * seen["id"])
    assert seen["id"] > 0
    torch.testing.assert_close(plain.denoising_loss(hr, up, torch.Generator().manual_seed(3)), base)
    assert plain.identity_networks == () and weighted.identity_networks == ("dlib",)
    with pytest.raises(FacesrError, match="identity_weight needs whole 128-px faces"):
        weighted.denoising_loss(hr[..., :64, :64], up[..., :64, :64])
    for bad in (-1, float("nan"), "1"):
        with pytest.raises(FacesrError, match="identity_weight"):
            SR3Config(unet=unet, identity_weight=bad)
