"""A diffusers UNet2DModel conditioned on images (channel concatenation) and a vector.

Condition images (k of them, 3 channels each) are concatenated before the noisy
image along channels, condition first as in SR3. An optional identity vector is
projected to the time-embedding width and added to the time embedding, so it
reaches every ResBlock as a per-channel bias (the FASR hook).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facesr.errors import FacesrError


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
            class_embed_type="identity" if cfg.vector_dim else None,
            time_embedding_type=cfg.time_embedding,
        )
        self.vector_proj = nn.Linear(cfg.vector_dim, self.time_embed_dim) if cfg.vector_dim else None

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.cfg.block_out_channels) - 1)

    def forward(self, x_t, noise_input, cond, vector=None):
        """``noise_input`` (B,) goes to the UNet's time embedding as is (sigma for "fourier")."""
        if cond.shape[1] != 3 * self.cfg.cond_images:
            raise FacesrError(f"expected {self.cfg.cond_images} condition image(s), got {cond.shape[1] // 3}")
        extra = None
        if self.vector_proj is not None:
            if vector is None:
                raise FacesrError("this model needs an identity vector")
            extra = self.vector_proj(vector.to(x_t.dtype))
        h = torch.cat([cond.to(x_t.dtype), x_t], dim=1)
        return self.unet(h, noise_input.reshape(-1).float(), class_labels=extra).sample
