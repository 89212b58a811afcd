"""Super-resolve every frame of a clip with a sliding window of k LR frames (MF-SR3).

Frame i is restored from frames i + step*(j - k//2), j = 0..k-1, clamped at the ends of the clip.
Every frame of a clip uses the same noise (seeded by the clip's name), which limits flicker: two
nearly identical windows then give nearly identical outputs. Writes <out>/<clip>/<i>.png and
<out>/<clip>.mp4 (H.264, the clip's frame rate).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facesr.engine.options import pixel_options, recorded_options
from facesr.errors import FacesrError, InputError
from facesr.io.images import TEMP_PREFIX, atomic_write_text, read_image, to_tensor, to_uint8, write_image

MANIFEST = "facesr-run.json"


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 (yuv420p) video, written under a temporary name and renamed."""
    import av

    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    h, w = frames[0].shape[:2]
    try:
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("libx264", rate=round(fps * 1000) / 1000 if fps % 1 else int(fps))
            stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
            stream.options = {"crf": "16"}
            for rgb in frames:
                if w % 2 or h % 2:  # yuv420p needs even sizes
                    rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_lr_frames(model, source: Path, fps) -> tuple[list, float]:
    """The clip's frames as tensors, its frame rate; the first frame's size is checked before the rest
    are read (an HR-size or photo-size video is refused at once, not after minutes)."""
    from facesr.data.video import read_frames
    from facesr.engine.run import check_input

    frames, rate = read_frames(source, fps)
    lrs = []
    for frame in frames:
        if not lrs:
            problem = check_input(model, *frame.shape[:2])
            if problem:
                raise InputError(source, problem)
        elif frame.shape != tuple(lrs[0].shape[1:]) + (3,):
            raise InputError(source, f"frames of different sizes ({lrs[0].shape[2]}x{lrs[0].shape[1]} and "
                                     f"{frame.shape[1]}x{frame.shape[0]})")
        lrs.append(to_tensor(frame))
    if not lrs:
        raise InputError(source, "no frames")
    return lrs, rate


def upscale_clip(model, source, out_dir, opts, device, step: int = 1, fps: float | None = None, video: bool = True,
                 progress=None, done: int = 0, on_batch=None, neighbours: bool = True) -> dict:
    """Restore every frame of one clip (a video file or a folder of frames); returns its record.

    Frames are written as each batch is done; ``done`` frames already written by a killed run with
    the same settings are read back instead of restored; ``on_batch(record)`` after each batch;
    ``neighbours=False``: each frame in place of its neighbours (MF-SR3's fair baseline)."""
    from facesr.engine.conditions import frame_stacks
    from facesr.engine.run import super_resolve_tensors
    from facesr.io.images import clean_temp_files

    source = Path(source)
    lrs, rate = _read_lr_frames(model, source, fps)
    name = source.stem if source.is_file() else source.name
    stacks = frame_stacks(model, lrs, step, neighbours)
    out = Path(out_dir) / name
    clean_temp_files(out)
    record = {"source": str(source), "frames": len(stacks), "fps": rate, "window": model.needs.frames, "step": step,
              "frames_dir": str(out), "video": None, "frames_done": 0, "complete": False}
    srs = [read_image(out / f"{i:04d}.png") for i in range(min(done, len(stacks)))]
    t0 = time.time()
    for start in range(len(srs), len(stacks), max(1, opts.batch_size)):
        part = stacks[start : start + opts.batch_size]
        # the clip's name seeds the noise of every frame: same noise, less flicker
        srs += [to_uint8(x) for x in super_resolve_tensors(model, part, [name] * len(part), opts, device)]
        for i in range(start, start + len(part)):
            write_image(out / f"{i:04d}.png", srs[i])
        record["frames_done"] = len(srs)
        if on_batch:
            on_batch(record)
        if progress:
            progress(len(srs), len(stacks))
    if video:
        write_video(Path(out_dir) / f"{name}.mp4", srs, rate)
        record["video"] = str(Path(out_dir) / f"{name}.mp4")
    record.update(frames_done=len(srs), complete=True,
                  seconds_per_frame=round((time.time() - t0) / max(1, len(srs) - done), 4))
    return record


def _resumable(out_dir: Path, settings: dict, overwrite: bool) -> dict[str, dict]:
    """{source: its record} from a previous run in ``out_dir`` with the same settings."""
    if overwrite:
        return {}
    try:
        before = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    theirs = {k: before.get(k) for k in settings}
    if isinstance(theirs.get("settings"), dict):  # an option added since that run had its default there
        theirs["settings"] = recorded_options(theirs["settings"])
    if theirs != settings:
        return {}
    return {c["source"]: c for c in before.get("clips", [])}


def upscale_clips(model, sources, out_dir, opts, device, frames: int, step: int = 1, fps: float | None = None,
                  video: bool = True, on_error=print, progress=None, overwrite: bool = False,
                  neighbours: bool = True) -> dict:
    """Every clip in ``sources``; a clip that cannot be read fails alone. <out>/facesr-run.json is
    rewritten after each batch; started again with the same settings, a killed run resumes (finished
    clips are kept, a clip cut short goes on from its last written frame); ``overwrite`` redoes all;
    ``neighbours``: as in ``upscale_clip``."""
    from facesr.io.images import check_output_folder, clean_temp_files

    if model.needs.vector_dim or model.needs.reference:
        raise FacesrError(f"{model.name} needs {model.needs.describe()}; it does not restore video frames")
    if frames != model.needs.frames:
        raise FacesrError(f"frames {frames}: {model.name} takes {model.needs.frames} frame(s) per output")
    if step < 1:
        raise FacesrError(f"frame step must be at least 1, got {step}")
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    clean_temp_files(out_dir)
    options = pixel_options(opts)
    settings = {"model": model.source,
                "settings": {**options, "step": step, "fps": fps, "video": video, "neighbours": neighbours}}
    before = _resumable(out_dir, settings, overwrite)
    manifest = {**settings, "options": asdict(opts), "network_evaluations_per_frame": model.network_evaluations(opts),
                "device": str(device), "clips": [], "failures": [], "complete": False}

    def save(current=None):
        clips = manifest["clips"] + ([current] if current else [])
        atomic_write_text(out_dir / MANIFEST, json.dumps({**manifest, "clips": clips}, indent=2) + "\n")

    for source in sources:
        old = before.get(str(Path(source)), {})
        if old.get("complete"):
            manifest["clips"].append(old)
            continue
        try:
            manifest["clips"].append(upscale_clip(model, source, out_dir, opts, device, step, fps, video, progress,
                                                  done=old.get("frames_done", 0), on_batch=save,
                                                  neighbours=neighbours))
        except InputError as exc:
            manifest["failures"].append(str(exc))
            on_error(str(exc))
        save()
    manifest["complete"] = True
    save()
    return manifest
