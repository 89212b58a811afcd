"""RGB frames stacked along channels: (B, 3k, H, W), the middle frame (index k // 2) the target."""

from __future__ import annotations


def middle_channels(frames: int) -> slice:
    """The channels of the middle frame (index frames // 2) in ``frames`` RGB frames stacked along channels."""
    return slice(3 * (frames // 2), 3 * (frames // 2) + 3)


def middle_frame(stack):
    """The middle frame of RGB frames stacked along channels (B, 3k, H, W); the image itself when k = 1."""
    return stack[:, middle_channels(stack.shape[1] // 3)]


def window_indices(n: int, i: int, k: int, step: int = 1) -> list[int]:
    """Indices of the k frames centred on frame i, ``step`` frames apart, clamped to [0, n-1]."""
    return [min(n - 1, max(0, i + step * (j - k // 2))) for j in range(k)]
