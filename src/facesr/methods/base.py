"""The declared interface of every SR method, and config save/load written once.

A method (SR3, score SDE, regression, RefSR-VAE) is one ``SRMethod`` subclass in its own module of
``facesr.methods``, registered with ``@register_method(name)``; ``METHODS.get(name)`` imports only
that module. What a method declares:

- ``needs``: what it takes besides the LR image (an identity vector, a reference face, k frames);
- ``lr_protocol``: how its LR images are made from HR (the only place LR is made);
- ``super_resolve(lr, conditions, options, generator, init)``: LR plus conditions and options to SR;
- ``training_loss(batch, generator)``: its loss (``forward`` calls it, so DDP can wrap the model);
- ``network_evaluations(options)``: what a face costs; ``identity_passes(options)``: what it adds in passes
  of a face network (a refinement toward the reference's identity);
- ``draws``: whether samples with other seeds differ (the report's stability and the uncertainty map need it);
- ``input_problem(h, w)``: why an LR size cannot be processed.

``save_pretrained`` / ``from_pretrained`` write and read a folder with config.json (method, typed
config, recipe, card) plus model/ema safetensors, as diffusers does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from facesr.config import from_dict, to_dict
from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError
from facesr.io.images import atomic_write_text
from facesr.io.weights import load_safetensors, save_safetensors
from facesr.registry import Registry

METHODS = Registry("method", package="facesr.methods")


def register_method(name: str):
    """Class decorator: ``@register_method("sr3")`` names the method and registers it."""

    def deco(cls):
        cls.method = name
        return METHODS.register(name)(cls)

    return deco


@dataclass(frozen=True)
class Needs:
    """What a method takes besides the LR image."""

    vector_dim: int = 0  # FASR: an identity vector of this size, made by ``vector_embedder``
    vector_embedder: str | None = None
    reference: bool = False  # RefSR: an aligned HR photo of the same person
    frames: int = 1  # MF-SR3: this many consecutive LR frames, stacked along channels

    def describe(self) -> str:
        parts = []
        if self.vector_dim:
            parts.append(f"{self.vector_embedder} {self.vector_dim}-d identity vector")
        if self.reference:
            parts.append("reference face")
        if self.frames > 1:
            parts.append(f"{self.frames} frames")
        return ", ".join(parts) or "-"


class ConditionError(FacesrError):
    """A model lacks (or was given) an input besides the LR image. The message names the parameter;
    the CLI names its flag instead (``for_flags``)."""

    def __init__(self, template: str, param: str):
        self.template, self.param = template, param
        super().__init__(template.format(param=param))

    def for_flags(self, flags: dict[str, str]) -> FacesrError:
        return FacesrError(self.template.format(param=flags.get(self.param, self.param)))


@dataclass
class Conditions:
    """A batch's inputs besides the LR: identity vectors (B, D) and reference faces (B, 3, H, W).
    For one input the same class holds unbatched tensors; ``stack`` batches them."""

    vector: torch.Tensor | None = None
    ref: torch.Tensor | None = None

    @staticmethod
    def stack(items: list["Conditions"], device=None) -> "Conditions":
        def join(key):
            values = [getattr(c, key) for c in items]
            if all(v is None for v in values):
                return None
            if any(v is None for v in values):
                raise FacesrError(f"some inputs of the batch have a {key}, others none")
            return torch.stack(values).to(device)

        return Conditions(join("vector"), join("ref"))


class SRMethod(nn.Module):
    method: ClassVar[str] = ""
    config_class: ClassVar[type]
    uses_sampler: ClassVar[bool] = False  # sampling options (sampler, steps, ...) apply
    draws: ClassVar[bool] = True  # samples of other seeds differ; False: every "sample" is the same image

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.lr_protocol = self.make_lr_protocol(cfg)
        self.source: str | None = None  # the folder it was loaded from
        self.label: str | None = None  # the bundled model's name, when it is one
        self.card: dict = {}
        self.sampling: dict = {}  # the recommended recipe (config.json "sampling")

    # --- what it is ----------------------------------------------------------------------
    @staticmethod
    def make_lr_protocol(cfg) -> LRProtocol:
        return LRProtocol.of(cfg.operator, cfg.scale)

    @property
    def needs(self) -> Needs:
        return Needs()

    @property
    def identity_networks(self) -> tuple[str, ...]:
        """Embedder specs of the face networks this model was conditioned on, trained with or guided by:
        a judge built on one of them is not independent of it (README, "two judges")."""
        if not self.needs.vector_embedder:
            return ()
        from facesr.identity.embedders import networks_of

        return networks_of(self.needs.vector_embedder)

    # --- the identity its conditions pull toward (the reference gate reads these) ----------------
    @property
    def identity_space(self) -> str | None:
        """The embedder spec whose space holds the identity a condition pulls the output toward (FASR: its
        vector's embedder); None when no condition pulls toward an identity."""
        return self.needs.vector_embedder if self.needs.vector_dim else None

    def identity_condition(self, cond: Conditions) -> torch.Tensor | None:
        """The identity vector one input's ``cond`` pulls toward (FASR: ``cond.vector``), None for none."""
        return cond.vector if self.needs.vector_dim else None

    # what the reference gate's refusal of an input's condition means, in one phrase
    gate_refusal: ClassVar[str] = "references not used (the face does not match them; null identity instead)"

    def null_condition(self, cond: Conditions) -> Conditions:
        """``cond`` without its identity (FASR: the zero vector, which vector dropout shows it in training)."""
        return Conditions(torch.zeros(self.needs.vector_dim), cond.ref)

    @property
    def operator(self):
        return self.lr_protocol.operator

    @property
    def scale(self) -> int:
        return self.cfg.scale

    @property
    def hr_size(self) -> int:
        return self.cfg.hr_size

    @property
    def lr_size(self) -> int:
        return self.cfg.hr_size // self.cfg.scale

    @property
    def name(self) -> str:
        return self.label or self.source or self.method

    def upsample(self, lr: torch.Tensor) -> torch.Tensor:
        return self.lr_protocol.upsample(lr)

    # --- what it does --------------------------------------------------------------------
    def super_resolve(self, lr: torch.Tensor, conditions: Conditions | None = None, options=None, generator=None,
                      init: torch.Tensor | None = None) -> torch.Tensor:
        """LR (B, 3k, h, w) in [0, 1] to SR (B, 3, h*s, w*s) in [0, 1]. ``options``: a
        ``facesr.engine.SamplingOptions`` (or anything with its attributes); ``generator``: one
        torch.Generator or one per image; ``init``: an HR-size warm start (diffusion models)."""
        raise NotImplementedError

    def training_loss(self, batch: dict, generator=None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: dict, generator=None) -> torch.Tensor:
        return self.training_loss(batch, generator)

    def network_evaluations(self, options) -> int:
        """Network passes a face costs: one a sample."""
        return getattr(options, "samples", 1)

    def identity_passes(self, options) -> int:
        """Forward and backward passes of a face network a face costs at most besides ``network_evaluations``
        (none unless the method refines its output toward an identity)."""
        return 0

    def input_problem(self, h: int, w: int) -> str | None:
        return None

    # Peak working memory per face and output pixel while restoring (float32), measured with
    # benchmarks-style runs of the bundled models: about 13 MB a 128x128 face for the regression
    # models and the VAEs, 35 MB for the diffusion UNets (see ``facesr.engine.run.check_memory``).
    bytes_per_output_pixel: ClassVar[int] = 900

    def memory_per_face(self, h: int, w: int) -> int:
        """Bytes one LR face of h x w needs while it is restored (an estimate, with a 1.5x margin)."""
        return int(1.5 * self.bytes_per_output_pixel * h * w * self.scale**2)

    def check_conditions(self, conditions: Conditions | None) -> None:
        """Raise ConditionError unless ``conditions`` hold exactly what ``needs`` asks for."""
        needs, cond = self.needs, conditions or Conditions()
        if needs.vector_dim and cond.vector is None:
            raise ConditionError(f"{self.name} is conditioned on identity (FASR): give {{param}} with other images "
                                 "of the person, or a features file from 'facesr features'", "refs")
        if not needs.vector_dim and cond.vector is not None:
            raise ConditionError(f"{{param}}: {self.name} takes no identity vector (not a FASR model)", "refs")
        if needs.reference and cond.ref is None:
            raise ConditionError(f"{self.name} needs a reference photo of the person: give {{param}}", "ref")
        if not needs.reference and cond.ref is not None:
            raise ConditionError(f"{{param}}: {self.name} takes no reference photo (only RefSR-VAE models do)", "ref")

    def check_options(self, options) -> None:
        if getattr(options, "guidance", 0) and not self.identity_space:
            raise FacesrError(f"guidance is for FASR models and RefSR-VAE with ref_identity (an identity to guide by); "
                              f"{self.name} has none")
        if getattr(options, "identity_scale", 1) != 1 and not self.needs.vector_dim:
            raise FacesrError(f"identity_scale weighs a FASR model's identity vector; {self.name} takes none")
        if getattr(options, "project", 0) and not self.lr_protocol.deterministic:
            raise FacesrError(f"project makes the output consistent with a known LR operator; {self.name}'s LR is blind "
                              f"({self.lr_protocol.degradation})")
        if getattr(options, "identity_gradient", 0) and (self.needs.vector_embedder, self.needs.vector_dim) != ("dlib", 128):
            raise FacesrError(f"identity_gradient is for FASR models on dlib vectors (it guides through dlib's network); "
                              f"{self.name} takes {self.needs.describe()}")

    def prepare_training(self) -> list[str]:
        """Called once when a training run starts at step 0 (after ``init_from``), e.g. to fill frozen parts
        from another model; returns lines for the log."""
        return []

    def carry_records(self, saved: dict) -> None:
        """Takes what ``prepare_training`` recorded in the config (``saved``, a config.json) of the model whose
        weights a run resumes (a checkpoint) or starts from (``init_from``): the run's own config does not hold it."""

    def adapt_init_state(self, state: dict) -> dict:
        """Weights of another model made to fit this one (``init_from``); unchanged by default."""
        return state

    # --- config and weights --------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"method": self.method, "config": to_dict(self.cfg)}

    @classmethod
    def from_config_dict(cls, data: dict, where: str = "config.json") -> "SRMethod":
        return cls(from_dict(cls.config_class, data.get("config", {}), where))

    def save_pretrained(self, folder, ema_state: dict | None = None, include_raw: bool = True, card: dict | None = None,
                        sampling: dict | None = None) -> None:
        """config.json, model.safetensors (``include_raw``) and ema.safetensors (if given); ``sampling`` is
        the recommended recipe (default: the model's own)."""
        from facesr._version import __version__

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": "pt"}
        for name, tensors in (("model.safetensors", self.state_dict() if include_raw else None),
                              ("ema.safetensors", ema_state)):
            if tensors is not None:
                save_safetensors(tensors, folder / name, meta)
            else:
                (folder / name).unlink(missing_ok=True)  # the folder holds exactly what was saved
        config = {**self.config_dict(), "facesr_version": __version__}
        if card:
            config["card"] = card
        sampling = sampling or self.sampling
        if sampling:
            config["sampling"] = sampling
        atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder, device="cpu", use_ema: bool = True) -> "SRMethod":
        model = load_pretrained(folder, device, use_ema)
        if not isinstance(model, cls):
            raise FacesrError(f"{folder}: holds a {model.method} model, not {cls.method or cls.__name__}")
        return model


