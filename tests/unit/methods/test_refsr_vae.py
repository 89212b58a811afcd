"""RefSR-VAE / SISR-VAE: losses, building blocks, inference protocol, saving, training sanity."""

import pytest
import torch
from safetensors.torch import save_file
from torch.distributions import Normal, kl_divergence

from facesr.errors import FacesrError
from facesr.engine.options import SamplingOptions
from facesr.methods.base import Conditions
from facesr.methods.hub import load_model
from facesr.methods.refsr_vae import (
    RefSRVAE,
    RefSRVAEConfig,
    UpProjection,
    caffe_preprocess,
    kl_to_prior,
    load_vgg19_conv5_4,
    mvn,
)

VARIANTS = ["refsr", "sisr"]


def tiny_config(variant="refsr", **overrides) -> RefSRVAEConfig:
    """x4 to 32x32 (LR 8x8) with widths of a few channels."""
    widths = dict(trunk_channels=(4, 8, 8, 8), skip_channels=(8, 4), encoder_channels=(8, 4, 4), encoder_fc=(16, 16),
                  latent=8, noise_fc=8, decoder_fc=(16, 16), decoder_map_channels=4, upproj_channels=4)
    return RefSRVAEConfig(**{"variant": variant, "scale": 4, "hr_size": 32, **widths, **overrides})


def tiny_model(variant="refsr", seed=0, **overrides) -> RefSRVAE:
    torch.manual_seed(seed)
    return RefSRVAE(tiny_config(variant, **overrides)).eval()


def rand(*shape, seed):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def restore(model, lr, ref=None, generator=None):
    """super_resolve with ``ref`` as the batch's Conditions (None: no reference)."""
    return model.super_resolve(lr, Conditions(ref=ref), SamplingOptions(precision="fp32"), generator)


# --- losses and building blocks -----------------------------------------------------------


def test_kl_matches_torch_distributions_and_the_caffe_formula():
    mu = torch.randn(4, 16, dtype=torch.float64)
    log_sigma = torch.randn(4, 16, dtype=torch.float64) - 1
    sigma = log_sigma.exp()
    ours = kl_to_prior(mu, log_sigma)
    torch.testing.assert_close(ours, kl_divergence(Normal(mu, sigma), Normal(0.0, 0.1)))
    torch.testing.assert_close(ours, 50 * mu**2 + 50 * sigma**2 - torch.log(10 * sigma) - 0.5)


