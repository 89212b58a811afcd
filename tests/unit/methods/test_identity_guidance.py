"""Identity guidance (classifier-free guidance on the FASR vector) and the vector dropout that trains the null identity."""

import numpy as np
import pytest
import torch

from facesr.diffusion.wrappers import guided
from facesr.errors import FacesrError
from facesr.identity.features import FeatureTable
from facesr.nets.unet import UNetConfig
from facesr.methods.score_sde import ScoreSR, ScoreSRConfig
from facesr.engine.options import SamplingOptions
from facesr.methods.base import Conditions


def test_guided_denoiser_is_the_linear_extrapolation():
    x, sigma = torch.randn(2, 3, 4, 4), torch.tensor(2.0)
    cond = lambda x, s: 0.5 * x + s  # noqa: E731
    null = lambda x, s: -x  # noqa: E731
    for w in (0.0, 1.0, 2.5):
        want = (1 + w) * (0.5 * x + sigma) - w * (-x)
        assert torch.allclose(guided(cond, null, w)(x, sigma), want, atol=1e-5)
    assert torch.equal(guided(cond, null, 0.0)(x, sigma), cond(x, sigma))


def fasr_tiny(vector_weights: bool):
    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), time_embedding="fourier", norm_num_groups=8,
                      vector_dim=8)
    model = ScoreSR(ScoreSRConfig(unet=unet, sde="ve", hr_size=32, scale=4, preconditioning="edm")).eval()
    if vector_weights:  # the per-ResBlock denses start at zero (the model starts unconditioned): give them weights
        for dense in model.net.vector_bias:
            torch.nn.init.normal_(dense.weight, std=0.5)
    return model


def sample(model, vector, guidance, identity_scale=1.0):
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    gens = [torch.Generator().manual_seed(k) for k in range(2)]
    opts = SamplingOptions(sampler="ddim", steps=1, guidance=guidance, identity_scale=identity_scale, precision="fp32")
    return model.super_resolve(lr, Conditions(vector=vector), opts, gens)


def test_one_step_sample_is_guided_by_the_vector_against_the_zero_vector():
    """One deterministic DDIM step returns D(x, sigma_max); the output is affine in it, so away from the
    [0, 1] clamp the guided output is (1 + w) out(v) - w out(0)."""
    model = fasr_tiny(vector_weights=True)
    v = torch.randn(2, 8, generator=torch.Generator().manual_seed(2))
    with_v, with_zero = sample(model, v, 0.0), sample(model, torch.zeros_like(v), 0.0)
    w = 1.5
    got = sample(model, v, w)
    want = (1 + w) * with_v - w * with_zero
    inside = (want > 0.01) & (want < 0.99) & (with_v > 0.01) & (with_v < 0.99) & (with_zero > 0.01) & (with_zero < 0.99)
    assert inside.float().mean() > 0.3 and (with_v - with_zero).abs().max() > 1e-3
    assert torch.allclose(got[inside], want[inside], atol=1e-4)
    assert torch.equal(sample(model, v, 0.0), with_v)


def test_identity_scale_feeds_the_network_the_scaled_vector_from_the_null_identity_to_the_references():
    model = fasr_tiny(vector_weights=True)
    v = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample(model, v, 0.0, identity_scale=0.0), sample(model, torch.zeros_like(v), 0.0))
    for s in (0.5, 0.75):
        assert torch.equal(sample(model, v, 0.0, identity_scale=s), sample(model, s * v, 0.0))
        assert torch.equal(sample(model, v, 1.0, identity_scale=s), sample(model, s * v, 1.0))  # guided from s v
    assert (sample(model, v, 0.0, identity_scale=0.5) - sample(model, v, 0.0)).abs().max() > 1e-3


def test_identity_scale_is_refused_for_models_without_an_identity_vector_and_below_zero():
    torch.manual_seed(0)
    plain = ScoreSR(ScoreSRConfig(unet=UNetConfig(block_out_channels=(32, 32), attention_levels=(), time_embedding="fourier"),
                                  hr_size=32))
    with pytest.raises(FacesrError, match="identity_scale weighs a FASR model's identity vector"):
        SamplingOptions.for_model(plain, identity_scale=0.5)
    assert SamplingOptions.for_model(plain, identity_scale=1.0).identity_scale == 1
    with pytest.raises(FacesrError, match="identity_scale must be 0 or more"):
        SamplingOptions.for_model(fasr_tiny(False), identity_scale=-0.5)


def test_guidance_does_nothing_when_the_model_ignores_the_vector():
    model = fasr_tiny(vector_weights=False)  # zero-initialised vector denses: D(v) = D(0)
    v = torch.randn(2, 8)
    assert torch.allclose(sample(model, v, 3.0), sample(model, v, 0.0), atol=1e-6)


