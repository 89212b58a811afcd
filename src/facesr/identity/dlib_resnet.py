"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``, CC0) as a PyTorch module.

The weights are read from the file that face-recognition-models installs, with ``dlib_format`` (no
dlib at run time, nothing downloaded). The network is the 29-convolution metric-learning ResNet of
dlib's ``dnn_face_recognition_ex``: a 7x7/2 convolution and 3x3/2 max-pool, then residual stages of
32, 64, 128, 256 and 256 filters (each stage after the first opens with a stride-2 block whose skip
path is a 2x2/2 average pool), a global average pool and a 128-d linear layer without bias. dlib
adds a skip to a block output of another shape by zero-padding both to the larger one; so does this.

Being differentiable, it serves identity losses and guidance. Being dlib's network, it is not a
judge of anything it trained, conditioned or guided (README, "two judges").

    net = load_dlib_resnet()                # frozen, eval mode
    v = net(x)                              # x: (N, 3, 150, 150) RGB in [0, 1] -> (N, 128), raw
    v = net.embed_chips(sr)                 # facesr chips (N, 3, H, W) -> (N, 128), unit length
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facesr.errors import FacesrError
from facesr.identity.dlib_format import DlibFormatError, Layer, read_network

CHIP_SIZE = 150  # dlib's face chip: get_face_chip_details(shape, 150, 0.25)


def resnet_kinds() -> list[str]:
    """The layer kinds of dlib's ``anet_type``, loss first, as ``dlib_format.read_network`` wants them."""
    block = ["affine", "con", "relu", "affine", "con"]
    ares = ["relu", "add_prev1"] + block + ["tag1"]
    ares_down = ["relu", "add_prev2", "avg_pool", "skip1", "tag2"] + block + ["tag1"]
    stages = [[ares_down], [ares, ares, ares_down], [ares, ares, ares_down], [ares, ares, ares, ares_down],
              [ares, ares, ares]]
    body = [kind for stage in stages for unit in stage for kind in unit]
    return ["loss_metric", "fc", "avg_pool"] + body + ["max_pool", "relu", "affine", "con", "input"]


def _padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: both zero-padded (at the end of each axis) to the larger shape, then added."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def pad(t):
        return F.pad(t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1]))
    return pad(a) + pad(b)


class Affine(nn.Module):
    """dlib's affine_ (a frozen batch norm): x * gamma + beta per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class DlibResNet(nn.Module):
    """Built from ``dlib_format`` layer records; ``forward`` runs them from the input up, as dlib does."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        if layers[0].kind != "loss_metric" or layers[-1].kind != "input":
            raise ValueError("layers must run from the loss down to the input")
        self.mean_rgb = tuple(layers[-1].settings["mean_rgb"])
        self.ops: list[tuple[str, dict]] = []
        self.nets = nn.ModuleList()
        for layer in reversed(layers[1:-1]):
            kind, st, arr = layer.kind, layer.settings, layer.arrays
            module = None
            if kind == "con":
                w = torch.from_numpy(arr["weight"])
                module = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), st["stride"], st["padding"],
                                   bias="bias" in arr)
                module.weight.data.copy_(w)
                if "bias" in arr:
                    module.bias.data.copy_(torch.from_numpy(arr["bias"]))
            elif kind == "affine":
                module = Affine(arr["gamma"].size)
                module.gamma.data.copy_(torch.from_numpy(arr["gamma"]))
                module.beta.data.copy_(torch.from_numpy(arr["beta"]))
            elif kind == "fc":
                w = torch.from_numpy(arr["weight"])
                module = nn.Linear(w.shape[1], w.shape[0], bias="bias" in arr)
                module.weight.data.copy_(w)
                if "bias" in arr:
                    module.bias.data.copy_(torch.from_numpy(arr["bias"]))
            if module is not None:
                st = dict(st, module=len(self.nets))
                self.nets.append(module)
            self.ops.append((kind, st))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 150, 150) RGB in [0, 1] -> (N, 128) raw descriptors (dlib's own output, norm about 1.4)."""
        mean = x.new_tensor(self.mean_rgb).view(1, 3, 1, 1)
        x = (x * 255.0 - mean) / 256.0
        tags: dict[str, torch.Tensor] = {}
        for kind, st in self.ops:
            if kind.startswith("tag"):
                tags[kind[3:]] = x
            elif kind.startswith("skip"):
                x = tags[kind[4:]]
            elif kind.startswith("add_prev"):
                x = _padded_add(x, tags[kind[8:]])
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "max_pool":
                x = F.max_pool2d(x, (st["nr"], st["nc"]), st["stride"], st["padding"])
            elif kind == "avg_pool":
                if st["nr"] == 0:  # avg_pool_everything
                    x = x.mean(dim=(2, 3), keepdim=True)
                else:
                    x = F.avg_pool2d(x, (st["nr"], st["nc"]), st["stride"], st["padding"], count_include_pad=False)
            elif kind == "fc":
                x = self.nets[st["module"]](x.flatten(1))
            else:
                x = self.nets[st["module"]](x)
        return x

    def embed_chips(self, chips: torch.Tensor) -> torch.Tensor:
        """facesr chips (N, 3, H, W) in [0, 1] -> unit (N, 128); each chip resized to 150 px (bilinear).

        facesr's chips are dlib 5-point chips with padding 0.2; dlib's own chip has padding 0.25. On the
        dev identities resizing the chip straight to 150 px scored like dlib's re-chipping (see
        ``embedders.DlibEmbedder``), and it keeps the loss a plain differentiable function of the pixels.
        """
        if chips.shape[-2:] != (CHIP_SIZE, CHIP_SIZE):
            chips = F.interpolate(chips, size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear", align_corners=False)
        return F.normalize(self(chips), dim=1)


def dlib_resnet_file() -> Path:
    from facesr.identity.embedders import recognition_models

    return Path(recognition_models().face_recognition_model_location())


def load_dlib_resnet(path: str | Path | None = None) -> DlibResNet:
    """The frozen network in eval mode, from ``path`` or face-recognition-models' file."""
    path = Path(path) if path is not None else dlib_resnet_file()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FacesrError(f"{path}: cannot read dlib's network ({exc.strerror or exc})") from None
    try:
        net = DlibResNet(read_network(data, resnet_kinds()))
    except DlibFormatError as exc:
        raise FacesrError(f"{path}: not dlib's face recognition ResNet ({exc})") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
