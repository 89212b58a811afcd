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