def test_guidance_doubles_the_network_evaluations_of_fasr_models_only():
    opts = SamplingOptions(steps=5, samples=4, guidance=1.5)
    assert fasr_tiny(False).network_evaluations(opts) == 2 * 5 * 4
    torch.manual_seed(0)
    plain = ScoreSR(ScoreSRConfig(unet=UNetConfig(block_out_channels=(32, 32), attention_levels=(), time_embedding="fourier"),
                                  hr_size=32))
    assert plain.network_evaluations(opts) == 5 * 4
    with pytest.raises(FacesrError, match="guidance must be 0 or more"):
        SamplingOptions.for_model(fasr_tiny(False), guidance=-1.0)
    with pytest.raises(FacesrError, match="guidance is for FASR models"):
        SamplingOptions.for_model(plain, guidance=1.0)
    assert SamplingOptions.for_model(plain, guidance=0.0).guidance == 0


def test_vector_dropout_replaces_a_share_of_vectors_by_zeros(sample_faces):
    from facesr.data.datasets import HRFolderDataset
    from facesr.degrade.protocol import LRProtocol

    names = sorted(p.name for p in sample_faces.glob("*.png"))
    table = FeatureTable(names, np.ones((len(names), 5)), {"kind": "per_image"})
    make = lambda p: HRFolderDataset([sample_faces], LRProtocol.of("bicubic", 8), 128, 32, vectors=[table],  # noqa: E731
                                     vector_dropout=p)
    g = torch.Generator().manual_seed(0)
    drawn = [make(0.3).item(i % len(names), g)["vector"] for i in range(400)]
    zeros = sum(bool((v == 0).all()) for v in drawn)
    assert all(bool((v == 0).all()) or bool((v == 1).all()) for v in drawn)
    assert 0.22 < zeros / 400 < 0.38  # binomial(400, 0.3): std 0.023
    assert all(bool((make(0.0).item(i, g)["vector"] == 1).all()) for i in range(len(names)))


def test_vector_dropout_must_be_a_probability():
    from facesr.train.config import DataConfig

    with pytest.raises(FacesrError, match="vector_dropout"):
        DataConfig(vector_dropout=1.0)


def test_gradient_guided_denoiser_steps_w_sigma_along_the_normalised_gradient():
    from facesr.diffusion.wrappers import gradient_guided

    x, a = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    denoiser = lambda x, s: 0.5 * x  # noqa: E731
    objective = lambda x0: -((x0 - a) ** 2).flatten(1).sum(1)  # noqa: E731  gradient -2 (x0 - a)
    sigma = torch.tensor([1.5, 0.5])
    got = gradient_guided(denoiser, objective, 0.1)(x, sigma)
    g = -2 * (0.5 * x - a)
    want = 0.5 * x + 0.1 * sigma.view(-1, 1, 1, 1) * g / g.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)
    torch.testing.assert_close(got, want)
    with torch.no_grad():  # the samplers run without autograd; the guidance turns it on for itself
        torch.testing.assert_close(gradient_guided(denoiser, objective, 0.1)(x, sigma), want)


def test_identity_gradient_moves_fasr_toward_the_vector_in_dlibs_space(sample_faces):
    from facesr.identity.loss import identity_network
    from facesr.io.images import list_images, read_image, to_tensor

    torch.manual_seed(0)
    unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), time_embedding="fourier", norm_num_groups=8,
                      vector_dim=128, vector_embedder="dlib")
    model = ScoreSR(ScoreSRConfig(unet=unet, sde="ve", hr_size=32, scale=4, preconditioning="edm")).eval()
    net = identity_network("cpu")
    face = to_tensor(read_image(list_images(sample_faces)[0]))[None]
    v = net.embed_chips(face).detach().expand(2, -1)
    lr = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def score(w):
        opts = SamplingOptions(sampler="ddim", steps=2, strength=0.3, identity_gradient=w, precision="fp32")
        out = model.super_resolve(lr, Conditions(vector=v), opts, [torch.Generator().manual_seed(k) for k in range(2)])
        return (net.embed_chips(out) * v).sum(1)

    plain, guided_ = score(0.0), score(1.0)
    assert (guided_ > plain + 0.005).all(), (plain, guided_)
    plain_unet = UNetConfig(block_out_channels=(32, 32), attention_levels=(), time_embedding="fourier", norm_num_groups=8)
    unconditioned = ScoreSR(ScoreSRConfig(unet=plain_unet, sde="ve", hr_size=32, scale=4))
    with pytest.raises(FacesrError, match="identity_gradient is for FASR models on dlib vectors.*takes -$"):
        SamplingOptions.for_model(unconditioned, identity_gradient=1.0)
    with pytest.raises(FacesrError, match="takes dlib 8-d identity vector"):
        SamplingOptions.for_model(fasr_tiny(False), identity_gradient=1.0)
