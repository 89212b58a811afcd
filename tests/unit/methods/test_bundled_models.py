"""Every bundled model: within the size limit, with a model card, loadable, and better than bicubic on a sample face."""

import pytest
import torch

from facesr.io.images import list_images, read_image, to_tensor, to_uint8
from facesr.degrade.resample import quantize
from facesr.metrics import psnr
from facesr.methods.hub import WEIGHTS_DIR, load_model

MAX_BYTES = 25 * 1024 * 1024
BUNDLED = sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/config.json"))


def test_there_are_bundled_models():
    assert {"sr3-x8", "msrresnet-x8", "sde-ve-x8"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_has_card_and_fits_the_limit(name):
    folder = WEIGHTS_DIR / name
    card = (folder / "README.md").read_text()
    assert "## How it was made" in card and "## Measured" in card and "facesr train" in card
    weights = list(folder.glob("*.safetensors"))
    assert weights and all(f.stat().st_size <= MAX_BYTES for f in weights)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_restores_a_sample_face(name, sample_faces):
    """With its recommended recipe (what `facesr upscale` runs by default), the model beats bicubic."""
    from facesr.engine.options import SamplingOptions
    from facesr.engine.run import super_resolve_tensors
    from facesr.methods.base import Conditions

    model = load_model(name).eval()
    if model.lr_protocol.degradation not in (None, "photo"):  # photo: the operator's LR is one of its draws (m = 16)
        pytest.skip("blind model: its LR comes from a random degradation, scored in its own test")
    face = list_images(sample_faces)[0]
    hr = to_tensor(read_image(face))[None]
    lr = quantize(model.operator.down(hr))
    cond = Conditions()
    if model.needs.reference:
        cond.ref = hr[0]  # the same face as its own reference: the easiest case
    if model.needs.vector_dim:  # FASR: the LR view of the face itself
        from facesr.engine.conditions import model_embedder

        lr_img = model.lr_protocol.lr_image(read_image(face))[0]
        cond.vector = torch.from_numpy(model_embedder(model).embed([lr_img])[0])
    opts = SamplingOptions.for_model(model)
    with torch.no_grad():
        sr = super_resolve_tensors(model, [lr[0].repeat(model.needs.frames, 1, 1)], [face.name], opts, "cpu",
                                   conditions=[cond])[0]
    up = model.operator.up(lr).clamp(0, 1)
    assert sr.shape == hr.shape[1:] and float(sr.min()) >= 0 and float(sr.max()) <= 1
    assert psnr(to_uint8(sr), to_uint8(hr[0])) > psnr(to_uint8(up[0]), to_uint8(hr[0]))


@pytest.mark.parametrize("name", BUNDLED)
def test_the_models_listing_shows_what_each_model_pulls_toward(name):
    """`facesr models` reads config.json alone; its identity column must say what the loaded model's condition
    pulls toward (the reference gate and the judges go by that)."""
    from facesr.methods.hub import bundled_models

    column = {m["name"]: m["identity"] for m in bundled_models()}[name]
    space = load_model(name).identity_space
    assert (column == "-") == (space is None) and (space is None or column.startswith(space))
