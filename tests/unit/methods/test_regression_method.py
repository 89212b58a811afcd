"""Regression method: training through the same loop, blind LR records."""

import json

import pytest
import torch

from facesr.cli import main

pytestmark = pytest.mark.slow


def regression_config(tmp_path, sample_faces, degradation=None, scale=8):
    cfg = {
        "name": "reg", "method": "regression",
        "model": {"net": {"arch": "msrresnet", "num_feat": 16, "num_blocks": 2}, "scale": scale, "hr_size": 128,
                  "operator": "bicubic", "degradation": degradation},
        "data": {"train_dirs": [str(sample_faces)], "patch_size": 32, "rot90": True,
                 "brightness": [0.7, 1.3], "contrast": [0.7, 1.3]},
        "optim": {"batch_size": 2, "lr": 2e-4, "warmup_steps": 1, "schedule": "cosine_restarts", "periods": [3, 3],
                  "restart_weights": [1, 0.5], "max_steps": 3, "checkpoint_every": 3, "mixed_precision": "no"},
    }
    path = tmp_path / "reg.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("degradation, scale", [(None, 8), ("deepfacesr", 4)])
def test_train_export_evaluate(tmp_path, sample_faces, degradation, scale):
    cfg = regression_config(tmp_path, sample_faces, degradation, scale)
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 0
    ckpt = run / "checkpoints" / "step-00000003"
    assert main(["export", str(ckpt), str(tmp_path / "m")]) == 0
    ev = tmp_path / "ev"
    assert main(["evaluate", "--run", "--hr", str(sample_faces), "--model", str(tmp_path / "m"), "--limit", "2", "-o", str(ev)]) == 0
    summary = json.loads((ev / "summary.json").read_text())
    assert summary["images"] == 2 and "psnr" in summary["metrics"] and summary["network_evaluations"] == 1
    assert summary["protocol"]["degradation"] == (degradation or "deterministic operator")
    if degradation:
        # blind LR: no consistency (no deterministic operator); the drawn parameters are recorded
        assert "consistency" not in summary["metrics"]
        records = json.loads((ev / "lr_params.json").read_text())
        assert len(records) == 2
    else:
        assert "consistency" in summary["metrics"]


def test_blind_lr_is_reproducible_from_the_image_name(tmp_path, sample_faces):
    from facesr.methods.regression import RegressionConfig, RegressionSR
    from facesr.nets.regression import RegressionNetConfig

    m = RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=4, degradation="realesrgan"))
    hr = torch.rand(2, 3, 64, 64)
    a, ra = m.lr_protocol.degrade(hr, ["x.png", "y.png"])
    b, rb = m.lr_protocol.degrade(hr, ["x.png", "y.png"])
    c, _ = m.lr_protocol.degrade(hr, ["x.png", "z.png"])
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b) and ra == rb
    assert torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def _tiny_regression(**kw):
    from facesr.methods.regression import RegressionConfig, RegressionSR
    from facesr.nets.regression import RegressionNetConfig

    return RegressionSR(RegressionConfig(net=RegressionNetConfig(num_feat=8, num_blocks=1), scale=8, **kw))


def test_identity_weight_adds_the_identity_loss_and_marks_dlib(sample_faces):
    from facesr.identity.loss import identity_loss
    from facesr.io.images import list_images, read_image, to_tensor

    hr = torch.stack([to_tensor(read_image(p)) for p in list_images(sample_faces)[:2]])
    batch = {"hr": hr, "lr": torch.nn.functional.interpolate(hr, scale_factor=1 / 8, mode="area")}
    torch.manual_seed(0)
    plain = _tiny_regression()
    torch.manual_seed(0)
    weighted = _tiny_regression(identity_weight=0.5)
    sr = weighted.net(batch["lr"]).float()
    want = (sr - hr).abs().mean() + 0.5 * identity_loss(sr, hr)
    torch.testing.assert_close(weighted.training_loss(batch), want)
    assert weighted.training_loss(batch) > plain.training_loss(batch)
    assert plain.identity_networks == () and weighted.identity_networks == ("dlib",)
    assert set(weighted.state_dict()) == set(plain.state_dict())  # the dlib network is not part of the model
    assert identity_loss(hr, hr).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(Exception, match="identity_weight needs whole 128-px faces, not 64-px patches"):
        weighted.training_loss({"hr": hr[..., :64, :64], "lr": batch["lr"][..., :8, :8]})


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "1"])
def test_identity_weight_must_be_a_number_at_least_zero(bad):
    with pytest.raises(Exception, match="identity_weight"):
        _tiny_regression(identity_weight=bad)
