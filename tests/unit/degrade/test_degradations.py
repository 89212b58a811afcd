"""Second-order (Real-ESRGAN) degradation: kernels, sampling, reproducibility, stage switches, USM."""

import json
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import correlate1d

from facesr.config import from_dict, to_dict
from facesr.degrade.second_order import (
    KERNEL_KINDS,
    STAGES,
    SecondOrderConfig,
    SecondOrderDegradation,
    add_noise,
    apply,
    gaussian_family_kernel,
    make_kernel,
    reflect_pad,
    sample_params,
    second_order_from_dict,
    sinc_kernel,
    usm_sharpen,
)
from facesr.errors import FacesrError

CFG = SecondOrderConfig.preset("realesrgan", 4)
ALL_OFF = CFG.without(*STAGES)


def hr_batch(b=3, h=32, w=32, seed=0):
    """Smooth random faces-like content on the 8-bit grid (noise alone hides blur)."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(b, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bilinear")
    x = x + 0.1 * torch.rand(b, 3, h, w, generator=g)
    return torch.round(x.clamp(0, 1) * 255) / 255


# ---------------------------------------------------------------- reproducibility


def test_fixed_seed_is_reproducible_also_after_json_round_trip():
    hr = hr_batch()
    params = sample_params(CFG, 7, 3, 32)
    assert params == sample_params(CFG, 7, 3, 32)
    lr = apply(hr, params, CFG)
    assert torch.equal(lr, apply(hr, params, CFG))
    reloaded = json.loads(json.dumps(params))
    assert torch.equal(lr, apply(hr, reloaded, CFG))


def test_different_seeds_differ():
    hr = hr_batch()
    assert sample_params(CFG, 1, 3, 32) != sample_params(CFG, 2, 3, 32)
    one, two = (apply(hr, sample_params(CFG, seed, 3, 32), CFG) for seed in (1, 2))
    assert not torch.equal(one, two)


def test_a_sample_does_not_depend_on_its_batch():
    hr = hr_batch(b=4)
    params = sample_params(CFG, 3, 4, 32)
    batched = apply(hr, params, CFG)
    for i in range(4):
        assert torch.equal(apply(hr[i : i + 1], params[i : i + 1], CFG), batched[i : i + 1])


def test_generator_is_advanced_in_place():
    rng = np.random.default_rng(5)
    first, second = sample_params(CFG, rng, 2, 32), sample_params(CFG, rng, 2, 32)
    assert first != second
    assert first + second == sample_params(CFG, np.random.default_rng(5), 4, 32)


# ---------------------------------------------------------------- kernels


def sampled_kernels(kind, n=12):
    """Kernels of one kind drawn by the sampler (kernel 1 and kernel 2)."""
    if kind == "sinc":
        cfg = replace(CFG, sinc_prob=1.0, sinc_prob2=1.0, second_blur_prob=1.0)
    else:
        cfg = replace(CFG, kernel_list=(kind,), kernel_prob=(1.0,), sinc_prob=0.0,
                      kernel_list2=(kind,), kernel_prob2=(1.0,), sinc_prob2=0.0, second_blur_prob=1.0)
    params = sample_params(cfg, 11, n // 2, 32)
    specs = [p[s] for p in params for s in ("blur1", "blur2")]
    assert {s["kind"] for s in specs} == {kind}
    return specs


@pytest.mark.parametrize("kind", KERNEL_KINDS + ("sinc",))
def test_kernels_sum_to_one_and_are_point_symmetric(kind):
    for spec in sampled_kernels(kind):
        k = make_kernel(spec)
        assert k.shape == (21, 21)
        assert k.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(k, k[::-1, ::-1], rtol=0, atol=1e-15)
        # zero outside the sampled size, centred
        pad = (21 - spec["size"]) // 2
        assert not k[:pad].any() and not k[:, :pad].any() and k[10, 10] > 0
        if kind != "sinc":
            assert (k >= 0).all() and k[10, 10] == k.max()


def test_isotropic_gaussian_matches_closed_form():
    size, sigma = 13, 1.7
    expected = np.zeros((21, 21))
    for i in range(size):
        for j in range(size):
            expected[i + 4, j + 4] = math.exp(-((i - 6) ** 2 + (j - 6) ** 2) / (2 * sigma**2))
    expected /= expected.sum()
    spec = {"kind": "iso", "size": size, "sigma_x": sigma, "sigma_y": sigma, "theta": 0.0}
    np.testing.assert_allclose(make_kernel(spec), expected, rtol=1e-12, atol=1e-15)


def test_anisotropic_gaussian_axes_and_rotation():
    x = np.arange(-10, 11)
    expected = np.exp(-(x[None, :] ** 2) / (2 * 3.0**2) - x[:, None] ** 2 / (2 * 1.0**2))
    expected /= expected.sum()
    wide = gaussian_family_kernel(21, 3.0, 1.0, 0.0)  # σx (columns) = 3
    np.testing.assert_allclose(wide, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gaussian_family_kernel(21, 3.0, 1.0, math.pi / 2), expected.T, atol=1e-15)
    # any angle: exp(-½ dᵀΣ⁻¹d), Σ = R diag(σx², σy²) Rᵀ, d = (column, row) offset
    theta = 0.7
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inverse = np.linalg.inv(rot @ np.diag([3.0**2, 1.0**2]) @ rot.T)
    d = np.stack(np.meshgrid(x, x, indexing="xy"), -1)  # d[row, col] = (col offset, row offset)
    rotated = np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, inverse, d))
    np.testing.assert_allclose(gaussian_family_kernel(21, 3.0, 1.0, theta), rotated / rotated.sum(), atol=1e-15)


def test_generalized_and_plateau_shapes():
    gauss = gaussian_family_kernel(15, 2.0, 1.2, 0.3)
    np.testing.assert_allclose(gaussian_family_kernel(15, 2.0, 1.2, 0.3, 1.0, "generalized"), gauss, atol=1e-15)
    x = np.arange(-7, 8)
    q = (x[None, :] ** 2 + x[:, None] ** 2) / 1.5**2
    for beta in (1.0, 1.6):
        plateau = np.pad(1 / (1 + q**beta), 3)
        np.testing.assert_allclose(gaussian_family_kernel(15, 1.5, 1.5, 0, beta, "plateau"),
                                   plateau / plateau.sum(), atol=1e-15)
    generalized = np.pad(np.exp(-0.5 * q**0.7), 3)
    np.testing.assert_allclose(gaussian_family_kernel(15, 1.5, 1.5, 0, 0.7, "generalized"),
                               generalized / generalized.sum(), atol=1e-15)


@pytest.mark.parametrize("size,omega", [(7, math.pi / 3), (11, math.pi / 2), (21, math.pi / 3), (21, math.pi / 5)])
def test_sinc_is_a_low_pass_with_unit_dc_gain(size, omega):
    response = np.abs(np.fft.fft2(sinc_kernel(size, omega), s=(128, 128)))
    freq = np.fft.fftfreq(128) * 2 * np.pi
    radius = np.hypot(*np.meshgrid(freq, freq, indexing="ij"))
    assert response[0, 0] == pytest.approx(1.0, abs=1e-12)
    assert 0.75 < response[radius < 0.5 * omega].mean() < 1.35
    assert response[radius > 1.5 * omega].mean() < 0.03


def test_reflect_pad_matches_torch_and_handles_large_pads():
    x = torch.rand(2, 3, 5, 7)
    assert torch.equal(reflect_pad(x, 4), F.pad(x, (4, 4, 4, 4), mode="reflect"))
    row = torch.tensor([[[[0.0, 1.0, 2.0]]]])
    assert reflect_pad(row, 3)[0, 0, 3].tolist() == [1, 2, 1, 0, 1, 2, 1, 0, 1]
    assert torch.equal(reflect_pad(torch.ones(1, 1, 1, 1), 2), torch.ones(1, 1, 5, 5))


# ---------------------------------------------------------------- stages


def test_all_stages_off_is_a_plain_area_downsample():
    hr = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(0))  # off the 8-bit grid: no ties
    lr = apply(hr, sample_params(ALL_OFF, 0, 3, (32, 48)), ALL_OFF)
    box = F.avg_pool2d(hr, 4)  # "area" is a box average for an integer scale
    assert torch.allclose(lr, torch.round(box * 255) / 255, atol=1e-6)


def test_zero_noise_stage_equals_all_off():
    hr = hr_batch()
    only_noise = replace(ALL_OFF, noise1=True, noise_range=(0.0, 0.0), poisson_scale_range=(0.0, 0.0))
    params = sample_params(only_noise, 4, 3, 32)
    assert {p["noise1"]["kind"] for p in sample_params(only_noise, 4, 40, 32)} == {"gaussian", "poisson"}
    assert torch.equal(apply(hr, params, only_noise), apply(hr, params, ALL_OFF))


IDENTITY = {
    "blur1": {"kind": "pulse"},
    "blur2": {"kind": "pulse"},
    "resize1": {"scale": 1.0, "mode": "bicubic"},
    "noise1": {"kind": "gaussian", "sigma": 0.0, "gray": False, "seed": 0},
    "noise2": {"kind": "gaussian", "sigma": 0.0, "gray": True, "seed": 0},
}


@pytest.mark.parametrize("stage", sorted(IDENTITY))
def test_switching_a_stage_off_equals_running_the_others(stage):
    hr = hr_batch()
    params = sample_params(CFG, 9, 3, 32)
    with_identity = [{**p, stage: IDENTITY[stage]} for p in params]
    assert torch.equal(apply(hr, params, CFG.without(stage)), apply(hr, with_identity, CFG))


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_alone_changes_the_output(stage):
    hr = hr_batch(b=4)
    only = replace(ALL_OFF, **{stage: True})
    reference = apply(hr, sample_params(ALL_OFF, 2, 4, 32), ALL_OFF)
    assert not torch.equal(apply(hr, sample_params(only, 2, 4, 32), only), reference)


def test_switching_a_stage_off_keeps_the_other_draws():
    full, off = sample_params(CFG, 6, 5, 32), sample_params(CFG.without("noise1", "blur2"), 6, 5, 32)
    for p, q in zip(full, off):
        assert q["noise1"] is None and q["blur2"] is None
        assert {k: v for k, v in p.items() if k not in ("noise1", "blur2")} == {
            k: v for k, v in q.items() if k not in ("noise1", "blur2")}


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_output_shape_and_8_bit_grid(scale):
    cfg = SecondOrderConfig.preset("deepfacesr", scale)
    hr = hr_batch(b=2, h=32, w=48, seed=scale)
    lr, params = SecondOrderDegradation(cfg)(hr, seed=scale)
    assert lr.shape == (2, 3, 32 // scale, 48 // scale) and len(params) == 2
    assert lr.min() >= 0 and lr.max() <= 1
    assert torch.equal(lr * 255, torch.round(lr * 255))


def test_gaussian_and_poisson_noise_statistics():
    img = torch.linspace(0.3, 0.7, 256).repeat(3, 96, 1)[None]  # 256 distinct levels before quantising
    gauss = add_noise(img, {"kind": "gaussian", "sigma": 10.0, "gray": False, "seed": 1}) - img
    assert (gauss * 255).std().item() == pytest.approx(10, rel=0.05)
    loud = add_noise(img, {"kind": "gaussian", "sigma": 200.0, "gray": False, "seed": 1})
    assert loud.min() == 0 and loud.max() == 1  # clipped to [0, 1]
    gray = add_noise(img, {"kind": "gaussian", "sigma": 10.0, "gray": True, "seed": 1}) - img
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    # Poisson(img·v)/v − img has variance img/v: 103 levels on the 8-bit grid give v = 128
    poisson = add_noise(img, {"kind": "poisson", "scale": 1.5, "gray": False, "seed": 1}) - img
    expected_var = 1.5**2 * 0.5 / 128
    assert poisson.var().item() == pytest.approx(expected_var, rel=0.1)
    gray_poisson = add_noise(img, {"kind": "poisson", "scale": 1.0, "gray": True, "seed": 1}) - img
    assert torch.allclose(gray_poisson[:, 0], gray_poisson[:, 2], atol=1e-6)


def test_sampling_follows_the_table():
    cfg = SecondOrderConfig.preset("deepfacesr", 4)
    params = sample_params(cfg, 0, 3000, 64)
    n = len(params)
    kernels = [p["blur1"] for p in params]
    counts = Counter(k["kind"] for k in kernels)
    assert counts["sinc"] / n == pytest.approx(0.1, abs=0.02)
    for kind, prob in zip(cfg.kernel_list, cfg.kernel_prob):
        assert counts[kind] / n == pytest.approx(0.9 * prob, abs=0.025)
    assert {k["size"] for k in kernels} == set(range(7, 22, 2))
    assert min(k["omega_c"] for k in kernels if k["kind"] == "sinc" and k["size"] >= 13) < math.pi / 3
    for k in kernels:
        if k["kind"] == "sinc":
            assert (math.pi / 3 if k["size"] < 13 else math.pi / 5) <= k["omega_c"] <= math.pi
        else:
            assert 0.2 <= k["sigma_x"] <= 3 and 0.2 <= k["sigma_y"] <= 3 and -math.pi <= k["theta"] <= math.pi
            if "aniso" not in k["kind"]:
                assert k["sigma_x"] == k["sigma_y"] and k["theta"] == 0
    plateau = [k["beta"] for k in kernels if k["kind"].startswith("plateau")]
    assert sum(b == 1.0 for b in plateau) / len(plateau) == pytest.approx(0.5, abs=0.1)
    assert all(1 <= b <= 2 for b in plateau)
    assert all(0.5 <= k["beta"] <= 4 for k in kernels if k["kind"].startswith("generalized"))
    assert all(0.2 <= k["sigma_x"] <= 1.5 for p in params if (k := p["blur2"]) and k["kind"] != "sinc")
    assert sum(p["blur2"] is None for p in params) / n == pytest.approx(0.2, abs=0.03)
    scales = [p["resize1"]["scale"] for p in params]
    assert sum(s > 1 for s in scales) / n == pytest.approx(0.2, abs=0.03)
    assert sum(s == 1 for s in scales) / n == pytest.approx(0.1, abs=0.03)
    assert min(scales) >= 0.2 and max(scales) <= 1.5
    assert Counter(p["resize2"]["mode"] for p in params).keys() == {"area", "bilinear", "bicubic"}
    noise = [p["noise1"] for p in params]
    assert sum(s["kind"] == "gaussian" for s in noise) / n == pytest.approx(0.5, abs=0.03)
    assert sum(s["gray"] for s in noise) / n == pytest.approx(0.4, abs=0.03)
    assert all(1 <= s["sigma"] <= 20 for s in noise if s["kind"] == "gaussian")
    assert all(0.05 <= s["scale"] <= 2 for s in noise if s["kind"] == "poisson")
    assert {p["jpeg1"]["quality"] for p in params} == set(range(50, 96))
    final = [p["final_stage"] for p in params]
    assert {f["quality"] for f in final} == set(range(70, 96))
    assert sum(f["resize_first"] for f in final) / n == pytest.approx(0.5, abs=0.03)
    assert sum(f["sinc"]["kind"] == "sinc" for f in final) / n == pytest.approx(0.8, abs=0.03)
    assert all(math.pi / 3 <= f["sinc"]["omega_c"] <= math.pi for f in final if f["sinc"]["kind"] == "sinc")


def test_apply_rejects_mismatched_inputs():
    params = sample_params(CFG, 0, 2, 32)
    with pytest.raises(FacesrError):
        apply(hr_batch(b=2, h=64, w=64), params, CFG)
    with pytest.raises(FacesrError):
        apply(hr_batch(b=3), params, CFG)
    with pytest.raises(FacesrError):
        sample_params(CFG, 0, 2, 30)


# ---------------------------------------------------------------- config


def test_presets_differ_exactly_in_the_table_fields():
    ours, official = SecondOrderConfig.preset("deepfacesr", 4), SecondOrderConfig.preset("realesrgan", 4)
    differing = {k: (v, to_dict(official)[k]) for k, v in to_dict(ours).items() if v != to_dict(official)[k]}
    assert differing == {
        "resize_range": ((0.2, 1.5), (0.15, 1.5)),
        "noise_range": ((1.0, 20.0), (1.0, 30.0)),
        "poisson_scale_range": ((0.05, 2.0), (0.05, 3.0)),
        "jpeg_range": ((50, 95), (30, 95)),
        "noise_range2": ((1.0, 15.0), (1.0, 25.0)),
        "poisson_scale_range2": ((0.05, 1.5), (0.05, 2.5)),
        "jpeg_range2": ((70, 95), (30, 95)),
    }
    assert official.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03) and official.sinc_prob2 == 0.1
    assert official.blur_sigma2 == (0.2, 1.5) and official.second_blur_prob == 0.8
    assert official.resize_prob2 == (0.3, 0.4, 0.3) and official.final_sinc_prob == 0.8
    assert SecondOrderConfig.preset("realesrgan", 8).scale == 8
    with pytest.raises(FacesrError, match="unknown degradation preset"):
        SecondOrderConfig.preset("bsrgan", 4)


def test_config_round_trips_and_is_validated():
    cfg = replace(SecondOrderConfig.preset("deepfacesr", 2), noise2=False)
    assert from_dict(SecondOrderConfig, to_dict(cfg)) == cfg
    assert from_dict(SecondOrderConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    with pytest.raises(FacesrError, match="unknown key"):
        from_dict(SecondOrderConfig, {"noise_rang": [1, 2]})
    for bad in ({"kernel_prob": [0.5, 0.5, 0, 0, 0, 0.1]}, {"jpeg_range": [95, 30]},
                {"kernel_list": ["box"], "kernel_prob": [1.0]}, {"kernel_sizes": [8]}, {"scale": 0}):
        with pytest.raises(FacesrError):
            from_dict(SecondOrderConfig, bad)
    with pytest.raises(FacesrError, match="unknown stage"):
        CFG.without("noise3")


def test_operator_round_trips_and_matches_apply():
    op = SecondOrderDegradation(SecondOrderConfig.preset("deepfacesr", 4))
    data = json.loads(json.dumps(op.to_dict()))
    assert data["name"] == "second-order" and data["scale"] == 4
    assert second_order_from_dict(data) == op
    hr = hr_batch(b=2)
    lr, params = op(hr, 13)
    assert torch.equal(lr, apply(hr, sample_params(op.cfg, 13, 2, 32), op.cfg))
    with pytest.raises(FacesrError):
        second_order_from_dict({"name": "bicubic", "scale": 4})


# ---------------------------------------------------------------- USM (step 0, outside the degradation)


def test_usm_of_a_constant_image_is_the_identity():
    img = torch.full((1, 3, 40, 40), 0.37)
    assert torch.equal(usm_sharpen(img), img)


def test_usm_leaves_a_smooth_gradient_unchanged():
    ramp = torch.linspace(0.4, 0.6, 64)  # |img − blur| · 255 stays below 10, even at the borders
    img = torch.stack([ramp[None, :].expand(64, 64), ramp[:, None].expand(64, 64), 1 - ramp[None, :].expand(64, 64)])[None]
    assert torch.equal(usm_sharpen(img), img)


def test_usm_matches_a_direct_implementation():
    img = hr_batch(b=1, h=48, w=40, seed=3).double()
    img[..., 20:, :] *= 0.3  # a strong edge
    taps = np.exp(-(np.arange(-25, 26) ** 2) / (2 * 8.0**2))  # OpenCV: σ = 0.3·((51−1)/2 − 1) + 0.8 = 8
    taps /= taps.sum()

    def blur(a):  # scipy 'mirror' = reflect without repeating the edge (OpenCV's default border)
        return correlate1d(correlate1d(a, taps, axis=-1, mode="mirror"), taps, axis=-2, mode="mirror")

    a = img.numpy()
    r = a - blur(a)
    soft = blur((np.abs(r) * 255 > 10).astype(np.float64))
    expected = soft * np.clip(a + 0.5 * r, 0, 1) + (1 - soft) * a
    out = usm_sharpen(img)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    assert (out - img).abs().max() > 0.02
