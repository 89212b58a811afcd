"""Reading and writing images, with validation that names the file and the problem."""

from __future__ import annotations

import glob
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from facesr.errors import FacesrError, InputError

if TYPE_CHECKING:  # torch only where a tensor is made: reading images does not start it
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
MAX_PIXELS = 64_000_000  # a face tool has no business decoding more; guards decompression bombs


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Return the image as uint8 RGB (H, W, 3); raise InputError for anything unusable."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise InputError(path, f"image too large ({w}x{h} pixels; limit {max_pixels})")
                if w == 0 or h == 0:
                    raise InputError(path, "image has zero size")
                img.load()
                return to_rgb_array(img)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(path, "image too large (decompression bomb guard)") from None
    except UnidentifiedImageError:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            raise InputError(path, "is a video, not an image: restore its frames with --frames K "
                                   "(facesr.upscale_frames in Python)") from None
        raise InputError(path, "not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"corrupt or truncated image ({exc})") from None


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode to uint8 RGB. Transparency is composited over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def default_file_mode() -> int:
    """0o666 minus the process umask: the mode open() would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


TEMP_PREFIX = ".facesr-tmp-"  # every temporary file facesr writes next to an output starts with this


def _temp_path(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def clean_temp_files(folder: str | Path) -> int:
    """Remove the temporary files a killed run left in ``folder`` (one run per folder); returns how many."""
    folder = Path(folder)
    stale = list(folder.glob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)


def _replace_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename to ``path``; the temp file is removed on any error or interrupt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write uint8 RGB atomically (temp file in the same folder, then rename), with the usual file mode."""
    _replace_atomically(Path(path), lambda tmp: Image.fromarray(rgb).save(tmp))


def atomic_write_text(path: str | Path, text: str) -> None:
    _replace_atomically(Path(path), lambda tmp: tmp.write_text(text))


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_name(p))


VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


def expand_inputs(inputs: list[str], recursive: bool = False, on_error=None) -> list[Path]:
    """Files, folders and glob patterns to image paths: argument order, folder and glob contents sorted, no duplicates.

    An input that gives no image (a missing path, a folder or pattern without images) raises FacesrError
    naming it; with ``on_error`` it is reported there and left out, so the other inputs still run.
    FacesrError if no input gives any image.
    """
    found: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = list_images(path, recursive)
            if not images:
                problems.append(f"{item}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found.extend(images)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            images = [m for m in matches if m.is_file() and is_image_name(m)]
            if not images:
                problems.append(f"{item}: pattern matches no images")
            found.extend(images)
        else:
            problems.append(f"{item}: no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise FacesrError(problems[0] if len(problems) == 1 else f"no images found in {' '.join(inputs)}")
    if problems and on_error is None:
        raise FacesrError(problems[0])
    for message in problems:
        on_error(message)
    return unique


def check_output_folder(path, what: str = "the output folder", inputs: list[Path] = ()) -> Path:
    """``path`` as a folder to write into (it need not exist yet); FacesrError naming it, before any work
    is done, when it or a folder above it is an existing file, or when it is the folder of one of the
    ``inputs`` (its outputs would be read as inputs by the next run over that folder)."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"is inside {p}, which is a file"
                raise FacesrError(f"{path}: {where}, not a folder ({what})")
            break
    root = path.resolve()
    inside = next((p for p in inputs if root == Path(p).resolve().parent), None)
    if inside is not None:
        raise FacesrError(f"{path}: holds the input {inside}; choose an output folder apart from the inputs")
    return path


def check_array(img, where: str) -> np.ndarray:
    """A uint8 RGB (H, W, 3) array as given to the Python API; InputError naming ``where`` otherwise."""
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        what = f"{img.dtype} array of shape {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise InputError(where, f"expected a uint8 RGB array (H, W, 3) or a path, got {what}")
    if min(img.shape[:2]) < 1:
        raise InputError(where, "image has zero size")
    return img


def to_tensor(rgb: np.ndarray) -> "torch.Tensor":
    """uint8 (H, W, 3) to float (3, H, W) in [0, 1]."""
    import torch

    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0  # a copy: inputs may be read-only


def to_uint8(x: "torch.Tensor") -> np.ndarray:
    """float (3, H, W) in [0, 1] to uint8 (H, W, 3): clamp, x255, round."""
    import torch

    return torch.round(x.detach().float().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
