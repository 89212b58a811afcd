"""from_dict checks each value against its field's type, and the config classes check ranges; every
bad value is one FacesrError naming the file and the dotted key."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from facesr.config import ConfigValueError, from_dict
from facesr.errors import FacesrError
from facesr.methods.hub import WEIGHTS_DIR, load_model
from facesr.train.config import DataConfig, ExperimentConfig, OptimConfig, load_experiment

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@dataclass
class Inner:
    n: int = 1


@dataclass
class Everything:
    flag: bool = False
    count: int = 0
    rate: float = 0.0
    name: str = ""
    pair: tuple[float, float] = (0.0, 1.0)
    sizes: tuple[int, ...] = ()
    maybe: tuple[float, float] | None = None
    label: str | None = None
    table: dict[str, float] = field(default_factory=dict)
    free: dict = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)


def message(data, cls=Everything, where="f.json"):
    with pytest.raises(FacesrError) as info:
        from_dict(cls, data, where)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("data, expected", [
    ({"flag": "yes"}, 'f.json: flag: expected true or false, got "yes"'),
    ({"flag": 1}, "f.json: flag: expected true or false, got 1"),
    ({"count": True}, "f.json: count: expected an integer, got true"),
    ({"count": 2.5}, "f.json: count: expected an integer, got 2.5"),
    ({"count": 2.0}, "f.json: count: expected an integer, got 2.0"),
    ({"count": "3"}, 'f.json: count: expected an integer, got "3"'),
    ({"rate": "fast"}, 'f.json: rate: expected a number, got "fast"'),
    ({"rate": False}, "f.json: rate: expected a number, got false"),
    ({"rate": float("nan")}, "f.json: rate: expected a finite number, got NaN"),
    ({"rate": float("inf")}, "f.json: rate: expected a finite number, got Infinity"),
    ({"name": 3}, "f.json: name: expected a string, got 3"),
    ({"name": None}, "f.json: name: expected a string, got null"),
    ({"pair": 0.5}, "f.json: pair: expected a list of 2 numbers, got 0.5"),
    ({"pair": [1, 2, 3]}, "f.json: pair: expected a list of 2 numbers, got [1, 2, 3]"),
    ({"pair": [1, "x"]}, 'f.json: pair[1]: expected a number, got "x"'),
    ({"sizes": [1, 2.5]}, "f.json: sizes[1]: expected an integer, got 2.5"),
    ({"sizes": "12"}, 'f.json: sizes: expected a list of integers, got "12"'),
    ({"maybe": "no"}, 'f.json: maybe: expected a list of 2 numbers or null, got "no"'),
    ({"maybe": [0.5, float("nan")]}, "f.json: maybe[1]: expected a finite number, got NaN"),
    ({"label": 1}, "f.json: label: expected a string or null, got 1"),
    ({"table": {"a": "x"}}, 'f.json: table.a: expected a number, got "x"'),
    ({"table": [1]}, "f.json: table: expected an object, got [1]"),
    ({"free": 1}, "f.json: free: expected an object, got 1"),
    ({"inner": 1}, "f.json: inner: expected an object, got 1"),
    ({"inner": {"n": 0.5}}, "f.json: inner.n: expected an integer, got 0.5"),
])
def test_wrong_types_are_named_with_file_and_key(data, expected):
    assert message(data) == expected


def test_right_types_are_accepted_and_converted():
    cfg = from_dict(Everything, {"flag": True, "count": 3, "rate": 2, "name": "x", "pair": [0, 1], "sizes": [4, 5],
                                 "maybe": None, "label": None, "table": {"a": 1}, "free": {"k": [1]},
                                 "inner": {"n": 2}})
    assert cfg == Everything(True, 3, 2.0, "x", (0.0, 1.0), (4, 5), None, None, {"a": 1.0}, {"k": [1]}, Inner(2))
    assert isinstance(cfg.rate, float) and isinstance(cfg.pair[0], float) and isinstance(cfg.table["a"], float)
    assert from_dict(Everything, {"maybe": [0.5, 2]}).maybe == (0.5, 2.0)


def test_unknown_keys_are_still_refused():
    assert message({"inner": {"m": 1}}).startswith("f.json: inner: unknown key(s) ['m']; known: ['n']")


@pytest.mark.parametrize("section, key, value, expected", [
    ("data", "hflip", "yes", 'x.json: data.hflip: expected true or false, got "yes"'),
    ("optim", "batch_size", True, "x.json: optim.batch_size: expected an integer, got true"),
    ("optim", "batch_size", 2.5, "x.json: optim.batch_size: expected an integer, got 2.5"),
    ("optim", "batch_size", 0, "x.json: optim.batch_size: must be at least 1, got 0"),
    ("optim", "lr", "fast", 'x.json: optim.lr: expected a number, got "fast"'),
    ("optim", "lr", float("nan"), "x.json: optim.lr: expected a finite number, got NaN"),
    ("optim", "lr", 0, "x.json: optim.lr: must be a positive number, got 0.0"),
    ("optim", "lr", -1e-4, "x.json: optim.lr: must be a positive number, got -0.0001"),
    ("optim", "max_steps", 0, "x.json: optim.max_steps: must be at least 1, got 0"),
    ("optim", "log_every", 0, "x.json: optim.log_every: must be at least 1, got 0"),
    ("optim", "checkpoint_every", -2, "x.json: optim.checkpoint_every: must be at least 1, got -2"),
    ("optim", "keep_checkpoints", 0, "x.json: optim.keep_checkpoints: must be at least 1, got 0"),
    ("optim", "warmup_steps", -1, "x.json: optim.warmup_steps: must be at least 0, got -1"),
    ("optim", "ema_decay", 1.5, "x.json: optim.ema_decay: must be in [0, 1], got 1.5"),
    ("optim", "betas", [0.9, 1.0], "x.json: optim.betas: must be two numbers in [0, 1), got [0.9, 1.0]"),
    ("optim", "lr_scale", {"net": 0}, "x.json: optim.lr_scale: values must be positive numbers, got {'net': 0.0}"),
    ("data", "patch_size", -1, "x.json: data.patch_size: must be at least 0, got -1"),
    ("data", "jitter_prob", 2, "x.json: data.jitter_prob: must be in [0, 1], got 2.0"),
    ("data", "vector_dropout", 1, "x.json: data.vector_dropout: must be in [0, 1), got 1.0"),
    ("data", "frames", 0, "x.json: data.frames: must be at least 1, got 0"),
    ("data", "brightness", [1.3, 0.7],
     "x.json: data.brightness: must be null or [low, high] with 0 <= low <= high, got [1.3, 0.7]"),
    ("data", "reference", "other", "x.json: data.reference: must be null, 'same-identity' or 'self', got 'other'"),
])
def test_experiment_values_are_checked(section, key, value, expected):
    assert message({section: {key: value}}, ExperimentConfig, "x.json") == expected


REGRESSION = {"method": "regression", "model": {"net": {"arch": "msrresnet", "num_feat": 8, "num_blocks": 1},
                                                "scale": 8, "hr_size": 128}}


@pytest.mark.parametrize("net, expected", [
    ({"num_feat": 0}, "model.net.num_feat: must be an integer of at least 1, got 0"),
    ({"num_feat": 2.5}, "model.net.num_feat: expected an integer, got 2.5"),
    ({"num_blocks": -1}, "model.net.num_blocks: must be an integer of at least 0, got -1"),
    ({"res_scale": 0}, "model.net.res_scale: must be a positive number, got 0.0"),
    ({"arch": "vgg"}, "model.net.arch: must be one of 'edsr', 'msrresnet', got 'vgg'"),
])
def test_regression_net_values_are_checked(tmp_path, net, expected):
    path = tmp_path / "r.json"
    cfg = json.loads(json.dumps(REGRESSION))
    cfg["model"]["net"].update(net)
    path.write_text(json.dumps(cfg))
    with pytest.raises(FacesrError) as info:
        load_experiment(path)
    assert str(info.value) == f"{path}: {expected}"


def test_regression_hr_size_must_fit_the_scale(tmp_path):
    path = tmp_path / "r.json"
    cfg = json.loads(json.dumps(REGRESSION))
    cfg["model"]["hr_size"] = 100
    path.write_text(json.dumps(cfg))
    with pytest.raises(FacesrError, match=r": model\.hr_size: must be a positive multiple of the scale 8, got 100$"):
        load_experiment(path)


def test_regression_net_with_no_blocks_builds():
    path_cfg = json.loads(json.dumps(REGRESSION))
    path_cfg["model"]["net"]["num_blocks"] = 0
    from_dict(ExperimentConfig, path_cfg).build_model()


def test_unknown_method_names_the_file_and_key(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"method": "nope"}))
    with pytest.raises(FacesrError, match=r"m\.json: method: unknown method 'nope'"):
        load_experiment(path)


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigValueError, match=r"^batch_size: must be at least 1, got 0$"):
        OptimConfig(batch_size=0)
    with pytest.raises(ConfigValueError, match=r"^lr: must be a positive number, got nan$"):
        OptimConfig(lr=float("nan"))
    with pytest.raises(ConfigValueError, match="vector_dropout"):
        DataConfig(vector_dropout=1.0)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    import json

    from facesr.train.student import KIND, load_student_config

    if json.loads(path.read_text()).get("kind") == KIND:  # an identity student (facesr train-embedder)
        load_student_config(path)
    else:
        load_experiment(path)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/config.json")))
def test_every_bundled_model_loads(name):
    assert load_model(name) is not None
