"""Blind second-order degradation (Real-ESRGAN) as a facesr operator.

Seeds dossier §4.3 (steps 1-9 and the table of the two presets), §4.4, §4.7.

Sampling and applying are split so a degraded set can be rebuilt exactly:
``sample_params`` draws every random choice up front into plain JSON dicts
(kernels are stored by their generating parameters, noise by a seed), and
``apply`` turns HR into LR deterministically from those dicts.

Images are float tensors (B, 3, H, W) in [0, 1]. Differences from Real-ESRGAN:

- every choice is drawn per sample (Real-ESRGAN draws the resize, the noise
  kind, the second-blur coin and the final order once per batch), so a sample's
  LR does not depend on the batch it was made in;
- JPEG is PIL's libjpeg (4:2:0, integer quality uniform over ``jpeg_range``),
  not DiffJPEG;
- noise is drawn with numpy from a per-sample seed, so it does not depend on
  the device;
- a resize to a scale ``s`` gives ``int(side * s)`` pixels (at least 1);
- USM sharpening (step 0) is not part of the degradation: the L1 target is the
  un-sharpened GT by default (§4.7.1); ``usm_sharpen`` is provided separately.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facesr.config import from_dict, to_dict
from facesr.degrade.blind import DEGRADATIONS
from facesr.degrade.resample import quantize
from facesr.errors import FacesrError
from facesr.registry import Registry

KERNEL_SIZE = 21  # every kernel is zero-padded to 21 x 21
RESIZE_MODES = ("area", "bilinear", "bicubic")
PLAIN_MODE = "area"  # the only resize when the final stage is off: a box average for integer scales
KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
SINC_OMEGA_SMALL = (math.pi / 3, math.pi)  # kernel size < 13, and the final sinc
SINC_OMEGA_LARGE = (math.pi / 5, math.pi)  # kernel size >= 13
LUMA = np.array([0.299, 0.587, 0.114])
STAGES = ("blur1", "resize1", "noise1", "jpeg1", "blur2", "resize2", "noise2", "final_stage")


@dataclass(frozen=True)
class SecondOrderConfig:
    """Every parameter of the dossier's §4.3 table; the defaults are official Real-ESRGAN.

    Names ending in 2 belong to the second degradation. Noise sigmas are in
    8-bit units (divided by 255 when applied). ``resize_prob`` is (up, down, keep).
    The booleans of ``STAGES`` switch stages off; ``final_stage`` is the random
    resize + sinc + JPEG of step 8 (off: a plain ``PLAIN_MODE`` resize).
    """

    scale: int = 4
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    # first degradation
    kernel_list: tuple[str, ...] = KERNEL_KINDS
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    # second degradation
    second_blur_prob: float = 0.8
    kernel_list2: tuple[str, ...] = KERNEL_KINDS
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)
    # final stage (step 8)
    final_resize_first_prob: float = 0.5
    final_sinc_prob: float = 0.8
    # stage switches
    blur1: bool = True
    resize1: bool = True
    noise1: bool = True
    jpeg1: bool = True
    blur2: bool = True
    resize2: bool = True
    noise2: bool = True
    final_stage: bool = True

    def __post_init__(self):
        _validate(self)

    @classmethod
    def preset(cls, name: str, scale: int = 4) -> "SecondOrderConfig":
        """'deepfacesr' (the AI6126 yml) or 'realesrgan' (train_realesrnet_x4plus.yml); §4.3 table."""
        return cls(scale=scale, **PRESETS.get(name))

    def without(self, *stages: str) -> "SecondOrderConfig":
        """A copy with the named stages switched off."""
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise FacesrError(f"unknown stage(s) {sorted(unknown)}; known: {list(STAGES)}")
        return replace(self, **{s: False for s in stages})


# A degradation preset: name -> the SecondOrderConfig fields it changes. Adding one is one call.
PRESETS = Registry("degradation preset")
PRESETS.register("realesrgan", {})
PRESETS.register("deepfacesr", {
    "resize_range": (0.2, 1.5),
    "noise_range": (1.0, 20.0),
    "poisson_scale_range": (0.05, 2.0),
    "jpeg_range": (50, 95),
    "noise_range2": (1.0, 15.0),
    "poisson_scale_range2": (0.05, 1.5),
    "jpeg_range2": (70, 95),
})


def _validate(cfg: SecondOrderConfig) -> None:
    """Raise FacesrError for a config that cannot be sampled."""
    if int(cfg.scale) != cfg.scale or cfg.scale < 1:
        raise FacesrError(f"scale must be a positive integer, got {cfg.scale}")
    if not cfg.kernel_sizes or any(k % 2 == 0 or not 1 <= k <= KERNEL_SIZE for k in cfg.kernel_sizes):
        raise FacesrError(f"kernel_sizes must be odd sizes in 1..{KERNEL_SIZE}, got {cfg.kernel_sizes}")
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name.startswith("kernel_list") and set(value) - set(KERNEL_KINDS):
            raise FacesrError(f"{f.name}: unknown kernel(s) {sorted(set(value) - set(KERNEL_KINDS))}")
        if f.name.startswith(("kernel_prob", "resize_prob")):
            _check_distribution(f.name, value)
        elif f.name.rstrip("2").endswith("_prob"):
            if not 0 <= value <= 1:
                raise FacesrError(f"{f.name} must lie in [0, 1], got {value}")
        elif "range" in f.name or "sigma" in f.name:
            if len(value) != 2 or not 0 <= value[0] <= value[1]:
                raise FacesrError(f"{f.name} must be [low, high] with 0 <= low <= high, got {value}")
    for name in ("kernel_list", "kernel_list2"):
        if len(getattr(cfg, name)) != len(getattr(cfg, name.replace("list", "prob"))):
            raise FacesrError(f"{name} and its probabilities differ in length")
    for name in ("jpeg_range", "jpeg_range2"):
        if not 1 <= getattr(cfg, name)[0] <= getattr(cfg, name)[1] <= 100:
            raise FacesrError(f"{name}: JPEG qualities must lie in 1..100, got {getattr(cfg, name)}")


def _check_distribution(name, probs) -> None:
    if any(p < 0 for p in probs) or abs(sum(probs) - 1) > 1e-6:
        raise FacesrError(f"{name} must be non-negative and sum to 1, got {probs}")


# ---------------------------------------------------------------- kernels (§4.3 step 1)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Column (x) and row (y) offsets from the centre of a size x size kernel."""
    ax = np.arange(size, dtype=np.float64) - size // 2
    y, x = np.meshgrid(ax, ax, indexing="ij")
    return x, y


