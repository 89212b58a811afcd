"""PSNR and SSIM on uint8 images, as SR3 / BasicSR / MATLAB define them, and a detail ratio.

Inputs are uint8 arrays (H, W, 3). ``y=True`` evaluates the BT.601 studio-swing
luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255; ``crop`` removes that many
border pixels first. SSIM uses an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2,
C2 = (0.03 L)^2 with L = 255, the "valid" region only, averaged over channels. The detail
ratio compares the mean absolute Laplacian of SR's luma with HR's (sharpness, no network needed).
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, y: bool, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    a, b = (rgb_to_y(a), rgb_to_y(b)) if y else (a.astype(np.float64), b.astype(np.float64))
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return (a[..., None], b[..., None]) if a.ndim == 2 else (a, b)


def psnr(sr: np.ndarray, hr: np.ndarray, y: bool = False, crop: int = 0) -> float:
    a, b = _prepare(sr, hr, y, crop)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - size // 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    g /= g.sum()
    return g


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation with window g, keeping only the 'valid' region."""
    n = len(g)
    rows = sum(g[i] * img[i : img.shape[0] - n + 1 + i] for i in range(n))
    return sum(g[j] * rows[:, j : img.shape[1] - n + 1 + j] for j in range(n))


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(sr: np.ndarray, hr: np.ndarray, y: bool = False, crop: int = 0) -> float:
    a, b = _prepare(sr, hr, y, crop)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {a.shape[1]}x{a.shape[0]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def laplacian_energy(img: np.ndarray, crop: int = 0) -> float:
    """Mean |4-neighbour Laplacian| of the BT.601 luma over the valid region: how much fine detail an image holds."""
    y = rgb_to_y(img) if img.ndim == 3 else img.astype(np.float64)
    if crop:
        y = y[crop:-crop, crop:-crop]
    if min(y.shape) < 3:
        raise ValueError(f"the Laplacian needs at least 3x3 pixels, got {y.shape[1]}x{y.shape[0]}")
    lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4 * y[1:-1, 1:-1]
    return float(np.abs(lap).mean())


def detail_ratio(sr: np.ndarray, hr: np.ndarray, crop: int = 0) -> float:
    """SR's Laplacian energy over HR's: 1 = as much fine detail as the real face, below 1 smoother
    (a regression mean), above 1 more high-frequency content than the face has (noise, invented texture).
    A no-reference sharpness figure, paired with HR so that faces of different texture compare."""
    if sr.shape != hr.shape:
        raise ValueError(f"shapes differ: {sr.shape} vs {hr.shape}")
    ref = laplacian_energy(hr, crop)
    return float("nan") if ref == 0 else laplacian_energy(sr, crop) / ref
