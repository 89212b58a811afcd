"""A recipe whose samples are one-step estimates of the mean names the steps that make them draws; the report,
uncertainty maps and restore's maps take them, everything else takes the recipe."""

from types import SimpleNamespace

import pytest

from facesr.engine.options import SamplingOptions, mean_estimates, model_recipe
from facesr.errors import FacesrError
from facesr.methods.hub import DEFAULT_MODEL, load_model
from facesr.workflows.restore import Restorer


def fake(sampling):
    return SimpleNamespace(sampling=sampling, check_options=lambda opts: None)


def test_draws_come_over_the_recipe_and_given_options_over_both():
    model = fake({"sampler": "ddim", "steps": 1, "strength": 0.5, "samples": 8, "draws": {"steps": 8}})
    assert model_recipe(model) == {"sampler": "ddim", "steps": 1, "strength": 0.5, "samples": 8}
    assert model_recipe(model, draws=True)["steps"] == 8
    assert SamplingOptions.for_model(model).steps == 1
    assert SamplingOptions.for_model(model, draws=True).steps == 8
    assert SamplingOptions.for_model(model, draws=True, steps=3).steps == 3
    assert SamplingOptions.for_model(fake({"steps": 5}), draws=True).steps == 5  # no "draws": the recipe itself


def test_a_bad_option_in_draws_is_refused_like_one_in_the_recipe():
    with pytest.raises(FacesrError, match="steps must be at least 1"):
        SamplingOptions.for_model(fake({"steps": 1, "draws": {"steps": 0}}), draws=True)


def test_the_default_model_draws_real_samples_where_its_recipe_estimates_the_mean():
    model = load_model(DEFAULT_MODEL)
    assert mean_estimates(model, SamplingOptions.for_model(model))
    assert not mean_estimates(model, SamplingOptions.for_model(model, draws=True))
    assert Restorer(model=DEFAULT_MODEL, draws=True).load(DEFAULT_MODEL)[1].steps == 8
    assert Restorer(model=DEFAULT_MODEL).load(DEFAULT_MODEL)[1].steps == 1



@pytest.mark.parametrize("name", ["msrresnet-x8", "refsr-vae-x8", "sisr-vae-x8", "sr3-x8"])
def test_a_model_declares_whether_its_samples_differ_as_they_do(name):
    """``draws`` (the report's stability, uncertainty maps): against two samples of each kind of bundled model."""
    from pathlib import Path

    import torch

    import facesr
    from facesr.engine.conditions import conditions_for
    from facesr.engine.run import super_resolve_tensors
    from facesr.io.images import read_image, to_tensor

    faces = sorted((Path(facesr.__file__).parent / "samples" / "faces").glob("*.png"))
    model = load_model(name)
    lr = model.lr_protocol.degrade(to_tensor(read_image(faces[0]))[None])[0][0]
    opts = SamplingOptions.for_model(model, samples=2, precision="fp32", **({"steps": 2} if model.uses_sampler else {}))
    conditions = conditions_for(model, 1, ref=faces[1] if model.needs.reference else None)
    _, _, (samples,) = super_resolve_tensors(model, [lr], ["face"], opts, "cpu", keep_samples=True, conditions=conditions)
    assert model.draws == (not torch.equal(samples[0], samples[1]))


@pytest.mark.parametrize("name", ["sr3-x8", "fasr-x8"])
def test_a_distilled_model_draws_with_its_few_step_recipe(name):
    """These are students distilled to make their teachers' draws in one step: their recipe's samples are draws."""
    model = load_model(name)
    opts = SamplingOptions.for_model(model, draws=True)
    assert opts.steps == 1 and model.network_evaluations(opts) <= 8
    assert not mean_estimates(model, opts)
    assert mean_estimates(model, SamplingOptions.for_model(model, strength=0.5))  # not where it learnt to draw
