"""Multi-frame data (MF-SR3, dossier 3.2): n frames per clip at a fixed interval.

``prepare_video`` writes, for every clip,

    <out>/hr_<H>/<clip>/frame_<k>.png       HR frames, k = 0 .. n-1 in time order
    <out>/lr_<h>/<clip>/frame_<k>.png       quantise(operator.down(HR))
    <out>/sr_<h>_<H>/<clip>/frame_<k>.png   operator.up(LR), 8-bit
    <out>/clips.json                        per clip: source, picked frame indices and times, fps
    <out>/degradation.json                  the operator, as ``facesr prepare`` writes it

for evaluation and tuning on real clips (``benchmarks/video.py`` reads the frame folders): the upsampled
LR frames stacked along the channels in frame order are the condition, the middle frame's HR (index
n // 2) the target. MF-SR3 trains on synthetic bursts of stills (``facesr.data.datasets.burst``).

Unlike the MF-SR3 reference (dossier 3.6): clips are listed once (no duplicated first entry),
exactly ``n_frames`` frames are selected and checked (never "all frames in the folder"), and
nothing is hard-coded to n = 3. LR is made from the stored HR frame (so LR = D(HR) exactly,
3.6 item 11), not from the original resolution.

How a source is recognised (``discover_clips``):

- a file: a video (anything PyAV/FFmpeg opens: mp4, avi, mkv, webm, mpg ...); an image file
  given directly is a user error (give its folder);
- a folder with image files directly inside: one clip, its frames sorted by file name;
- any other folder: a parent; each child folder with images directly inside and each child
  file with a video suffix (``VIDEO_SUFFIXES``) is a clip, in name order (one level only;
  hidden entries, child folders without images and the output folder are ignored).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesr.io.images import atomic_write_text, is_image_name, list_images, read_image, to_tensor, to_uint8, write_image
from facesr.errors import FacesrError, InputError
from facesr.identity.align import ALIGN_PADDING, FaceAligner

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".flv", ".wmv", ".3gp", ".ogv"}


# ---------------------------------------------------------------------------------------------
# reading frames


class FolderFrames:
    """A folder of frame images, sorted by file name; random access, read lazily (uint8 RGB)."""

    kind = "frames"

    def __init__(self, folder: Path, files: list[Path], fps: float, fps_from: str):
        self.path, self.files, self.fps, self.fps_from = folder, files, fps, fps_from

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        return read_image(self.files[i])

    def __iter__(self):
        return (read_image(f) for f in self.files)


class VideoFrames:
    """A video file decoded lazily, in order, with PyAV: iterate for uint8 RGB frames.

    ``decode()`` yields ``(index, pts seconds or None, rgb, corrupt)``; ``corrupt`` is FFmpeg's
    AV_FRAME_FLAG_CORRUPT. FFmpeg conceals most bitstream damage without failing and flags
    only some damaged frames, so a damaged file is not always detected. The frame count is not
    taken from the container header (often absent or wrong); callers decode until they have
    what they need. Display-rotation metadata is not applied.
    """

    kind = "video"

    def __init__(self, path: Path, fps: float, fps_from: str):
        self.path, self.fps, self.fps_from = path, fps, fps_from

    def decode(self):
        av = _import_av()
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as exc:  # checked when opened; file changed since
            raise InputError(self.path, f"cannot open video ({_av_reason(exc)})") from None
        index = 0
        try:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = _decoder_threads()
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else None
                yield index, t, frame.to_ndarray(format="rgb24"), bool(getattr(frame, "is_corrupt", False))
                index += 1
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(self.path, f"corrupt video: decoding failed after {index} frame(s) ({_av_reason(exc)})") from None
        finally:
            container.close()

    def __iter__(self):
        return (rgb for _, _, rgb, _ in self.decode())


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise FacesrError(f"reading video files needs PyAV ({exc}); pip install \"av>=12,<17\"") from None
    return av


def _av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.split(": '")[0].strip()  # FFmpeg messages repeat the file name; the caller names it


def _decoder_threads() -> int:
    from facesr.runtime import default_num_threads

    requested = os.environ.get("FACESR_NUM_THREADS")
    return int(requested) if requested else default_num_threads()


def _positive_fps(value, where) -> float:
    try:
        fps = float(value)
    except (TypeError, ValueError):
        fps = float("nan")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(where, f"fps must be a positive number, got {value!r}")
    return fps


def _folder_fps(folder: Path, fps) -> tuple[float, str]:
    meta = folder / "meta.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(meta, f"not valid JSON ({exc})") from None
        if isinstance(data, dict) and data.get("fps") is not None:
            return _positive_fps(data["fps"], meta), "meta.json"
    if fps is not None:
        return _positive_fps(fps, "--fps"), "--fps"
    raise InputError(folder, "frame rate unknown: no meta.json with an 'fps' field next to the frames; pass --fps")


def read_frames(source, fps: float | None = None):
    """-> (frames, fps). ``frames``: ``FolderFrames`` (a lazily-read sequence) for a folder of
    frame images, ``VideoFrames`` (a lazy iterator) for a video file; both give uint8 RGB
    (H, W, 3) arrays and carry ``.fps_from``.

    Frame rate: a video's container rate (``average_rate``, else ``guessed_rate``), with
    ``fps`` only as a fallback when the container has none; a folder's ``meta.json`` "fps"
    field, else ``fps``, else an InputError saying so. Unreadable, empty or unsupported
    sources raise ``InputError(path, problem)``.
    """
    path = Path(source)
    if not path.exists():
        raise InputError(path, "file or folder not found")
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise InputError(path, "no frame images in this folder")
        rate, fps_from = _folder_fps(path, fps)
        return FolderFrames(path, files, rate, fps_from), rate
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    if is_image_name(path):
        raise InputError(path, "is an image, not a video; give the folder of frames")
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(path, "no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(path, f"not a readable video ({_av_reason(exc)})") from None
    if rate:
        rate, fps_from = float(rate), "container"
    elif fps is not None:
        rate, fps_from = _positive_fps(fps, "--fps"), "--fps"
    else:
        raise InputError(path, "the container gives no frame rate; pass --fps")
    return VideoFrames(path, rate, fps_from), rate


# ---------------------------------------------------------------------------------------------
# choosing frames


def _check_selection(n: int, interval_s: float, start_s: float) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise FacesrError(f"the number of frames must be an integer >= 1, got {n!r}")
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise FacesrError(f"the frame interval must be > 0 seconds, got {interval_s!r}")
    if not (math.isfinite(start_s) and start_s >= 0):
        raise FacesrError(f"the start time must be >= 0 seconds, got {start_s!r}")


def frame_indices(fps: float, n: int, interval_s: float, start_s: float = 0.0) -> list[int]:
    """``int(round((start_s + i * interval_s) * fps))`` for i = 0 .. n-1, without a length check.

    Rounding is to the nearest frame with Python's ``round``: an exact half goes to the even
    index (at 25 fps and 0.5 s: 12.5 -> 12, 37.5 -> 38, so the picks are 0, 12, 25, 38).
    Rounding, not truncation as in the MF-SR3 reference, so float noise (0.1 * 3 * 10 =
    3.0000000000000004, or 2.9999...) never moves a pick by a whole frame. Raises FacesrError
    when two picks would be the same frame (interval shorter than a frame).
    """
    _check_selection(n, interval_s, start_s)
    fps = _positive_fps(fps, "fps")
    idx = [int(round((start_s + i * interval_s) * fps)) for i in range(n)]
    if len(set(idx)) != len(idx):
        raise FacesrError(f"an interval of {interval_s} s is shorter than one frame at {fps:g} fps: frames would repeat")
    return idx


def select_frames(n_total: int | None, fps: float, n: int, interval_s: float, start_s: float = 0.0) -> list[int] | None:
    """Frame indices ``int(round((start_s + i * interval_s) * fps))``, i = 0 .. n-1 (see
    ``frame_indices`` for the rounding), or None when the clip has too few frames
    (the last index >= ``n_total``). ``n_total=None``: length unknown, no check.
    """
    idx = frame_indices(fps, n, interval_s, start_s)
    if n_total is not None and idx[-1] >= n_total:
        return None
    return idx


def _too_short(have: int, idx: list[int], fps: float, interval_s: float, start_s: float) -> str:
    return (f"too short: {have} frame(s) at {fps:g} fps, {len(idx)} frames at {interval_s:g} s intervals from "
            f"{start_s:g} s need frame index {idx[-1]}")


def pick_frames(frames, fps: float, n: int, interval_s: float, start_s: float = 0.0) -> dict:
    """Decode or read only the selected frames of ``frames`` (from ``read_frames``).

    -> {"indices", "times_s" (index / fps), "images" (uint8 RGB), and for videos "pts_s"
    (the decoded frames' presentation times)}. A clip that is too short -> InputError.
    """
    if isinstance(frames, VideoFrames):
        idx = frame_indices(fps, n, interval_s, start_s)
        wanted, images, pts = set(idx), [], []
        count = 0
        for i, t, rgb, corrupt in frames.decode():
            count = i + 1
            if i in wanted:
                if corrupt:
                    raise InputError(frames.path, f"corrupt video: frame {i} is damaged (flagged by the decoder)")
                images.append(rgb)
                pts.append(None if t is None else round(t, 6))
                if i == idx[-1]:
                    break
        if len(images) < n:
            raise InputError(frames.path, _too_short(count, idx, fps, interval_s, start_s))
        extra = {"pts_s": pts}
    else:
        idx = select_frames(len(frames), fps, n, interval_s, start_s)
        if idx is None:
            idx = frame_indices(fps, n, interval_s, start_s)
            raise InputError(frames.path, _too_short(len(frames), idx, fps, interval_s, start_s))
        images = [frames[i] for i in idx]
        extra = {"source_files": [frames.files[i].name for i in idx]}
    return {"indices": idx, "times_s": [round(i / fps, 6) for i in idx], "images": images, **extra}


# ---------------------------------------------------------------------------------------------
# framing: dlib alignment or centre crop


def _hr_frame(rgb: np.ndarray, size: int, aligner, where, index: int, fps: float) -> np.ndarray:
    if aligner is not None:
        chip = aligner(rgb)
        if chip is None:
            raise InputError(where, f"no face found in frame {index} (t = {index / fps:.3f} s); "
                                    "the clip is skipped so aligned and unaligned frames are not mixed")
        return chip
    from facesr.data.prepare import center_square_resize

    return to_uint8(center_square_resize(to_tensor(rgb), size))


# ---------------------------------------------------------------------------------------------
# finding clips


@dataclass
class ClipSource:
    path: Path
    name: str
    renamed_from: str | None = None
    problem: str | None = field(default=None)  # a source that yields no clip (reported, skipped)


def discover_clips(sources, exclude=None, on_error=None) -> list[ClipSource]:
    """Sources (see the module docstring) -> clips with unique names, in argument order.

    A clip is named after its file stem or folder name; a name already taken (compared
    case-insensitively, for case-insensitive file systems) gets ``_2``, ``_3`` ... and
    ``renamed_from``. A missing path or an image file is a user error: FacesrError naming it,
    or with ``on_error``, reported there (one line) and left out, so the other sources still run.
    A folder holding nothing usable comes back with ``problem`` set.
    """
    exclude = Path(exclude).resolve() if exclude is not None else None
    found: list[tuple[Path, str | None]] = []

    def problem(message: str) -> None:
        if on_error is None:
            raise FacesrError(message)
        on_error(message)

    for item in sources:
        path = Path(item)
        if not path.exists():
            problem(f"{item}: no such file or folder")
            continue
        if path.is_file():
            if is_image_name(path):
                problem(f"{item}: is an image; give the folder of frames (or its parent folder)")
                continue
            found.append((path, None))
        elif list_images(path):
            found.append((path, None))
        else:
            kids = [c for c in sorted(path.iterdir())
                    if not c.name.startswith(".") and c.resolve() != exclude
                    and ((c.is_dir() and list_images(c)) or (c.is_file() and c.suffix.lower() in VIDEO_SUFFIXES))]
            if kids:
                found.extend((c, None) for c in kids)
            else:
                found.append((path, "no frame images, clip folders or video files found"))
    clips, used, seen = [], set(), set()
    for path, problem in found:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        base = key.stem if path.is_file() else key.name
        name, k = base, 2
        while name.casefold() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.casefold())
        clips.append(ClipSource(path, name, base if name != base else None, problem))
    return clips


# ---------------------------------------------------------------------------------------------
# writing


def _frame_triple(protocol, hr8: np.ndarray) -> dict:
    """HR, its LR made by the protocol and up(LR), all uint8."""
    lr8 = protocol.lr_image(hr8)[0]
    return {"hr": hr8, "lr": lr8, "sr": to_uint8(protocol.operator.up(to_tensor(lr8)[None])[0])}


def _write_clip(dirs: dict, name: str, outputs: list[dict], n_frames: int) -> None:
    """frame_<k>.png in each of the hr_/lr_/sr_ folders; stale frame_<k>.png with k >= n_frames removed."""
    for key, root in dirs.items():
        folder = root / name
        for k, imgs in enumerate(outputs):
            write_image(folder / f"frame_{k}.png", imgs[key])
        for stale in folder.glob("frame_*.png"):
            suffix = stale.stem[len("frame_"):]
            if not (suffix.isdigit() and int(suffix) < n_frames):
                stale.unlink()


def _clip_record(clip: "ClipSource", frames, rate: float, picked: dict) -> dict:
    record = {"clip": clip.name, "source": str(clip.path), "kind": frames.kind, "fps": rate,
              "fps_from": frames.fps_from, "frame_indices": picked["indices"], "times_s": picked["times_s"]}
    for extra in ("pts_s", "source_files"):
        if extra in picked:
            record[extra] = picked[extra]
    if clip.renamed_from:
        record["renamed_from"] = clip.renamed_from
    return record


def prepare_video(sources, out, n_frames: int = 3, interval_s: float = 0.5, scale: int = 8, size: int = 128,
                  op: str = "bicubic", align: bool = False, fps: float | None = None, start_s: float = 0.0,
                  on_error=print) -> dict:
    """Write the multi-frame layout (module docstring) for every clip in ``sources``.

    Per clip: frames ``int(round((start_s + k * interval_s) * fps))``, k = 0 .. n_frames-1
    (``select_frames``); each frame aligned (``align=True``, ``FaceAligner``) or centre-cropped
    to a square and resized to ``size`` (bicubic, antialiased, as ``facesr prepare``); LR =
    quantise(operator.down(HR)); SR = operator.up(LR) in 8 bits. ``fps`` is a fallback for
    frame folders without meta.json (and videos without a container rate).

    A source that does not exist (or is an image file), and a clip that is too short, unreadable,
    or has a frame without a face are reported through ``on_error`` (one line naming the source
    and the reason) and skipped; the others are written. FacesrError when no source exists.
    A clip's frames are all computed before any is written, and every file is written atomically.
    Frame files ``frame_<k>.png`` with k >= n_frames left in a written clip's folders by an earlier
    run are removed. ``clips.json`` describes this run.

    -> {"clips_written", "skipped" (one line each), "frames_per_clip", "operator", "hr_size",
    "lr_size", "out"}.
    """
    from facesr.io.images import check_output_folder
    from facesr.degrade.protocol import LRProtocol

    if size % scale:
        raise FacesrError(f"size {size} is not divisible by the scale {scale}")
    protocol = LRProtocol.of(op, scale)
    operator = protocol.operator
    _check_selection(n_frames, float(interval_s), float(start_s))
    if fps is not None:
        fps = _positive_fps(fps, "--fps")
    lr_size = size // scale
    out = check_output_folder(out)
    dirs = {k: out / d for k, d in (("hr", f"hr_{size}"), ("lr", f"lr_{lr_size}"), ("sr", f"sr_{lr_size}_{size}"))}
    missing: list[str] = []
    clips = discover_clips(sources, exclude=out, on_error=missing.append)
    if missing and not clips:  # nothing to do: one line, as for any user error
        raise FacesrError("; ".join(missing))
    aligner = FaceAligner(size) if align and any(c.problem is None for c in clips) else None

    records, skipped = [], []

    def skip(clip: ClipSource, reason: str, line: str) -> None:
        skipped.append({"clip": clip.name, "source": str(clip.path), "reason": reason})
        on_error(f"skipped {line}")

    for line in missing:  # a source that does not exist: reported, the others still prepared
        source, _, reason = line.rpartition(": ")
        skipped.append({"clip": None, "source": source, "reason": reason})
        on_error(f"skipped {line}")
    for clip in clips:
        if clip.problem:
            skip(clip, clip.problem, f"{clip.path}: {clip.problem}")
            continue
        try:
            frames, rate = read_frames(clip.path, fps)
            picked = pick_frames(frames, rate, n_frames, interval_s, start_s)
            hr = [_hr_frame(img, size, aligner, clip.path, i, rate) for img, i in zip(picked["images"], picked["indices"])]
        except InputError as exc:
            skip(clip, exc.problem, str(exc))
            continue
        except FacesrError as exc:  # e.g. an interval shorter than one frame at this clip's fps
            skip(clip, str(exc), f"{clip.path}: {exc}")
            continue
        _write_clip(dirs, clip.name, [_frame_triple(protocol, hr8) for hr8 in hr], n_frames)
        records.append(_clip_record(clip, frames, rate, picked))

    clips_meta = {"n_frames": n_frames, "target_frame": n_frames // 2, "interval_s": interval_s, "start_s": start_s,
                  "hr_size": size, "lr_size": lr_size, "operator": operator.to_dict(), "align": bool(align),
                  "align_padding": ALIGN_PADDING if align else None, "clips": records, "skipped": skipped}
    atomic_write_text(out / "clips.json", json.dumps(clips_meta, indent=2) + "\n")
    degradation = {"operator": operator.to_dict(), "hr_size": size, "lr_size": lr_size,
                   "images": len(records) * n_frames, "clips": len(records), "frames_per_clip": n_frames,
                   "skipped": [f"{s['source']}: {s['reason']}" for s in skipped]}
    atomic_write_text(out / "degradation.json", json.dumps(degradation, indent=2) + "\n")
    return {"clips_written": len(records), "skipped": degradation["skipped"], "frames_per_clip": n_frames,
            "operator": operator.to_dict(), "hr_size": size, "lr_size": lr_size, "out": str(out)}
