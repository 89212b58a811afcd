"""facesr: identity-preserving face super-resolution.

Imports are lazy: ``import facesr`` loads no torch. The public API lives in
``facesr.api`` (``upscale``, ``load_model``, ``evaluate_folders``).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "upscale", "load_model", "evaluate_folders"]


def __getattr__(name):
    if name in ("upscale", "load_model", "evaluate_folders"):
        from facesr import api

        return getattr(api, name)
    raise AttributeError(f"module 'facesr' has no attribute {name!r}")
