"""Metrics against independent references: scikit-image, closed forms, known images."""

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from facesr.degrade.resample import make_operator
from facesr.metrics import lr_consistency, psnr, rgb_to_y, ssim
from facesr.degrade.protocol import LRProtocol

rng = np.random.default_rng(0)


def _pair(h=40, w=36, noise=25):
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, a.shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("noise", [1, 10, 60])
def test_ssim_matches_scikit_image(noise):
    a, b = _pair(noise=noise)
    ref = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255)
    assert abs(ssim(a, b) - ref) < 1e-3


def test_ssim_y_and_crop_match_scikit_image():
    a, b = _pair(48, 48)
    ya, yb = rgb_to_y(a)[4:-4, 4:-4], rgb_to_y(b)[4:-4, 4:-4]
    ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert abs(ssim(a, b, y=True, crop=4) - ref) < 1e-3


def test_ssim_identity_and_symmetry():
    a, b = _pair()
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, b) == pytest.approx(ssim(b, a))


def test_psnr_closed_form_and_scikit_image():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # MSE = 100 / 192
    assert psnr(b, a) == pytest.approx(10 * math.log10(255**2 * 192 / 100))
    x, y = _pair()
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(y, x, data_range=255))
    assert psnr(a, a) == math.inf


def test_y_channel_known_values():
    assert rgb_to_y(np.array([[[0, 0, 0]]], np.uint8))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0)


@pytest.mark.parametrize("op", ["bicubic", "tf-bilinear"])
def test_consistency_of_hr_is_only_rounding(op):
    operator = make_operator(op, 8)
    hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lr, _ = LRProtocol(operator).lr_image(hr)
    # LR = round(D(HR)): the error is uniform in [-0.5, 0.5], MSE about 1/12
    assert lr_consistency(hr, lr, operator) < 0.1


def test_consistency_depends_on_the_operator():
    hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    lr, _ = LRProtocol.of("tf-bilinear", 8).lr_image(hr)
    assert lr_consistency(hr, lr, make_operator("bicubic", 8)) > 10 * lr_consistency(hr, lr, make_operator("tf-bilinear", 8))


def test_consistency_closed_form_for_a_shift():
    operator = make_operator("bicubic", 4)
    hr = np.full((32, 32, 3), 120, np.uint8)
    lr = np.full((8, 8, 3), 123, np.uint8)
    assert lr_consistency(hr, lr, operator) == pytest.approx(9.0, abs=1e-3)


def test_laplacian_energy_matches_scipy_on_the_interior():
    from scipy import ndimage

    from facesr.metrics import laplacian_energy

    a, _ = _pair(30, 26)
    y = rgb_to_y(a)
    ref = np.abs(ndimage.laplace(y)[1:-1, 1:-1]).mean()
    assert laplacian_energy(a) == pytest.approx(ref, rel=1e-12)
    assert laplacian_energy(a, crop=3) == pytest.approx(np.abs(ndimage.laplace(y[3:-3, 3:-3])[1:-1, 1:-1]).mean())


def test_detail_ratio_orders_blur_original_noise():
    from scipy import ndimage

    from facesr.metrics import detail_ratio

    hr = np.clip(ndimage.uniform_filter(rng.integers(0, 256, (48, 48, 3)).astype(float), size=(3, 3, 1)), 0, 255)
    hr = hr.astype(np.uint8)
    blurred = ndimage.uniform_filter(hr.astype(float), size=(5, 5, 1)).round().astype(np.uint8)
    noisy = np.clip(hr.astype(int) + rng.integers(-40, 41, hr.shape), 0, 255).astype(np.uint8)
    assert detail_ratio(hr, hr) == pytest.approx(1.0)
    assert detail_ratio(blurred, hr) < 0.7 < 1.3 < detail_ratio(noisy, hr)
    assert math.isnan(detail_ratio(hr, np.full_like(hr, 128)))
    with pytest.raises(ValueError, match="shapes differ"):
        detail_ratio(hr, hr[:-1])