def test_mvn_normalises_each_sample_and_matches_a_loop():
    x = torch.randn(3, 40) * torch.tensor([[0.1], [5.0], [30.0]]) + torch.tensor([[2.0], [-7.0], [0.5]])
    out = mvn(x)
    torch.testing.assert_close(out.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(1, unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    for row, got in zip(x, out):
        centred = row - row.mean()
        torch.testing.assert_close(got, centred / (centred.pow(2).mean().sqrt() + 1e-9))
    # all ReLUs off: a constant vector maps to zeros, with finite gradients
    flat = torch.zeros(1, 8, requires_grad=True)
    result = mvn(flat)
    result.sum().backward()
    assert torch.equal(result, torch.zeros(1, 8)) and torch.isfinite(flat.grad).all()


def prelu(x, slope):
    return torch.where(x >= 0, x, slope * x)


def test_up_projection_doubles_the_size_and_follows_its_formula():
    torch.manual_seed(0)
    unit = UpProjection(5, 4)
    acts = [unit.h0_act, unit.l0_act, unit.h1_act, unit.out_act]
    for value, act in zip((0.1, 0.2, 0.3, 0.4), acts):  # distinct slopes, so a swapped activation shows
        act.weight.data.fill_(value)
    x = torch.randn(2, 5, 6, 7)
    out = unit(x)
    assert out.shape == (2, 4, 12, 14)
    h0 = prelu(unit.h0_deconv(x), 0.1)
    l0 = prelu(unit.l0_conv(h0), 0.2)
    e = unit.x_proj(x) - l0
    h1 = prelu(unit.h1_deconv(e), 0.3)
    torch.testing.assert_close(out, prelu(unit.h0_proj(h0) + h1, 0.4))
    assert all(act.weight.numel() == 1 for act in acts)  # one shared slope (Caffe channel_shared)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_decoder_joins_the_skip_as_in_the_prototxt(variant):
    """RefSR: PReLU(conv) + skip; SISR: PReLU(concat(skip, conv)), into the first up-projection unit."""
    model = tiny_model(variant)
    model.decoder_act.weight.fill_(0.3)
    seen = []
    model.upproj[0].register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    up, z, skip = rand(1, 3, 32, 32, seed=1), torch.randn(1, 8), torch.randn(1, 4, 4, 4)
    model.decode(z, skip, up)
    conv = model.decoder_conv(model.decoder_fc(z).view(1, 4, 4, 4))
    expected = prelu(conv, 0.3) + skip if variant == "refsr" else prelu(torch.cat([skip, conv], 1), 0.3)
    torch.testing.assert_close(seen[0], expected)


@pytest.mark.parametrize("size", [4, 7, 16])
def test_caffe_deconvolution_doubles_and_convolution_halves(size):
    x = torch.randn(1, 3, size, size)
    up = torch.nn.ConvTranspose2d(3, 3, 6, 2, 2)(x)
    assert up.shape[-2:] == (2 * size, 2 * size)
    assert torch.nn.Conv2d(3, 3, 6, 2, 2)(up).shape[-2:] == (size, size)


def test_caffe_preprocessing_is_bgr_times_255_minus_means():
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    expected = torch.tensor([0.0 - 103.939, 127.5 - 116.779, 255.0 - 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(caffe_preprocess(rgb), expected)


# --- model size ------------------------------------------------------------------------


def count_on_meta(cfg: RefSRVAEConfig) -> int:
    with torch.device("meta"):
        model = RefSRVAE(cfg)
    assert all(p.is_meta for p in model.parameters())
    return sum(p.numel() for p in model.parameters())


def test_reference_parameter_counts():
    """Reference widths: RefSR 198,667,408 parameters, SISR 199,922,832 (its encoder reads
    1024 channels and its first up-projection unit 128)."""
    refsr = count_on_meta(RefSRVAEConfig())
    assert abs(refsr - 198.7e6) / 198.7e6 < 0.005
    assert refsr == 198_667_408
    assert count_on_meta(RefSRVAEConfig(variant="sisr")) == 199_922_832


def test_narrow_preset_fits_in_25_mb():
    """Narrow preset: RefSR 5,148,928 parameters (20.6 MB float32), SISR 5,260,544 (21.0 MB)."""
    counts = {v: count_on_meta(RefSRVAEConfig.preset("narrow", variant=v)) for v in VARIANTS}
    assert counts == {"refsr": 5_148_928, "sisr": 5_260_544}
    assert all(4 * n < 25e6 for n in counts.values())


# --- inference -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shape_range_and_evaluation_count(variant):
    model = tiny_model(variant)
    sr = restore(model, rand(2, 3, 8, 8, seed=1), ref=rand(2, 3, 32, 32, seed=2), generator=gen(0))
    assert sr.shape == (2, 3, 32, 32) and sr.min() >= 0 and sr.max() <= 1
    assert model.network_evaluations(None) == 1
    assert tiny_model(variant, self_ensemble=True).network_evaluations(None) == 8


@pytest.mark.parametrize("variant", VARIANTS)
def test_self_ensemble_of_a_zero_residual_returns_up_exactly(variant):
    model = tiny_model(variant, self_ensemble=True)
    model.output_conv.weight.data.zero_()
    model.output_conv.bias.data.zero_()
    lr = rand(2, 3, 8, 8, seed=1)
    sr = restore(model, lr, ref=rand(2, 3, 32, 32, seed=2), generator=gen(0))
    assert torch.equal(sr, model.upsample(lr))


@pytest.mark.parametrize("variant", VARIANTS)
def test_self_ensemble_is_the_average_over_eight_views(variant):
    model = tiny_model(variant, self_ensemble=True)
    lr, ref = rand(2, 3, 8, 8, seed=1), rand(2, 3, 32, 32, seed=2)
    up = model.upsample(lr)
    sigma = torch.randn(2, model.cfg.latent, generator=gen(5))  # SISR's draw, shared by the views
    total = torch.zeros_like(up)
    with torch.no_grad():
        for flip in (False, True):
            for turns in range(4):
                def forward_view(x, turns=turns, flip=flip):
                    return torch.rot90(torch.flip(x, [3]) if flip else x, turns, [2, 3])
                out = torch.rot90(model.predict(forward_view(up), forward_view(ref), sigma), -turns, [2, 3])
                total += torch.flip(out, [3]) if flip else out
    expected = (total / 8).clamp(0, 1)
    got = restore(model, lr, ref=ref, generator=gen(5))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    model.cfg.self_ensemble = False
    single = restore(model, lr, ref=ref, generator=gen(5))
    assert (single - got).abs().max() > 1e-4  # a random network is not rotation-invariant


def test_refsr_follows_the_reference_and_is_deterministic():
    model = tiny_model("refsr")
    lr, ref = rand(1, 3, 8, 8, seed=1), rand(1, 3, 32, 32, seed=2)
    a = restore(model, lr, ref=ref)
    assert torch.equal(a, restore(model, lr, ref=ref, generator=gen(9)))  # nothing is drawn
    other = restore(model, lr, ref=rand(1, 3, 32, 32, seed=3))
    assert (a - other).abs().max() > 1e-4
    # one reference serves a whole batch
    batch = restore(model, torch.cat([lr, lr]), ref=ref[0])
    torch.testing.assert_close(batch, torch.cat([a, a]), atol=1e-6, rtol=0)


def test_gated_fusion_starts_from_sisr_and_opens_a_spatial_path_for_the_reference():
    sisr, gated = tiny_model("sisr"), tiny_model("refsr", seed=1, fusion="gated")
    missing, unexpected = gated.load_state_dict(sisr.state_dict(), strict=False)  # init_from a SISR model fits
    assert sorted(missing) == ["ref_gate.bias", "ref_gate.weight"] and not unexpected
    assert gated.ref_gate.weight.abs().sum() == 0 and gated.ref_gate.bias.abs().sum() == 0
    with torch.no_grad():  # FC layers strong enough that the latent visibly moves the output
        for layer in gated.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0, 0.5)
    lr, ref, ref2 = rand(1, 3, 8, 8, seed=1), rand(1, 3, 32, 32, seed=2), rand(1, 3, 32, 32, seed=3)

    def by_hand(model):  # encoder on [trunk(up), trunk(ref)], skip on trunk(up) + gate(trunk(ref))
        up = model.upsample(lr)
        with torch.no_grad():
            features, ref_features = model.trunk(up), model.trunk(ref)
            mu, log_sigma = model.encoder(torch.cat([features, ref_features], 1)).chunk(2, 1)
            skip = model.skip(features + model.ref_gate(ref_features))
            return model.decode(mu + log_sigma.exp() * model.noise(up), skip, up).clamp(0, 1)

    torch.testing.assert_close(restore(gated, lr, ref=ref), by_hand(gated))
    assert (restore(gated, lr, ref=ref) - restore(gated, lr, ref=ref2)).abs().max() > 1e-5  # through the latent
    with torch.no_grad():  # the latent cut and the gate shut: the reference has no way in
        gated.encoder[-1].weight.zero_()
        gated.encoder[-1].bias.zero_()
    assert torch.equal(restore(gated, lr, ref=ref), restore(gated, lr, ref=ref2))
    with torch.no_grad():  # the gate open: the reference reaches the skip
        gated.ref_gate.weight.normal_(0, 0.5)
    torch.testing.assert_close(restore(gated, lr, ref=ref), by_hand(gated))
    assert (restore(gated, lr, ref=ref) - restore(gated, lr, ref=ref2)).abs().max() > 1e-5


def test_reference_identity_starts_shut_and_then_modulates_the_trunk_by_who_the_reference_is():
    from facesr.identity.loss import identity_network

    gated = tiny_model("refsr", seed=1, fusion="gated")
    with_id = tiny_model("refsr", seed=2, fusion="gated", ref_identity=True)
    missing, unexpected = with_id.load_state_dict(gated.state_dict(), strict=False)  # init_from the gated model fits
    assert sorted(missing) == ["ref_film.0.bias", "ref_film.0.weight", "ref_film.2.bias", "ref_film.2.weight"]
    assert not unexpected
    assert gated.identity_networks == () and with_id.identity_networks == ("dlib",)
    lr, ref, ref2 = rand(2, 3, 8, 8, seed=1), rand(2, 3, 32, 32, seed=2), rand(2, 3, 32, 32, seed=3)
    torch.testing.assert_close(with_id.reference_identity(ref), identity_network("cpu").embed_chips(ref))
    assert torch.equal(restore(with_id, lr, ref=ref), restore(gated, lr, ref=ref))  # the last layer starts at zero
    with torch.no_grad():
        with_id.ref_film[2].weight.normal_(0, 0.05)
        with_id.ref_film[2].bias.normal_(0, 0.1)

    def by_hand(identity):  # trunk(up) x (1 + scale) + shift, then the gated graph
        up = with_id.upsample(lr)
        with torch.no_grad():
            scale, shift = with_id.ref_film(identity * 128**0.5).chunk(2, 1)
            features = with_id.trunk(up) * (1 + scale[..., None, None]) + shift[..., None, None]
            ref_features = with_id.trunk(ref)
            mu, log_sigma = with_id.encoder(torch.cat([features, ref_features], 1)).chunk(2, 1)
            skip = with_id.skip(features + with_id.ref_gate(ref_features))
            return with_id.decode(mu + log_sigma.exp() * with_id.noise(up), skip, up).clamp(0, 1)

    torch.testing.assert_close(restore(with_id, lr, ref=ref), by_hand(with_id.reference_identity(ref)))
    # the descriptor of another face changes the output with the reference's pixels unchanged
    moved = by_hand(with_id.reference_identity(ref2))
    assert (moved - restore(with_id, lr, ref=ref)).abs().max() > 1e-4
    # one reference for the whole batch is read once and serves every input as it would alone
    shared = restore(with_id, lr, ref=ref[0])
    for i in range(2):
        torch.testing.assert_close(shared[i : i + 1], restore(with_id, lr[i : i + 1], ref=ref[:1]), atol=1e-6, rtol=0)
    # the self-ensemble reads one descriptor for every view
    ensemble = tiny_model("refsr", seed=2, fusion="gated", ref_identity=True, self_ensemble=True)
    ensemble.load_state_dict(with_id.state_dict())
    out = restore(ensemble, lr, ref=ref)
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()


def test_identity_refinement_moves_the_output_toward_the_reference_s_descriptor():
    """``identity_refine``: the plain output, then ``toward_identity`` with the reference's dlib descriptor; the
    null identity (the reference gate's refusal) keeps the plain output; the gate and the judges see dlib."""
    from facesr.engine.refs_gate import gated
    from facesr.identity.guidance import IdentityRefine, toward_identity

    plain = tiny_model("refsr", seed=1, fusion="gated")
    refine = IdentityRefine(steps=2, step=0.01)
    refined = tiny_model("refsr", seed=1, fusion="gated", identity_refine=refine)
    assert plain.identity_networks == () and not gated(plain)
    assert refined.identity_networks == ("dlib",) and refined.identity_space == "dlib" and gated(refined)
    lr, ref = rand(2, 3, 8, 8, seed=1), rand(2, 3, 32, 32, seed=2)
    base = restore(plain, lr, ref=ref)
    want = toward_identity(base, lr, refined.reference_identity(ref), refined.lr_protocol, refine)
    got = restore(refined, lr, ref=ref)
    torch.testing.assert_close(got, want)
    assert (got - base).abs().max() > 1e-3
    vector = torch.stack([refined.reference_identity(ref[:1])[0], torch.zeros(128)])  # one used, one refused
    mixed = refined.super_resolve(lr, Conditions(vector=vector, ref=ref), SamplingOptions(precision="fp32"))
    torch.testing.assert_close(mixed[:1], got[:1])
    torch.testing.assert_close(mixed[1:], base[1:])
    with pytest.raises(FacesrError, match="identity_refine needs variant 'refsr'"):
        tiny_config("sisr", identity_refine=refine)


def test_reference_identity_trains_its_film_layers():
    model = tiny_model("refsr", fusion="gated", ref_identity=True).train()
    loss = model(training_batch(model))
    loss.backward()
    assert model.ref_film[2].weight.grad.abs().sum() > 0  # the zero layer receives a gradient
    assert model.ref_film[0].weight.grad.abs().sum() == 0  # and, its output weights being zero, the first none yet


def test_guidance_extrapolates_from_the_null_identity_to_the_reference_s():
    model = tiny_model("refsr", fusion="gated", ref_identity=True)
    with torch.no_grad():
        model.ref_film[2].weight.normal_(0, 0.05)
    lr, ref = rand(2, 3, 8, 8, seed=1), rand(2, 3, 32, 32, seed=2)
    guided_opts = SamplingOptions(precision="fp32", guidance=2.0)
    assert model.network_evaluations(guided_opts) == 2 and model.network_evaluations(SamplingOptions()) == 1
    with torch.no_grad():
        up, identity = model.upsample(lr), model.reference_identity(ref)
        cond = model.predict(up, ref, identity=identity, keep=torch.ones(2, dtype=torch.bool))
        null = model.predict(up, ref, identity=identity, keep=torch.zeros(2, dtype=torch.bool))
        want = (cond + 2.0 * (cond - null)).clamp(0, 1)
        guided = model.super_resolve(lr, Conditions(ref=ref), guided_opts)
        torch.testing.assert_close(guided, want)
        assert (guided - restore(model, lr, ref=ref)).abs().max() > 1e-4
        # a face on the null identity (the gate's refusal) is the same guided or not
        nulls = Conditions(ref=ref, vector=torch.zeros(2, 128))
        torch.testing.assert_close(model.super_resolve(lr, nulls, guided_opts),
                                   model.super_resolve(lr, nulls, SamplingOptions(precision="fp32")))
    with pytest.raises(FacesrError, match="guidance is for FASR models and RefSR-VAE with ref_identity"):
        tiny_model("refsr", fusion="gated").check_options(guided_opts)


def test_identity_weight_adds_the_identity_loss_of_sr_against_hr():
    from facesr.identity.loss import identity_loss

    plain = tiny_model("refsr", fusion="gated")
    weighted = tiny_model("refsr", fusion="gated", identity_weight=0.5)
    weighted.load_state_dict(plain.state_dict())
    assert weighted.identity_networks == ("dlib",) and plain.identity_networks == ()
    batch = training_batch(plain)
    with torch.no_grad():
        base = plain(batch).item()
        total = weighted(batch).item()
        skip, mu, log_sigma = plain.posterior(batch["up"], batch["ref"])
        sr = plain.decode(mu + log_sigma.exp() * plain.noise(batch["up"]), skip, batch["up"])
        want = identity_loss(sr, batch["hr"]).item()
    assert weighted.last_losses["identity"] == pytest.approx(want, rel=1e-5)
    assert total == pytest.approx(base + 0.5 * want, rel=1e-5)


def test_identity_from_hr_trains_on_the_face_s_own_descriptor():
    from_ref = tiny_model("refsr", fusion="gated", ref_identity=True)
    from_hr = tiny_model("refsr", fusion="gated", ref_identity=True, identity_from="hr")
    with torch.no_grad():
        from_ref.ref_film[2].weight.normal_(0, 0.5)
    from_hr.load_state_dict(from_ref.state_dict())
    batch = training_batch(from_ref)
    with torch.no_grad():
        own = from_ref({**batch, "ref": batch["hr"]}, gen(0))  # the pixels' reference unchanged below
        skip, mu, log_sigma = from_ref.posterior(batch["up"], batch["ref"], from_ref.reference_identity(batch["hr"]))
        sr = from_ref.decode(mu + log_sigma.exp() * from_ref.noise(batch["up"]), skip, batch["up"])
        from_hr(batch, gen(0))
        assert from_hr.last_losses["pixel"] == pytest.approx((sr - batch["hr"]).abs().mean().item(), rel=1e-5)
        assert abs(from_hr.last_losses["pixel"] - own.item()) > 1e-6  # not the HR as the pixels' reference too


def test_identity_dropout_turns_the_path_off_for_the_drawn_faces():
    model = tiny_model("refsr", fusion="gated", ref_identity=True, identity_dropout=0.5)
    with torch.no_grad():
        model.ref_film[2].weight.normal_(0, 0.5)
    batch = {k: v.repeat(4, 1, 1, 1) for k, v in training_batch(model).items()}  # 8 faces, 4 copies of 2
    keep = torch.rand(8, generator=gen(5)) >= 0.5
    assert 0 < keep.sum() < 8

    def per_face(identity, keep_mask):  # L1 of each face by the graph with the given path
        skip, mu, log_sigma = model.posterior(batch["up"], batch["ref"], identity, keep_mask)
        sr = model.decode(mu + log_sigma.exp() * model.noise(batch["up"]), skip, batch["up"])
        return (sr - batch["hr"]).abs().mean((1, 2, 3))

    with torch.no_grad():
        identity = model.reference_identity(batch["ref"])
        on, off = per_face(identity, None), per_face(None, None)
        mixed = per_face(identity, keep)
        assert (on - off).abs().min() > 0
        torch.testing.assert_close(mixed, torch.where(keep, on, off))
        model(batch, gen(5))
        assert model.last_losses["pixel"] == pytest.approx(mixed.mean().item(), rel=1e-5)


def test_sisr_draw_follows_the_generator_and_ignores_the_reference():
    model = tiny_model("sisr")
    lr = rand(2, 3, 8, 8, seed=1)
    a = restore(model, lr, generator=gen(0))
    assert torch.equal(a, restore(model, lr, ref=rand(2, 3, 32, 32, seed=2), generator=gen(0)))
    b = restore(model, lr, generator=gen(1))
    assert (a - b).abs().max() > 1e-5
    # one generator per image: an image's output does not depend on its batch
    per_image = restore(model, lr, generator=[gen(3), gen(4)])
    alone = restore(model, lr[1:], generator=[gen(4)])
    torch.testing.assert_close(per_image[1:], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_and_load_round_trip(tmp_path, variant):
    torch.manual_seed(0)
    model = RefSRVAE(RefSRVAEConfig.preset("narrow", variant=variant, hr_size=32, scale=4)).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"))
    assert isinstance(loaded, RefSRVAE) and loaded.cfg == model.cfg
    lr, ref = rand(1, 3, 8, 8, seed=1), rand(1, 3, 32, 32, seed=2)
    assert torch.equal(restore(loaded, lr, ref=ref, generator=gen(0)),
                       restore(model, lr, ref=ref, generator=gen(0)))
    assert isinstance(RefSRVAE.from_pretrained(tmp_path / "m"), RefSRVAE)


def test_degrade_is_the_quantised_operator():
    model = tiny_model()
    hr = rand(2, 3, 32, 32, seed=1)
    lr, record = model.lr_protocol.degrade(hr, ["a.png", "b.png"])
    assert record is None and lr.shape == (2, 3, 8, 8)
    assert torch.equal(lr, torch.round(model.operator.down(hr).clamp(0, 1) * 255) / 255)


# --- errors ----------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    model = tiny_model("refsr")
    lr, ref = rand(1, 3, 8, 8, seed=1), rand(1, 3, 32, 32, seed=2)
    with pytest.raises(FacesrError, match=r"needs a reference photo.*conditions\.ref"):
        restore(model, lr)
    with pytest.raises(FacesrError, match=r"reference must be an RGB 32x32 face.*got shape \(1, 3, 16, 16\)"):
        restore(model, lr, ref=rand(1, 3, 16, 16, seed=2))
    assert model.input_problem(8, 8) is None
    assert "8x8" in model.input_problem(8, 16)
    with pytest.raises(FacesrError, match=r"fix the input at 8x8.*got 16x16"):
        restore(model, rand(1, 3, 16, 16, seed=1), ref=ref)
    hr = rand(1, 3, 32, 32, seed=3)
    with pytest.raises(FacesrError, match="reference"):
        model({"hr": hr, "up": hr, "lr": lr})
    with pytest.raises(FacesrError, match="patch_size to 32"):
        model({"hr": hr[..., :16, :16], "up": hr[..., :16, :16], "lr": lr, "ref": ref})


@pytest.mark.parametrize("overrides, message", [
    ({"variant": "both"}, "variant"),
    ({"hr_size": 36}, "multiple of 8"),
    ({"hr_size": 32, "scale": 3}, "divisible"),
    ({"trunk_channels": (4, 8, 8)}, "trunk_channels must be 4"),
    ({"latent": 0}, "latent"),
    ({"kl_weight": -1.0}, "kl_weight"),
    ({"fusion": "concat"}, "fusion"),
    ({"variant": "sisr", "ref_identity": True}, "ref_identity needs variant"),
    ({"fusion": "sum", "ref_identity": True}, "ref_identity needs fusion"),
    ({"identity_dropout": 1.0}, "identity_dropout"),
    ({"identity_weight": -0.1}, "identity_weight"),
    ({"identity_from": "aux"}, "identity_from"),
])
def test_config_validation(overrides, message):
    with pytest.raises(FacesrError, match=message):
        tiny_config(**overrides)


def test_unknown_preset():
    with pytest.raises(FacesrError, match="narrow"):
        RefSRVAEConfig.preset("wide")


# --- training --------------------------------------------------------------------------


def training_batch(model, seed=0):
    hr = rand(2, 3, 32, 32, seed=seed)
    lr, _ = model.lr_protocol.degrade(hr)
    return {"hr": hr, "lr": lr, "up": model.upsample(lr), "ref": rand(2, 3, 32, 32, seed=seed + 1)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_few_adam_steps_reduce_the_loss(variant):
    model = tiny_model(variant).train()
    batch = training_batch(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(20):
        loss = model(batch)
        assert set(model.last_losses) == {"pixel", "kl"}
        assert loss.item() == pytest.approx(model.last_losses["pixel"] + 0.0208 * model.last_losses["kl"], rel=1e-5)
        losses.append(loss.item())
        optimiser.zero_grad()
        loss.backward()
        if step == 0:  # every layer takes part in training
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        optimiser.step()
    assert losses[-1] < 0.5 * losses[0]


def torchvision_vgg19_state(seed=0) -> dict:
    """Random weights in torchvision's vgg19 key layout (features.N: conv, ReLU, max pool)."""
    g = gen(seed)
    layout = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    state, index, cin = {}, 0, 3
    for item in layout:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(item, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.randn(item, generator=g) * 0.1
        index, cin = index + 2, item
    state["classifier.0.weight"] = torch.randn(4, 4, generator=g)  # ignored
    return state


def test_vgg_loading_and_perceptual_term(tmp_path):
    state = torchvision_vgg19_state()
    torch.save(state, tmp_path / "vgg19.pth")
    save_file(state, str(tmp_path / "vgg19.safetensors"))
    x = rand(1, 3, 32, 32, seed=4)
    features = [load_vgg19_conv5_4(tmp_path / name)(x) for name in ("vgg19.pth", "vgg19.safetensors")]
    assert torch.equal(*features) and features[0].shape == (1, 512, 2, 2)
    assert features[0].min() < 0  # conv5_4 before its ReLU
    vgg = load_vgg19_conv5_4(tmp_path / "vgg19.pth")
    assert torch.equal(vgg.features[34].weight, state["features.34.weight"])
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in vgg.modules())
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in vgg.modules()) == 4
    assert not any(p.requires_grad for p in vgg.parameters())

    model = tiny_model("refsr", vgg_weights=str(tmp_path / "vgg19.pth")).train()
    loss = model(training_batch(model))
    parts = model.last_losses
    assert parts["perceptual"] > 0
    assert loss.item() == pytest.approx(parts["pixel"] + 0.0208 * parts["kl"] + 0.0260 * parts["perceptual"], rel=1e-5)
    loss.backward()
    assert model.output_conv.weight.grad is not None
    assert not any("vgg" in k or k.startswith("features.") for k in model.state_dict())


def test_bad_vgg_files(tmp_path):
    with pytest.raises(FacesrError, match="not found"):
        load_vgg19_conv5_4(tmp_path / "none.pth")
    first_layer = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}
    torch.save(first_layer, tmp_path / "partial.pth")
    with pytest.raises(FacesrError, match=r"missing 30.*features\.2\.weight"):
        load_vgg19_conv5_4(tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FacesrError, match="cannot read"):
        load_vgg19_conv5_4(tmp_path / "junk.pth")


def test_no_vgg_weights_means_no_perceptual_term():
    model = tiny_model("sisr").train()
    model(training_batch(model))
    assert set(model.last_losses) == {"pixel", "kl"}
