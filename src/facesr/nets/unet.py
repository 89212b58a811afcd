"""A diffusers UNet2DModel conditioned on images (channel concatenation) and a vector.

Condition images (k of them, 3 channels each) are concatenated before the noisy
image along channels, condition first as in SR3.

An optional identity vector f (FASR, dossier section 2.2) is normalised, projected to
p (the time-embedding width), and enters every ResBlock as a per-channel bias right
after its first convolution, next to the time embedding:
h += time_emb_proj(SiLU(temb)) + Dense_i(SiLU(p)). Each Dense_i is zero-initialised, so
a model starts exactly as its unconditioned counterpart and can be fine-tuned from it.
Parity options: ``vector_norm = "minmax"`` (per-vector min-max, the reference) and
``vector_shared_linear`` (p = the time MLP's second Linear applied to SiLU(f), the
reference's weight sharing; needs vector_dim equal to the time-embedding width).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import FacesrError


# Embedders that only judge (README, "Identity you can check"): never a condition, a loss or a guide.
JUDGE_ONLY = ("faceplugin", "onnx")


@dataclass
class UNetConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 64, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (3,)  # 0 = full resolution
    attention_head_dim: int = 32
    norm_num_groups: int = 32
    dropout: float = 0.0
    cond_images: int = 1
    vector_dim: int = 0  # 0: no vector conditioning
    vector_embedder: str = "dlib"  # the identity embedder that makes the vector (facesr.metrics.identity.make_embedder)
    vector_norm: str = "none"  # "none", "l2" (unit length) or "minmax" (the reference's per-vector min-max)
    vector_shared_linear: bool = False  # parity: project with the time MLP's second Linear, as the reference
    # "positional": sinusoidal embedding of the noise input (SR3, VP/subVP SDEs);
    # "fourier": Gaussian Fourier features of log(sigma), and the output divided by
    # sigma (NCSN++'s VE score parameterisation, as diffusers implements it).
    time_embedding: str = "positional"
    # SR3 only: the network sees noise_embedding_scale * sqrt(gamma). SR3 feeds sqrt(gamma)
    # unscaled (scale 1), which leaves its sinusoidal embedding nearly constant;
    # 1000 spreads it over the range diffusers' embedding is designed for.
    noise_embedding_scale: float = 1000.0

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        self.attention_levels = tuple(self.attention_levels)
        n = len(self.block_out_channels)
        if any(not 0 <= lvl < n for lvl in self.attention_levels):
            raise FacesrError(f"attention_levels {self.attention_levels} outside 0..{n - 1}")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise FacesrError("every block_out_channels entry must be divisible by norm_num_groups")
        if self.cond_images < 1:
            raise FacesrError("cond_images must be at least 1")
        if self.time_embedding not in ("positional", "fourier"):
            raise FacesrError(f"time_embedding must be 'positional' or 'fourier', got {self.time_embedding!r}")
        if self.vector_dim and self.vector_embedder.partition(":")[0] in JUDGE_ONLY:
            raise FacesrError(f"vector_embedder {self.vector_embedder!r}: the ONNX ArcFace networks are facesr's "
                              "independent judges, and facesr never trains, conditions or guides with the network "
                              "that judges its figures; condition on 'dlib'")
        if self.vector_norm not in ("none", "l2", "minmax"):
            raise FacesrError(f"vector_norm must be 'none', 'l2' or 'minmax', got {self.vector_norm!r}")
        if self.vector_shared_linear and self.vector_dim != 4 * self.block_out_channels[0]:
            raise FacesrError(f"vector_shared_linear needs vector_dim = 4 x block_out_channels[0] = "
                              f"{4 * self.block_out_channels[0]} (the time-embedding width), got {self.vector_dim}")


def normalise_vector(f: torch.Tensor, how: str) -> torch.Tensor:
    """(B, D) -> (B, D). "minmax": (f - min) / (max - min) per vector (0 where max = min)."""
    if how == "l2":
        return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if how == "minmax":
        lo, hi = f.amin(dim=1, keepdim=True), f.amax(dim=1, keepdim=True)
        return (f - lo) / (hi - lo).where(hi > lo, torch.ones_like(hi))
    return f


class ConditionalUNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        from diffusers import UNet2DModel

        self.cfg = cfg
        levels = range(len(cfg.block_out_channels))
        down = tuple("AttnDownBlock2D" if i in cfg.attention_levels else "DownBlock2D" for i in levels)
        up = tuple("AttnUpBlock2D" if i in cfg.attention_levels else "UpBlock2D" for i in reversed(levels))
        self.time_embed_dim = cfg.block_out_channels[0] * 4
        self.unet = UNet2DModel(
            in_channels=3 * cfg.cond_images + 3,
            out_channels=3,
            block_out_channels=cfg.block_out_channels,
            down_block_types=down,
            up_block_types=up,
            layers_per_block=cfg.layers_per_block,
            attention_head_dim=cfg.attention_head_dim,
            norm_num_groups=cfg.norm_num_groups,
            dropout=cfg.dropout,
            add_attention=bool(cfg.attention_levels),
            time_embedding_type=cfg.time_embedding,
        )
        self.vector_proj = None
        self._p = None  # projected identity vector during a forward pass
        if cfg.vector_dim:
            if not cfg.vector_shared_linear:
                self.vector_proj = nn.Linear(cfg.vector_dim, self.time_embed_dim)
            resblocks = [m for m in self.unet.modules() if hasattr(m, "time_emb_proj") and m.time_emb_proj is not None]
            self.vector_bias = nn.ModuleList(nn.Linear(self.time_embed_dim, m.time_emb_proj.out_features) for m in resblocks)
            for dense, block in zip(self.vector_bias, resblocks):
                nn.init.zeros_(dense.weight)
                nn.init.zeros_(dense.bias)
                block.time_emb_proj.register_forward_hook(self._bias_hook(dense))

    def _bias_hook(self, dense: nn.Linear):
        def hook(_module, _inputs, out):
            return out + dense(F.silu(self._p)).to(out.dtype)

        return hook

    def project_vector(self, vector: torch.Tensor) -> torch.Tensor:
        f = normalise_vector(vector.float(), self.cfg.vector_norm)
        if self.cfg.vector_shared_linear:
            return self.unet.time_embedding.linear_2(F.silu(f))
        return self.vector_proj(f)

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.cfg.block_out_channels) - 1)

    def forward(self, x_t, noise_input, cond, vector=None):
        """``noise_input`` (B,) goes to the UNet's time embedding as is (sigma for "fourier")."""
        if cond.shape[1] != 3 * self.cfg.cond_images:
            raise FacesrError(f"expected {self.cfg.cond_images} condition image(s), got {cond.shape[1] // 3}")
        h = torch.cat([cond.to(x_t.dtype), x_t], dim=1)
        if not self.cfg.vector_dim:
            return self.unet(h, noise_input.reshape(-1).float()).sample
        if vector is None:
            raise FacesrError("this model needs an identity vector (a FASR model: give reference images of the person)")
        if vector.shape != (x_t.shape[0], self.cfg.vector_dim):
            raise FacesrError(f"identity vector of shape {tuple(vector.shape)}, expected ({x_t.shape[0]}, {self.cfg.vector_dim})")
        self._p = self.project_vector(vector.to(x_t.device))
        try:
            return self.unet(h, noise_input.reshape(-1).float()).sample
        finally:
            self._p = None
