"""Every registered method declares the SRMethod interface, and the code outside ``facesr.methods.base``
asks a model what it is through that interface (``needs``, ``lr_protocol``, ``uses_sampler``, ...),
never by probing it with getattr/hasattr."""

import re
from pathlib import Path

import pytest

from facesr.methods.base import METHODS, SRMethod

SRC = Path(__file__).resolve().parents[3] / "src" / "facesr"
# hasattr(model / getattr(model / getattr(getattr(model, "model" as a whole word (not "models")
PROBE = re.compile(r"\b(?:hasattr|getattr)\(\s*(?:getattr\(\s*)?model\b")
BASE = "methods/base.py"  # the interface itself (its defaults and checks)
# Reads of declared attributes by name, not capability probes: (file under src/facesr, the line).
ALLOWED = {
    # warm_start_model compares the init model's scale and hr_size with the model's, for key in (scale, hr_size)
    ("engine/run.py", 'if getattr(init, key) != getattr(model, key):'),
    ("engine/run.py", 'f"{model.name} ({getattr(model, key)})")'),
}


def test_the_methods_are_registered():
    assert {"sr3", "score-sde", "regression", "refsr-vae"} <= set(METHODS.names())


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_is_an_srmethod_with_its_own_super_resolve_and_training_loss(name):
    cls = METHODS.get(name)
    assert isinstance(cls, type) and issubclass(cls, SRMethod) and cls is not SRMethod
    assert cls.method == name and isinstance(cls.config_class, type)
    for member in ("super_resolve", "training_loss"):
        defined_by = next(k for k in cls.__mro__ if member in vars(k))
        assert defined_by is not SRMethod, f"{cls.__name__}.{member} is SRMethod's (not implemented)"


def probes(root: Path = SRC) -> list[str]:
    """file:line: text of every getattr/hasattr on a model in src/facesr (the CLI included), outside the interface."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.as_posix() == BASE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PROBE.search(line) and (rel.as_posix(), line.strip()) not in ALLOWED:
                found.append(f"{rel.as_posix()}:{number}: {line.strip()}")
    return found


def test_no_module_probes_a_model_for_capabilities():
    found = probes()
    assert not found, "ask the model's declared interface (needs, lr_protocol, ...) instead:\n" + "\n".join(found)


def test_the_probe_search_finds_probes(tmp_path):
    """Control: the search sees each form (so the test above can fail), only whole-word ``model``, leaves
    out the interface and looks into the command line."""
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "base.py").write_text("x = getattr(model, 'needs', None)\n")
    (tmp_path / "methods" / "sr3.py").write_text("x = 1\ny = getattr(model, 'needs', None)\n")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "upscale.py").write_text("x = hasattr(model, 'needs')\n")
    (tmp_path / "engine.py").write_text("a = hasattr(model, 'is_refsr')\nb = getattr(model, 'cfg', None)\n"
                                        "c = getattr(getattr(model, 'cfg', None), 'unet', None)\n"
                                        "d = getattr( model,'x')\ne = getattr(models[0], 'x')\nf = model.needs\n")
    assert [f.split(": ", 1)[0] for f in probes(tmp_path)] == [
        "cli/upscale.py:1", "engine.py:1", "engine.py:2", "engine.py:3", "engine.py:4", "methods/sr3.py:2"]
