"""Sampling options: one typed record from the CLI flags, the API's keywords, a model's recipe and
the benchmark's ``key=value`` pairs alike."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from facesr.errors import FacesrError

PRECISIONS = ("bf16", "fp32", "fp16")


@dataclass
class SamplingOptions:
    sampler: str = "ddim"
    steps: int = 50
    eta: float | None = None  # DDIM stochasticity (0 = deterministic)
    seed: int = 0
    batch_size: int = 16
    precision: str = "bf16"
    strength: float = 1.0  # < 1: warm start from the noised fast estimate (bicubic, or ``init``)
    samples: int = 1  # > 1: average that many samples (posterior-mean estimate), K x steps evaluations
    init: str | None = None  # regression model (name or folder) whose output is the warm start; None: bicubic
    # FASR, RefSR-VAE with ref_identity: classifier-free guidance weight on the identity (2 x evaluations)
    guidance: float = 0.0
    # FASR: the references' identity vector enters multiplied by this (1: as made; 0: the null identity; between,
    # a weaker pull toward whoever the references show, the right person or a wrong one)
    identity_scale: float = 1.0
    # FASR with dlib vectors: gradient guidance toward the identity vector through the differentiable dlib
    # ResNet: D + w sigma g / rms(g), g = grad cos(dlib(D), v); one backward pass of that network a step
    identity_gradient: float = 0.0
    # > 0: rounds of back-projection that make each sample consistent with its LR (a known operator only):
    # x <- x + up(LR) - up(down(x)); no network evaluations
    project: int = 0
    # samples 2, 4, ... run on the mirrored LR (and reference) and are mirrored back: a self-ensemble over the
    # face's left-right symmetry within the samples' cost (needs samples >= 2)
    flip: bool = False
    # the SDE samplers ("pc", "ode"); see facesr.diffusion.pc
    predictor: str = "reverse_diffusion"
    corrector: str = "langevin"
    snr: float = 0.075
    corrector_steps: int = 1
    probability_flow: bool = False
    ode_method: str = "heun"

    @property
    def network_evaluations(self) -> int:
        """Denoiser calls per face: samples x the sampler's evaluations at ``steps`` levels."""
        from facesr.diffusion.samplers import SAMPLERS

        return self.samples * SAMPLERS.get(self.sampler).evaluations(self.steps, self)

    def validate(self) -> "SamplingOptions":
        from facesr.diffusion.samplers import SAMPLERS

        self._check_types()
        SAMPLERS.get(self.sampler)
        for key in ("steps", "samples", "batch_size"):
            if getattr(self, key) < 1:
                raise FacesrError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.eta is not None and not 0 <= self.eta <= 1:
            raise FacesrError(f"eta must be in [0, 1] (0: deterministic DDIM, 1: ancestral), got {self.eta}")
        if self.snr < 0 or self.corrector_steps < 0:
            raise FacesrError(f"snr and corrector_steps must be 0 or more, got {self.snr} and {self.corrector_steps}")
        for key in ("guidance", "identity_gradient", "project", "identity_scale"):
            if getattr(self, key) < 0:
                raise FacesrError(f"{key} must be 0 or more, got {getattr(self, key)}")
        if self.flip and self.samples < 2:
            raise FacesrError("flip mirrors every second sample: it needs samples 2 or more")
        if not 0 < self.strength <= 1:
            raise FacesrError(f"strength must be in (0, 1], got {self.strength}")
        if self.precision not in PRECISIONS:
            raise FacesrError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        return self

    def _check_types(self) -> None:
        """Each option of its declared type (an int is a float too; a bool is neither); floats finite."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if value is None and "None" in kind:
                continue
            if "bool" in kind:
                ok = isinstance(value, bool)
            elif "int" in kind:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif "float" in kind:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            else:
                ok = isinstance(value, str)
            if not ok:
                want = next(w for t, w in _WANTED.items() if t in kind)
                raise FacesrError(f"{f.name} must be {want}, got {value!r}")

    @classmethod
    def for_model(cls, model, draws: bool = False, **given) -> "SamplingOptions":
        """The model's recommended recipe (config.json "sampling"), overridden by ``given`` values that are not None.
        ``draws``: samples that are draws from the faces the LR allows (the report's stability): a recipe whose
        samples are one-step estimates of the mean names what makes them draws in its "draws" entry (e.g.
        {"steps": 8}), which then comes over the recipe."""
        values = model_recipe(model, draws)
        values.update({k: v for k, v in given.items() if v is not None})
        unknown = sorted(set(values) - set(FIELDS))
        if unknown:
            raise FacesrError(f"unknown sampling option(s) {', '.join(unknown)}")
        opts = cls(**values).validate()
        model.check_options(opts)
        check_given(opts, {k for k, v in given.items() if v is not None})
        return opts


_WANTED = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string"}
FIELDS = {f.name: f for f in dataclasses.fields(SamplingOptions)}
RUN_KEYS = ("seed", "batch_size", "precision")  # how a run is done, not part of a model's recipe
RECIPE_KEYS = tuple(k for k in FIELDS if k not in RUN_KEYS)
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def pixel_options(opts: SamplingOptions) -> dict:
    """The options that decide an output's pixels (all but the batch size): what a resumable run records."""
    return {k: v for k, v in dataclasses.asdict(opts).items() if k != "batch_size"}


def recorded_options(saved: dict) -> dict:
    """The pixel options a run recorded, with the default of every option added to facesr since (that run had
    it), so that a run from before a new option still resumes when that option is at its default."""
    return {**pixel_options(SamplingOptions()), **{k: v for k, v in saved.items() if k != "batch_size"}}


def model_recipe(model, draws: bool = False) -> dict:
    """The options of the model's recipe (config.json "sampling"; with ``draws``, its "draws" entry over it)."""
    recipe = {**model.sampling, **(model.sampling.get("draws", {}) if draws else {})}
    return {k: v for k, v in recipe.items() if k in RECIPE_KEYS}


def mean_estimates(model, opts: SamplingOptions) -> bool:
    """True when a diffusion model's samples are one-step estimates of the mean face (steps 1), not draws from
    the faces the LR allows: their agreement overstates stability, their spread understates uncertainty. A
    distilled model's one step from its distillation strength is a draw (``DiffusionSR.one_step_draws``)."""
    from facesr.methods.diffusion_sr import DiffusionSR

    return isinstance(model, DiffusionSR) and opts.steps == 1 and opts.samples > 1 and not model.one_step_draws(opts)


def check_given(opts: SamplingOptions, given: set[str]) -> None:
    """An option the user gave that the chosen sampler would ignore is refused (it would change nothing)."""
    from facesr.diffusion.samplers import SAMPLERS

    spec = SAMPLERS.get(opts.sampler)
    for key in sorted(given):
        takers = [n for n in SAMPLERS.names() if key in SAMPLERS.get(n).options]
        if takers and key not in spec.options:
            raise FacesrError(f"{key} is an option of the {' / '.join(takers)} sampler, not of {opts.sampler}")
    if "init" in given and opts.init and opts.strength >= 1:
        raise FacesrError(f"init {opts.init} warm-starts only with strength < 1 (the strength is {opts.strength})")


def parse_option(key: str, text: str):
    """A recipe value written as text (the benchmark's ``key=value``), converted to the field's type."""
    if key not in RECIPE_KEYS:
        raise FacesrError(f"unknown sampling option {key!r} (known: {', '.join(RECIPE_KEYS)})")
    kind = next(t for name, t in _TYPES.items() if name in str(FIELDS[key].type))
    if kind is bool:
        if text not in ("true", "false"):
            raise FacesrError(f"{key} must be true or false, got {text!r}")
        return text == "true"
    try:
        return kind(text)
    except ValueError:
        raise FacesrError(f"{key} must be a {kind.__name__}, got {text!r}") from None
