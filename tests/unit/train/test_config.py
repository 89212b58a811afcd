"""Dataclass configs to and from JSON."""

import dataclasses
import json

import pytest

from facesr.config import from_dict, load_json, to_dict
from facesr.diffusion.schedules import DDPMConfig
from facesr.errors import FacesrError
from facesr.nets.unet import UNetConfig
from facesr.methods.sr3 import SR3Config
from facesr.train.config import DataConfig, ExperimentConfig, OptimConfig


def json_round_trip(cfg):
    return from_dict(type(cfg), json.loads(json.dumps(to_dict(cfg))))


def custom_sr3():
    return SR3Config(unet=UNetConfig(block_out_channels=(32, 32, 64), attention_levels=(1, 2), dropout=0.1),
                     diffusion=DDPMConfig("cosine", 1000, cosine_s=0.01), operator="tf-bilinear", scale=4,
                     hr_size=64, target="image", residual_scale=2.5, loss="l2", per_batch_t=True)


def custom_experiment():
    return ExperimentConfig(name="x", model=json.loads(json.dumps(to_dict(custom_sr3()))), data=DataConfig(train_dirs=("a", "b/c"), patch_size=32),
                            optim=OptimConfig(batch_size=3, lr=3e-4, betas=(0.8, 0.95), mixed_precision="no"))


@pytest.mark.parametrize("cfg", [SR3Config(), custom_sr3(), ExperimentConfig(), custom_experiment()],
                         ids=["sr3-default", "sr3-custom", "exp-default", "exp-custom"])
def test_json_round_trip(cfg):
    again = json_round_trip(cfg)
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)


def test_round_trip_restores_types():
    again = json_round_trip(custom_experiment())
    model = again.build_model()
    assert isinstance(model.cfg, SR3Config) and isinstance(model.cfg.unet, UNetConfig)
    assert isinstance(model.cfg.diffusion, DDPMConfig) and isinstance(again.optim, OptimConfig)
    assert model.cfg == custom_sr3()
    assert again.data.train_dirs == ("a", "b/c") and isinstance(again.data.train_dirs, tuple)
    assert again.optim.betas == (0.8, 0.95) and isinstance(again.optim.betas, tuple)
    assert model.cfg.unet.block_out_channels == (32, 32, 64)


def test_ints_become_floats_in_float_fields():
    cfg = from_dict(SR3Config, {"residual_scale": 3, "diffusion": {"linear_end": 1}})
    assert cfg.residual_scale == 3.0 and isinstance(cfg.residual_scale, float)
    assert isinstance(cfg.diffusion.linear_end, float)


def test_partial_dict_keeps_defaults():
    cfg = from_dict(ExperimentConfig, {"optim": {"lr": 0.001}})
    assert cfg.optim.lr == 0.001
    assert dataclasses.replace(cfg, optim=OptimConfig()) == ExperimentConfig()


@pytest.mark.parametrize("data, where", [({"bogus_key": 1}, "config"),
                                         ({"model": {"unet": {"bogus_key": 1}}}, "config: model.unet"),
                                         ({"optim": {"lr": 1e-4, "bogus_key": 2}}, "config: optim")])
def test_unknown_keys_are_rejected(data, where):
    with pytest.raises(FacesrError) as info:
        from_dict(ExperimentConfig, data).build_model()  # the model section is checked by its method's config
    assert "bogus_key" in str(info.value) and str(info.value).startswith(where + ":")


def test_non_object_is_rejected():
    with pytest.raises(FacesrError, match="expected an object"):
        from_dict(ExperimentConfig, {"data": [1, 2]})
    with pytest.raises(FacesrError, match="expected an object"):
        from_dict(ExperimentConfig, {"model": [1, 2]}).build_model()


def test_invalid_values_become_facesr_errors():
    with pytest.raises(FacesrError, match="mixed_precision"):
        from_dict(ExperimentConfig, {"optim": {"mixed_precision": "fp8"}})
    with pytest.raises(FacesrError, match=r'^config: optim\.batch_size: expected an integer, got "8"$'):
        from_dict(ExperimentConfig, {"optim": {"batch_size": "8"}})


def assert_one_clear_error(path, *words):
    with pytest.raises(FacesrError) as info:
        load_json(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message
    return message


def test_load_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"a": [1, 2]}))
    assert load_json(path) == {"a": [1, 2]}


def test_load_json_missing_file(tmp_path):
    assert_one_clear_error(tmp_path / "missing.json", "not found")


def test_load_json_invalid(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,\n "b": }\n')
    assert "line 2" in assert_one_clear_error(path, "not valid JSON")


@pytest.mark.parametrize("field, value", [("target", "pixels"), ("loss", "huber")])
def test_sr3_config_rejects_bad_choices(field, value):
    with pytest.raises(FacesrError, match=field):
        SR3Config(**{field: value})
    with pytest.raises(FacesrError, match=value):
        from_dict(SR3Config, {field: value})


def test_sr3_config_rejects_bad_operator():
    with pytest.raises(FacesrError):
        SR3Config(operator="nearest")
    with pytest.raises(FacesrError):
        SR3Config(scale=3.5)


# A folder or a binary file given as a config is one clear FacesrError, not a traceback.
@pytest.mark.parametrize("kind", ["folder", "binary"])
def test_load_json_unreadable_config(tmp_path, kind):
    path = tmp_path / "cfg.json"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe\x00\x89PNG binary")
    assert_one_clear_error(path)


def test_lr_scale_groups_parameters_by_name_prefix():
    import torch

    from facesr.train.config import param_groups

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 3))
    groups = param_groups(model, {"1.": 10.0})
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    assert [p.shape for p in groups[1]["params"]] == [torch.Size([3, 2]), torch.Size([3])]
    assert sum(len(g["params"]) for g in groups) == 4
    # Adam moves a scaled group's parameters by lr x scale on the first step (Adam's step is lr per element)
    opt = torch.optim.Adam(groups, lr=1e-3)
    for g in opt.param_groups:
        g["lr"] = 1e-3 * g["lr_scale"]
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    moved = [float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before)]
    assert moved[0] == pytest.approx(1e-3, rel=1e-3) and moved[2] == pytest.approx(1e-2, rel=1e-3)
    with pytest.raises(FacesrError, match="'vector'"):
        param_groups(model, {"vector": 2.0})
    with pytest.raises(FacesrError, match="positive"):
        from_dict(OptimConfig, {"lr_scale": {"net": 0}}, "x")