def _pad(kernel: np.ndarray) -> np.ndarray:
    """Normalise to sum 1 and zero-pad to KERNEL_SIZE x KERNEL_SIZE."""
    pad = (KERNEL_SIZE - kernel.shape[0]) // 2
    return np.pad(kernel / kernel.sum(), pad)


def gaussian_family_kernel(size, sigma_x, sigma_y, theta, beta=1.0, shape="gaussian") -> np.ndarray:
    """Gaussian exp(-q/2), generalized exp(-q^β/2) or plateau 1/(1+q^β), q = dᵀΣ⁻¹d; 21 x 21, sum 1.

    Σ = R(θ) diag(σx², σy²) R(θ)ᵀ: σx is along the x axis (columns) rotated by θ.
    """
    x, y = _grid(size)
    u = math.cos(theta) * x + math.sin(theta) * y  # coordinates in the rotated frame
    v = -math.sin(theta) * x + math.cos(theta) * y
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    if shape == "gaussian":
        kernel = np.exp(-0.5 * q)
    elif shape == "generalized":
        kernel = np.exp(-0.5 * q**beta)
    elif shape == "plateau":
        kernel = 1 / (1 + q**beta)
    else:
        raise FacesrError(f"unknown kernel shape {shape!r}")
    return _pad(kernel)


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """Circular low-pass ω_c J1(ω_c r) / (2π r), centre ω_c²/(4π); 21 x 21, sum 1."""
    from scipy.special import j1  # scipy only comes with the test extra; import where it is needed

    x, y = _grid(size)
    r = np.hypot(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = omega_c * j1(omega_c * r) / (2 * np.pi * r)
    kernel[r == 0] = omega_c**2 / (4 * np.pi)
    return _pad(kernel)


def pulse_kernel() -> np.ndarray:
    """The identity kernel: 1 at the centre of a 21 x 21 array."""
    kernel = np.zeros((KERNEL_SIZE, KERNEL_SIZE))
    kernel[KERNEL_SIZE // 2, KERNEL_SIZE // 2] = 1.0
    return kernel


def make_kernel(spec: dict) -> np.ndarray:
    """The 21 x 21 kernel described by a sampled spec (``kind`` and its parameters)."""
    kind = spec["kind"]
    if kind == "pulse":
        return pulse_kernel()
    if kind == "sinc":
        return sinc_kernel(spec["size"], spec["omega_c"])
    if kind not in KERNEL_KINDS:
        raise FacesrError(f"unknown kernel kind {kind!r}")
    shape = "gaussian" if kind in ("iso", "aniso") else kind.split("_")[0]
    return gaussian_family_kernel(
        spec["size"], spec["sigma_x"], spec["sigma_y"], spec["theta"], spec.get("beta", 1.0), shape
    )


# ---------------------------------------------------------------- sampling


def _uniform(rng, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _sample_kernel(rng, cfg: SecondOrderConfig, sfx: str) -> dict:
    """Kernel 1 (sfx '') or kernel 2 (sfx '2'): sinc with p = sinc_prob, else a mixed kernel (step 1)."""
    get = lambda name: getattr(cfg, name + sfx)  # noqa: E731
    size = int(rng.choice(cfg.kernel_sizes))
    if rng.uniform() < get("sinc_prob"):
        omega = SINC_OMEGA_SMALL if size < 13 else SINC_OMEGA_LARGE
        return {"kind": "sinc", "size": size, "omega_c": _uniform(rng, omega)}
    kind = str(rng.choice(get("kernel_list"), p=get("kernel_prob")))
    if "aniso" not in kind:
        sigma_x = sigma_y = _uniform(rng, get("blur_sigma"))
        theta = 0.0
    else:
        sigma_x, sigma_y = _uniform(rng, get("blur_sigma")), _uniform(rng, get("blur_sigma"))
        theta = _uniform(rng, (-math.pi, math.pi))
    spec = {"kind": kind, "size": size, "sigma_x": sigma_x, "sigma_y": sigma_y, "theta": theta}
    if kind.startswith("generalized"):  # β: 50% U(low, 1), 50% U(1, high)
        lo, hi = get("betag_range")
        spec["beta"] = _uniform(rng, (lo, 1.0)) if rng.uniform() < 0.5 else _uniform(rng, (1.0, hi))
    elif kind.startswith("plateau"):  # β: 50% exactly 1, 50% U(1, high)
        spec["beta"] = 1.0 if rng.uniform() < 0.5 else _uniform(rng, (1.0, get("betap_range")[1]))
    return spec


def _sample_resize(rng, prob, bounds) -> dict:
    """Up, down or keep (step 2): scale U(1, high), U(low, 1) or 1; mode uniform."""
    direction = rng.choice(3, p=prob)
    scale = [_uniform(rng, (1.0, bounds[1])), _uniform(rng, (bounds[0], 1.0)), 1.0][direction]
    return {"scale": scale, "mode": str(rng.choice(RESIZE_MODES))}


def _sample_noise(rng, cfg: SecondOrderConfig, sfx: str) -> dict:
    """Gaussian (σ in 8-bit units) with p = gaussian_noise_prob, else Poisson; grey with p (step 3)."""
    get = lambda name: getattr(cfg, name + sfx)  # noqa: E731
    if rng.uniform() < get("gaussian_noise_prob"):
        spec = {"kind": "gaussian", "sigma": _uniform(rng, get("noise_range"))}
    else:
        spec = {"kind": "poisson", "scale": _uniform(rng, get("poisson_scale_range"))}
    spec["gray"] = bool(rng.uniform() < get("gray_noise_prob"))
    spec["seed"] = int(rng.integers(2**31))
    return spec


def _sample_quality(rng, bounds) -> int:
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))


def _sample_final(rng, cfg: SecondOrderConfig) -> dict:
    """Step 8: order, resize mode, final sinc (p = final_sinc_prob, else pulse), JPEG quality."""
    resize_first = bool(rng.uniform() < cfg.final_resize_first_prob)
    mode = str(rng.choice(RESIZE_MODES))
    if rng.uniform() < cfg.final_sinc_prob:
        size = int(rng.choice(cfg.kernel_sizes))
        sinc = {"kind": "sinc", "size": size, "omega_c": _uniform(rng, SINC_OMEGA_SMALL)}
    else:
        sinc = {"kind": "pulse"}
    quality = _sample_quality(rng, cfg.jpeg_range2)
    return {"resize_first": resize_first, "mode": mode, "sinc": sinc, "quality": quality}


def _sample_one(rng, cfg: SecondOrderConfig, hr_size: tuple[int, int]) -> dict:
    """All draws of one sample. Every stage is drawn, then disabled ones are set to None,
    so switching a stage off leaves the other stages' draws unchanged."""
    params = {
        "blur1": _sample_kernel(rng, cfg, ""),
        "resize1": _sample_resize(rng, cfg.resize_prob, cfg.resize_range),
        "noise1": _sample_noise(rng, cfg, ""),
        "jpeg1": {"quality": _sample_quality(rng, cfg.jpeg_range)},
        "blur2": _sample_kernel(rng, cfg, "2"),
        "resize2": _sample_resize(rng, cfg.resize_prob2, cfg.resize_range2),
        "noise2": _sample_noise(rng, cfg, "2"),
        "final_stage": _sample_final(rng, cfg),
    }
    if rng.uniform() >= cfg.second_blur_prob:
        params["blur2"] = None
    for stage in STAGES:
        if not getattr(cfg, stage):
            params[stage] = None
    return {"hr_size": list(hr_size), **params}


def sample_params(cfg: SecondOrderConfig, generator, batch_size: int, hr_size) -> list[dict]:
    """Draw every random choice for ``batch_size`` samples; JSON-serialisable dicts, one per sample.

    ``generator``: a ``numpy.random.Generator`` (advanced in place) or an integer seed.
    ``hr_size``: H (square) or (H, W); both must be divisible by ``cfg.scale``.
    """
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    h, w = (hr_size, hr_size) if isinstance(hr_size, int) else (int(hr_size[0]), int(hr_size[1]))
    if h % cfg.scale or w % cfg.scale:
        raise FacesrError(f"image size {w}x{h} is not divisible by the scale {cfg.scale}")
    return [_sample_one(rng, cfg, (h, w)) for _ in range(batch_size)]


# ---------------------------------------------------------------- operations


def _reflect_index(n: int, pad: int, device) -> torch.Tensor:
    """Indices of a reflect padding (edge not repeated) that also works when pad >= n."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad the last two dims by ``pad``; equals F.pad(mode='reflect') where that works."""
    rows = _reflect_index(x.shape[-2], pad, x.device)
    cols = _reflect_index(x.shape[-1], pad, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def filter2d(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate sample i of x (N, C, H, W) with kernels[i] (N, k, k), reflect padding, grouped conv.

    Correlation equals convolution here: every kernel is symmetric under 180° rotation.
    """
    n, c, h, w = x.shape
    k = kernels.shape[-1]
    weight = kernels.to(x).repeat_interleave(c, dim=0)[:, None]
    padded = reflect_pad(x, k // 2).reshape(1, n * c, h + k - 1, w + k - 1)
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """F.interpolate to ``size`` without antialias (step 2)."""
    align = None if mode == "area" else False
    return F.interpolate(x, size=size, mode=mode, align_corners=align, antialias=False)


def add_noise(x: torch.Tensor, spec: dict) -> torch.Tensor:
    """Add the Gaussian or Poisson noise of ``spec`` to one sample (1, C, H, W) and clip (step 3)."""
    rng = np.random.default_rng(spec["seed"])
    channels = 1 if spec["gray"] else x.shape[1]
    if spec["kind"] == "gaussian":
        noise = rng.standard_normal((1, channels, *x.shape[-2:])) * (spec["sigma"] / 255)
    else:
        noise = _poisson_noise(x[0].detach().cpu().double().numpy(), rng, spec["scale"], spec["gray"])[None]
    return (x + torch.from_numpy(noise).to(x)).clamp(0, 1)


def _poisson_noise(img: np.ndarray, rng, scale: float, gray: bool) -> np.ndarray:
    """(Poisson(img·v)/v − img)·scale, v = 2^ceil(log2(#unique values)); grey uses the luminance.

    The image is put on the 8-bit grid first, so that #unique values counts grey levels
    (a blurred float image would have nearly every value unique, and no noise).
    """
    if gray:
        img = np.tensordot(LUMA, img, axes=1)[None]
    img = np.round(np.clip(img, 0, 1) * 255) / 255
    levels = 2.0 ** math.ceil(math.log2(len(np.unique(img))))
    return (rng.poisson(img * levels) / levels - img) * scale


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip one sample (1, 3, H, W) through PIL's libjpeg (4:2:0) at ``quality`` (step 4).

    This is PIL's JPEG, not Real-ESRGAN's DiffJPEG; the input is clamped and quantised to uint8.
    """
    rgb = (x[0].detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1)[None].to(x) / 255


def usm_sharpen(img: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> torch.Tensor:
    """Unsharp mask of §4.3 step 0 (not part of the degradation).

    Gaussian blur of size radius (+1 if even) with OpenCV's σ for σ = 0,
    0.3·((ksize−1)/2 − 1) + 0.8 (σ = 8 for 51), reflect padding; r = img − blur;
    soft = blur(|r|·255 > threshold); out = soft·clip(img + weight·r) + (1 − soft)·img.
    """
    ksize = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(ksize, dtype=torch.float64) - ksize // 2
    taps = torch.exp(-(taps**2) / (2 * sigma**2))
    taps = (taps / taps.sum()).to(img)

    def blur(x):
        c = x.shape[1]
        x = reflect_pad(x, ksize // 2)
        x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, ksize), groups=c)
        return F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, ksize, 1), groups=c)

    residual = img - blur(img)
    soft = blur((residual.abs() * 255 > threshold).to(img))
    sharp = (img + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * img


# ---------------------------------------------------------------- the pipeline (§4.3 steps 1-9)


def _grouped(xs: list, keys: list, fn) -> list:
    """Apply ``fn(batch, key, indices)`` to each group of samples sharing a shape and a key.

    Samples whose key is None pass unchanged. Sizes differ between samples after a
    random resize, so batching is per group.
    """
    groups = defaultdict(list)
    for i, (x, key) in enumerate(zip(xs, keys)):
        if key is not None:
            groups[(tuple(x.shape), key)].append(i)
    out = list(xs)
    for (_, key), idx in groups.items():
        for i, y in zip(idx, fn(torch.cat([xs[i] for i in idx]), key, idx).split(1)):
            out[i] = y
    return out


def _blur(xs: list, specs: list) -> list:
    def fn(batch, _, idx):
        kernels = torch.from_numpy(np.stack([make_kernel(specs[i]) for i in idx]))
        return filter2d(batch, kernels.to(batch.device))

    return _grouped(xs, [None if s is None else True for s in specs], fn)


def _resize(xs: list, targets: list) -> list:
    """targets[i]: ((h, w), mode) or None."""
    return _grouped(xs, targets, lambda batch, key, _: resize(batch, *key))


def _scaled(size, scale: float) -> tuple[int, int]:
    """int(side * scale) pixels per side, at least 1."""
    return tuple(max(1, int(side * scale)) for side in size)


def _each(xs: list, specs: list, fn) -> list:
    return [x if s is None else fn(x, s) for x, s in zip(xs, specs)]


def apply(hr: torch.Tensor, params: list[dict], cfg: SecondOrderConfig) -> torch.Tensor:
    """Degrade HR (B, 3, H, W) in [0, 1] into LR (B, 3, H/scale, W/scale) on the 8-bit grid.

    Deterministic in ``params`` (from ``sample_params``); runs on hr's device. A stage runs
    when it is switched on in ``cfg`` and its entry in the params is not None. With every
    stage off the result is quantize(area resize to H/scale).
    """
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise FacesrError(f"expected HR images of shape (B, 3, H, W), got {tuple(hr.shape)}")
    if len(params) != hr.shape[0]:
        raise FacesrError(f"{len(params)} parameter sets for a batch of {hr.shape[0]}")
    h, w = hr.shape[-2:]
    if any(tuple(p["hr_size"]) != (h, w) for p in params):
        raise FacesrError(f"the parameters were sampled for another image size than {w}x{h}")
    if h % cfg.scale or w % cfg.scale:
        raise FacesrError(f"image size {w}x{h} is not divisible by the scale {cfg.scale}")
    lr_size = (h // cfg.scale, w // cfg.scale)
    on = {s: [p[s] if getattr(cfg, s) else None for p in params] for s in STAGES}

    # helpers over the current list ``xs`` of (1, 3, h, w) samples; sizes differ between samples
    def sized(specs, size_of):
        return [None if r is None else (size_of(x, r["scale"]), r["mode"]) for x, r in zip(xs, specs)]

    def jpeg_where(specs, resize_first):
        keep = [None if f is None or f["resize_first"] != resize_first else f for f in specs]
        return _each(xs, keep, lambda x, f: jpeg(x, f["quality"]))

    xs = list(hr.split(1))
    xs = _blur(xs, on["blur1"])
    xs = _resize(xs, sized(on["resize1"], lambda x, s: _scaled(x.shape[-2:], s)))
    xs = _each(xs, on["noise1"], add_noise)
    xs = _each(xs, on["jpeg1"], lambda x, j: jpeg(x, j["quality"]))
    xs = _blur(xs, on["blur2"])
    xs = _resize(xs, sized(on["resize2"], lambda x, s: _scaled(lr_size, s)))
    xs = _each(xs, on["noise2"], add_noise)
    final = on["final_stage"]  # JPEG, then resize + sinc; or resize + sinc, then JPEG
    xs = jpeg_where(final, resize_first=False)
    xs = _resize(xs, [(lr_size, PLAIN_MODE if f is None else f["mode"]) for f in final])
    xs = _blur(xs, [None if f is None else f["sinc"] for f in final])
    xs = jpeg_where(final, resize_first=True)
    return quantize(torch.cat(xs))


@dataclass(frozen=True)
class SecondOrderDegradation:
    """The degradation as an operator: ``op(hr, seed) -> (lr, params)``; ``to_dict`` for configs."""

    cfg: SecondOrderConfig
    name: str = field(default="second-order", init=False)

    @property
    def scale(self) -> int:
        return self.cfg.scale

    def __call__(self, hr: torch.Tensor, seed) -> tuple[torch.Tensor, list[dict]]:
        params = sample_params(self.cfg, seed, hr.shape[0], tuple(hr.shape[-2:]))
        return apply(hr, params, self.cfg), params

    def to_dict(self) -> dict:
        return {"name": self.name, "scale": self.scale, "config": to_dict(self.cfg)}


for _preset in ("realesrgan", "deepfacesr"):
    DEGRADATIONS.register(_preset, lambda scale, name=_preset: SecondOrderDegradation(SecondOrderConfig.preset(name, scale)))


def second_order_from_dict(data: dict) -> SecondOrderDegradation:
    """Inverse of ``SecondOrderDegradation.to_dict``."""
    if data.get("name") != "second-order":
        raise FacesrError(f"not a second-order degradation: name {data.get('name')!r}")
    cfg = from_dict(SecondOrderConfig, data.get("config", {}), "degradation.config")
    if data.get("scale", cfg.scale) != cfg.scale:
        raise FacesrError(f"degradation: scale {data['scale']} differs from config scale {cfg.scale}")
    return SecondOrderDegradation(cfg)
