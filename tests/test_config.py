"""Dataclass configs to and from JSON."""

import dataclasses
import json

import pytest

from facesr.config import from_dict, load_json, to_dict
from facesr.diffusion.schedules import DDPMConfig
from facesr.errors import FacesrError
from facesr.models.conditional_unet import UNetConfig
from facesr.models.sr3 import SR3Config
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
                                         ({"model": {"unet": {"bogus_key": 1}}}, "config.model.unet"),
                                         ({"optim": {"lr": 1e-4, "bogus_key": 2}}, "config.optim")])
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
    with pytest.raises(FacesrError, match=r"^config\.optim: "):  # a TypeError in __post_init__, located
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
