"""The learning-rate schedule of training: linear warm-up, constant or cosine with restarts."""

import math

import pytest

from facesr.train.config import OptimConfig, learning_rate


def test_cosine_restarts_closed_form():
    o = OptimConfig(lr=1e-3, warmup_steps=1, schedule="cosine_restarts", periods=(10, 20), restart_weights=(1.0, 0.5), eta_min=1e-6)
    assert learning_rate(o, 0) == pytest.approx(1e-3)
    assert learning_rate(o, 5) == pytest.approx(1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * 0.5)) / 2)
    assert learning_rate(o, 10) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6))  # restart at half weight
    assert learning_rate(o, 25) == pytest.approx(1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * 15 / 20)) / 2)
    assert learning_rate(o, 30) == pytest.approx(1e-6)
    warm = OptimConfig(lr=1e-3, warmup_steps=4)
    assert [learning_rate(warm, s) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
