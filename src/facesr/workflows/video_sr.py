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

from facesr.io.images import atomic_write_text, to_tensor, to_uint8, write_image
from facesr.errors import FacesrError, InputError


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 (yuv420p) video, written under a temporary name and renamed."""
    import av

    tmp = path.with_name(f".{path.name}.tmp.mp4")
    h, w = frames[0].shape[:2]
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


def upscale_clip(model, source, out_dir, opts, device, step: int = 1, fps: float | None = None, video: bool = True,
                 progress=None) -> dict:
    """Restore every frame of one clip (a video file or a folder of frames); returns its manifest."""
    from facesr.data.video import read_frames
    from facesr.engine.conditions import frame_stacks
    from facesr.engine.run import check_input, super_resolve_tensors

    source = Path(source)
    frames, rate = read_frames(source, fps)
    lrs = [to_tensor(f) for f in frames]
    if not lrs:
        raise InputError(source, "no frames")
    sizes = {tuple(f.shape) for f in lrs}
    if len(sizes) > 1:
        raise InputError(source, f"frames of different sizes {sorted(sizes)}")
    problem = check_input(model, lrs[0].shape[-2], lrs[0].shape[-1])
    if problem:
        raise InputError(source, problem)
    k, name = model.needs.frames, source.stem if source.is_file() else source.name
    stacks = frame_stacks(model, lrs, step)
    t0 = time.time()
    out = Path(out_dir) / name
    srs = []
    chunk = max(1, opts.batch_size)
    for start in range(0, len(stacks), chunk):
        part = stacks[start : start + chunk]
        # the clip's name seeds the noise of every frame: same noise, less flicker
        srs += [to_uint8(x) for x in super_resolve_tensors(model, part, [name] * len(part), opts, device)]
        for i in range(start, start + len(part)):
            write_image(out / f"{i:04d}.png", srs[i])
        if progress:
            progress(len(srs), len(stacks))
    if video:
        write_video(Path(out_dir) / f"{name}.mp4", srs, rate)
    seconds = time.time() - t0
    return {"source": str(source), "frames": len(srs), "fps": rate, "window": k, "step": step,
            "frames_dir": str(out), "video": str(Path(out_dir) / f"{name}.mp4") if video else None,
            "seconds_per_frame": round(seconds / len(srs), 4)}


def upscale_clips(model, sources, out_dir, opts, device, frames: int, step: int = 1, fps: float | None = None,
                  video: bool = True, on_error=print, progress=None) -> dict:
    """Every clip in ``sources``; a clip that cannot be read fails alone. Writes <out>/facesr-run.json."""
    if model.needs.vector_dim or model.needs.reference:
        raise FacesrError(f"{model.name} needs {model.needs.describe()}; it does not restore video frames")
    if frames != model.needs.frames:
        raise FacesrError(f"frames {frames}: {model.name} takes {model.needs.frames} frame(s) per output")
    if step < 1:
        raise FacesrError(f"frame step must be at least 1, got {step}")
    clips, failures = [], []
    for source in sources:
        try:
            clips.append(upscale_clip(model, source, out_dir, opts, device, step, fps, video, progress))
        except InputError as exc:
            failures.append(str(exc))
            on_error(str(exc))
    manifest = {"model": model.source, "options": asdict(opts),
                "network_evaluations_per_frame": model.network_evaluations(opts), "device": str(device),
                "clips": clips, "failures": failures}
    atomic_write_text(Path(out_dir) / "facesr-run.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