def read_config(folder: Path) -> dict:
    try:
        config = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise FacesrError(f"{folder / 'config.json'}: not valid JSON ({exc.msg})") from None
    except OSError as exc:
        raise FacesrError(f"{folder / 'config.json'}: cannot read ({exc.strerror})") from None
    if not isinstance(config, dict):
        raise FacesrError(f"{folder / 'config.json'}: expected a JSON object")
    return config


def load_pretrained(folder, device="cpu", use_ema: bool = True) -> SRMethod:
    """The model saved in ``folder`` (config.json plus ema/model safetensors; EMA preferred)."""
    folder = Path(folder)
    config = read_config(folder)
    cls = METHODS.get(str(config.get("method", "?")))
    model = cls.from_config_dict(config, str(folder / "config.json"))
    candidates = ["ema.safetensors", "model.safetensors"] if use_ema else ["model.safetensors", "ema.safetensors"]
    weights = next((folder / c for c in candidates if (folder / c).is_file()), None)
    if weights is None:
        raise FacesrError(f"{folder}: no model.safetensors or ema.safetensors")
    missing, unexpected = model.load_state_dict(load_safetensors(weights), strict=False)
    if missing or unexpected:
        raise FacesrError(f"{weights}: weights do not match config.json "
                          f"(missing {len(missing)}, unexpected {len(unexpected)}, e.g. {(missing or unexpected)[0]})")
    model.source = str(folder)
    model.card = config.get("card", {})
    model.sampling = config.get("sampling", {})
    return model.to(device).eval()
