"""Datasets of (HR, upsampled LR) pairs.

- ``HRFolderDataset``: HR images; LR made on the fly by the model's LR protocol (its
  deterministic operator, 8-bit, as a stored LR file would be; blind models redraw theirs).
  The LR is made from the whole image and
  then an aligned patch is cropped from HR and from up(LR), so patches see
  exactly the condition a full image sees at inference.

Randomness comes from an explicit ``torch.Generator`` so training resumes exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from facesr.io.images import list_images, read_image, to_tensor
from facesr.degrade.protocol import LRProtocol
from facesr.errors import FacesrError, InputError

log = logging.getLogger(__name__)


class HRFolderDataset:
    def __init__(self, roots, protocol: LRProtocol, hr_size: int, patch_size: int = 0, hflip: bool = True, augment=None,
                 vectors=(), frames: int = 1, motion_px: float = 0.0, reference: str | None = None,
                 vector_dropout: float = 0.0):
        """``vectors``: FeatureTables keyed by image path relative to its root; with them, only images
        that have a vector are used, and each item carries one (drawn among the tables that have it),
        or with probability ``vector_dropout`` the null identity, zeros.
        ``frames`` > 1: synthetic bursts, see ``burst``; "up" and "lr" then stack the frames along channels.
        ``reference``: items also carry "ref", a whole reference face ("same-identity" or "self")."""
        self.files: list[Path] = []
        self.keys: list[str] = []
        for root in roots:
            root = Path(root)
            if not root.is_dir():
                raise FacesrError(f"{root}: training folder not found")
            prepared = root / f"hr_{hr_size}"
            # a folder written by 'facesr prepare': only its HR images are training targets
            base = prepared if prepared.is_dir() else root
            files = list_images(base, recursive=True)
            self.files.extend(files)
            self.keys.extend(f.relative_to(base).as_posix() for f in files)
        if not self.files:
            raise FacesrError(f"no images found in {', '.join(map(str, roots))}")
        self.vectors = list(vectors)
        self.vector_dropout = vector_dropout
        if self.vectors:
            keep = [i for i, k in enumerate(self.keys) if any(t.get(k) is not None for t in self.vectors)]
            if not keep:
                raise FacesrError("no training image has an identity vector: the feature files were made from other "
                                  "folders (names are paths under the folder given to 'facesr features --per-image')")
            if len(keep) < len(self.files):
                log.warning("%d of %d training images have no identity vector and are left out",
                            len(self.files) - len(keep), len(self.files))
            self.files = [self.files[i] for i in keep]
            self.keys = [self.keys[i] for i in keep]
        self.protocol = protocol
        self.operator = operator = protocol.operator
        self.hr_size = hr_size
        self.patch_size = patch_size or hr_size
        if hr_size % operator.scale:
            raise FacesrError(f"hr_size {hr_size} is not divisible by the scale {operator.scale}")
        if self.patch_size % operator.scale or self.patch_size > hr_size:
            raise FacesrError(f"patch_size {self.patch_size} must divide by the scale and fit in {hr_size}")
        self.hflip = hflip
        self.augment = augment  # DataConfig-like: rot90, brightness, contrast, jitter_prob
        if frames < 1 or motion_px < 0:
            raise FacesrError(f"frames must be >= 1 and motion_px >= 0, got {frames}, {motion_px}")
        self.frames, self.motion_px = frames, motion_px
        if reference not in (None, "same-identity", "self"):
            raise FacesrError(f"reference must be null, 'same-identity' or 'self', got {reference!r}")
        self.reference = reference
        self.same_identity: dict[int, list[int]] = {}
        if reference == "same-identity":
            by_folder: dict[Path, list[int]] = {}
            for i, f in enumerate(self.files):
                by_folder.setdefault(f.parent, []).append(i)
            keep = [i for group in by_folder.values() if len(group) > 1 for i in group]
            if not keep:
                raise FacesrError("reference 'same-identity' needs <identity>/ folders with 2 or more images")
            self.files, self.keys = [self.files[i] for i in keep], [self.keys[i] for i in keep]
            position = {old: new for new, old in enumerate(keep)}
            for group in by_folder.values():
                if len(group) > 1:
                    for i in group:
                        self.same_identity[position[i]] = [position[j] for j in group if j != i]
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load_hr(self, index: int) -> torch.Tensor:
        path = self.files[index]
        img = to_tensor(read_image(path))
        if img.shape[-2:] != (self.hr_size, self.hr_size):
            raise InputError(path, f"expected {self.hr_size}x{self.hr_size}, got {img.shape[2]}x{img.shape[1]}")
        return img

    def item(self, index: int, generator: torch.Generator) -> dict:
        """HR patch and up(LR) patch for ``index``; unreadable files are skipped (logged once)."""
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            if i in self.bad:
                continue
            try:
                hr = self.load_hr(i)
                break
            except InputError as exc:
                self.bad.add(i)
                log.warning("skipping training image %s", exc)
        else:
            raise FacesrError("no readable training images")
        if self.augment is not None:
            hr = augment_hr(hr, self.augment, generator)
        stack = burst(hr, self.frames, self.motion_px, generator) if self.frames > 1 else hr[None]
        lr = self.protocol.operator_lr(stack)
        up = self.operator.up(lr).clamp(0, 1).flatten(0, 1)
        lr = lr.flatten(0, 1)
        p, s = self.patch_size, self.operator.scale
        cells = (self.hr_size - p) // s + 1
        y, x = (torch.randint(0, cells, (2,), generator=generator) * s).tolist()
        item = {"hr": hr[:, y : y + p, x : x + p], "up": up[:, y : y + p, x : x + p],
                "lr": lr[:, y // s : (y + p) // s, x // s : (x + p) // s]}
        if self.hflip and torch.rand((), generator=generator) < 0.5:
            item = {k: v.flip(-1) for k, v in item.items()}
        if self.reference:
            item["ref"] = self.reference_image(i, hr, generator)
        if self.vectors:
            found = [v for v in (t.get(self.keys[i]) for t in self.vectors) if v is not None]
            pick = int(torch.randint(0, len(found), (1,), generator=generator)) if len(found) > 1 else 0
            item["vector"] = torch.from_numpy(found[pick].copy())
            if self.vector_dropout and torch.rand((), generator=generator) < self.vector_dropout:
                item["vector"] = torch.zeros_like(item["vector"])
        return item

    def reference_image(self, i: int, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A whole reference face for item ``i`` (its HR ``hr`` after augmentation)."""
        if self.reference == "same-identity":
            others = self.same_identity[i]
            for _ in range(len(others)):
                j = others[int(torch.randint(0, len(others), (1,), generator=generator))]
                try:
                    return self.load_hr(j)
                except InputError as exc:
                    log.warning("skipping reference image %s", exc)
            raise FacesrError(f"{self.files[i]}: no readable reference image in its folder")
        dx, dy = ((torch.rand(2, generator=generator) * 2 - 1) * 8).tolist()
        gain = 0.8 + 0.4 * float(torch.rand((), generator=generator))
        return (shift(hr.flip(-1), dx, dy) * gain).clamp(0, 1)

    def batch(self, indices, generator: torch.Generator) -> dict:
        items = [self.item(i, generator) for i in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def shift(img: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """(C, H, W) moved by (dx, dy) pixels (content moves right/down for positive values), bicubic,
    border pixels repeated."""
    import torch.nn.functional as F

    _, h, w = img.shape
    theta = torch.tensor([[1.0, 0.0, -2.0 * dx / w], [0.0, 1.0, -2.0 * dy / h]], dtype=img.dtype)[None]
    grid = F.affine_grid(theta, (1, *img.shape), align_corners=False)
    return F.grid_sample(img[None], grid, mode="bicubic", padding_mode="border", align_corners=False)[0].clamp(0, 1)


def burst(hr: torch.Tensor, frames: int, motion_px: float, generator: torch.Generator) -> torch.Tensor:
    """(frames, C, H, W): the middle frame (index frames // 2) is ``hr``; each other frame is ``hr``
    shifted by (dx, dy) ~ U(-motion_px, motion_px)^2, the sub-pixel motion between video frames."""
    out = []
    for j in range(frames):
        if j == frames // 2 or motion_px == 0:
            out.append(hr)
            continue
        dx, dy = ((torch.rand(2, generator=generator) * 2 - 1) * motion_px).tolist()
        out.append(shift(hr, dx, dy))
    return torch.stack(out)


LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def augment_hr(hr: torch.Tensor, aug, generator: torch.Generator) -> torch.Tensor:
    """The DeepFaceSR augmentations on the HR image, before LR is made (dossier 4.4).

    Random 90-degree rotation; brightness x U(lo, hi) and then contrast x U(lo, hi)
    around the RGB luma mean, each with probability ``jitter_prob``. Unlike the seed,
    this works on RGB floats (the seed jittered BGR data as RGB, quantised to uint8).
    """
    if aug.rot90:
        k = int(torch.randint(0, 4, (1,), generator=generator))
        hr = torch.rot90(hr, k, dims=(-2, -1))
    for kind in ("brightness", "contrast"):
        bounds = getattr(aug, kind)
        if bounds is None or float(torch.rand((), generator=generator)) >= aug.jitter_prob:
            continue
        factor = bounds[0] + (bounds[1] - bounds[0]) * float(torch.rand((), generator=generator))
        if kind == "brightness":
            hr = (hr * factor).clamp(0, 1)
        else:
            mean = (hr * LUMA).sum(0).mean()
            hr = ((hr - mean) * factor + mean).clamp(0, 1)
    return hr


class EpochSampler:
    """Index of the p-th sample seen in training: a fresh permutation every epoch.

    Depends only on (seed, p), so a resumed run draws the same data.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, None

    def __call__(self, position: int) -> int:
        epoch, k = divmod(position, self.n)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return int(self._perm[k])
