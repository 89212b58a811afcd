"""Blind degradations: a name -> a factory ``make(scale)`` of an operator ``op(hr, seed) -> (lr, records)``.

A blind LR protocol draws each image's degradation from a seed and returns the drawn parameters as
JSON records, so a test set can be rebuilt exactly. Each kind registers its names where it is defined.
"""

from __future__ import annotations

from facesr.registry import Registry

DEGRADATIONS = Registry("degradation", modules=("facesr.degrade.second_order", "facesr.degrade.photo"))


def make_degradation(name: str, scale: int):
    return DEGRADATIONS.get(name)(scale)
