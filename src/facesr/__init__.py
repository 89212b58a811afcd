"""facesr: identity-preserving face super-resolution.

Imports are lazy: ``import facesr`` loads no torch. The public API lives in
``facesr.api`` (``upscale``, ``upscale_frames``, ``restore``, ``load_model``, ``evaluate_folders``).
"""

from facesr._version import __version__

import facesr.errors as errors  # noqa: E402,F401  (no torch)

API = ("upscale", "upscale_frames", "restore", "load_model", "evaluate_folders")
__all__ = ["__version__", "errors", *API]


def __getattr__(name):
    if name in API:
        from facesr import api

        return getattr(api, name)
    raise AttributeError(f"module 'facesr' has no attribute {name!r}")
