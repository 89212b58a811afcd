"""Video in the wild: faces found in every frame, linked into tracks, each track restored as one face
(one noise seed for all its frames; a multi-frame model gets the track's neighbouring frames as its
window; a FASR model the track's frames as its identity images), pasted back frame by frame.

Writes OUT/<clip>.mp4 (H.264, the clip's frame rate, the audio stream copied when there is one) and
OUT/<clip>.tracks.json (per track: its frames, boxes, landmarks and model).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from facesr.errors import FacesrError, InputError
from facesr.io.images import TEMP_PREFIX, atomic_write_text, to_tensor, to_uint8
from facesr.workflows.restore import HR_SIZE, Restorer


def _restore_track(track, hr_cuts: list[torch.Tensor], restorer: Restorer, name: str, key: str):
    """SR chips (3, 128, 128) of one track's faces, in its frame order, and the LR chips."""
    from facesr.degrade.resample import quantize
    from facesr.engine.conditions import frame_stacks, identity_vector
    from facesr.engine.run import output_problem, super_resolve_tensors
    from facesr.methods.base import Conditions

    model, opts = restorer.load(name)
    lr = list(quantize(model.lr_protocol.operator.down(torch.stack(hr_cuts))))
    if opts is None:  # bicubic
        return list(model.lr_protocol.upsample(torch.stack(lr))), lr
    needs = model.needs
    inputs = frame_stacks(model, lr) if needs.frames > 1 else lr
    conditions = None
    if needs.vector_dim:
        vector = identity_vector(model, [to_uint8(c) for c in lr])
        conditions = [Conditions(vector=vector)] * len(inputs)
    if needs.reference:
        raise FacesrError(f"{name} needs a reference photo; it cannot restore video tracks")
    srs = super_resolve_tensors(model, inputs, [key] * len(inputs), opts, restorer.device, conditions=conditions)
    # an output that restores nothing (noise from too few steps) is left out: that frame keeps its face
    return [None if output_problem(model, x, s) else s.float().clamp(0, 1) for x, s in zip(inputs, srs)], lr


def _video_writer(path: Path, fps: float, width: int, height: int, audio_from: Path | None):
    """(container, video stream, audio streams (input, output) or None) for H.264 yuv420p."""
    import av

    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=round(fps * 1000) / 1000 if fps % 1 else int(fps))
    stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
    stream.options = {"crf": "18"}
    audio = None
    if audio_from is not None:
        source = av.open(str(audio_from))
        if source.streams.audio:
            audio = (source, out.add_stream_from_template(source.streams.audio[0]))
        else:
            source.close()
    return out, stream, audio


def restore_clip(source, out_dir, finder, restorer: Restorer, upscale: int | None = None, fps: float | None = None,
                 on_error=print, progress=None) -> dict:
    """One clip (a video file or a folder of frames) restored to OUT/<clip>.mp4; returns its record."""
    import av
    from PIL import Image

    from facesr.data.video import read_frames
    from facesr.wild.faces import cut_chip
    from facesr.wild.paste import feather_mask, match_colour, paste
    from facesr.wild.tracks import link

    source = Path(source)
    frames, rate = read_frames(source, fps)
    name = source.stem if source.is_file() else source.name
    faces_per_frame, cuts, size = [], [], None
    for t, frame in enumerate(frames):  # pass 1: faces and their HR-size cuts (small); frames are not kept
        size = size or frame.shape[:2]
        if frame.shape[:2] != size:
            raise InputError(source, f"frame {t} is {frame.shape[1]}x{frame.shape[0]}, the first {size[1]}x{size[0]}")
        faces = finder(frame)
        faces_per_frame.append(faces)
        cuts.append([to_tensor(cut_chip(frame, f.frame, HR_SIZE)) for f in faces])
    if not faces_per_frame:
        raise InputError(source, "no frames")
    tracks = link(faces_per_frame)
    restored, records = {}, []  # (frame, face index) -> (SR chip, its bicubic chip)
    for tr in tracks:
        side = float(np.median([f.frame.side for f in tr.faces]))
        model_name, problem = restorer.choose(side)
        rec = {"track": tr.id, "frames": tr.frames, "model": model_name,
               "boxes": [[round(v, 2) for v in f.box] for f in tr.faces],
               "landmarks": [np.round(f.landmarks, 2).tolist() for f in tr.faces]}
        records.append(rec)
        if problem:
            rec["skipped"] = problem
            on_error(f"{source}: track {tr.id} (frames {tr.frames[0]}-{tr.frames[-1]}) not restored: {problem}")
            continue
        index = [faces_per_frame[t].index(f) for t, f in zip(tr.frames, tr.faces)]
        hr_cuts = [cuts[t][i] for t, i in zip(tr.frames, index)]
        srs, lrs = _restore_track(tr, hr_cuts, restorer, model_name, f"{name}-track{tr.id}")
        model = restorer.load(model_name)[0]
        bad = sum(sr is None for sr in srs)
        if bad:
            rec["not_restored_frames"] = bad
            on_error(f"{source}: track {tr.id}: {bad} of {len(srs)} frame(s) not restored: the output is not a "
                     "restoration of the input (too few steps from pure noise?)")
        for t, i, sr, lr in zip(tr.frames, index, srs, lrs):
            if sr is not None:
                restored[t, i] = (sr, model.lr_protocol.upsample(lr[None])[0], model.scale)
    scales = [s for _, _, s in restored.values()]
    k = upscale or (max(scales) if scales else 1)
    h, w = size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"{name}.mp4"
    tmp = out_dir / f"{TEMP_PREFIX}{name}.mp4"
    mask = feather_mask(HR_SIZE)
    t0 = time.time()
    try:
        container, stream, audio = _video_writer(tmp, rate, w * k, h * k, source if source.is_file() else None)
        try:
            for t, frame in enumerate(frames):  # pass 3: paste and encode, one frame at a time
                canvas = to_tensor(np.asarray(Image.fromarray(frame).resize((w * k, h * k), Image.BICUBIC)))
                for i, face in enumerate(faces_per_frame[t]):
                    if (t, i) in restored:
                        sr, bic, _ = restored[t, i]
                        paste(canvas, match_colour(sr, bic, mask), face.frame.scaled(k), mask)
                rgb = to_uint8(canvas)
                if (w * k) % 2 or (h * k) % 2:
                    rgb = np.pad(rgb, ((0, (h * k) % 2), (0, (w * k) % 2), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                    container.mux(packet)
                if progress:
                    progress(t + 1, len(faces_per_frame))
            for packet in stream.encode():
                container.mux(packet)
            if audio is not None:
                src, out_audio = audio
                for packet in src.demux(src.streams.audio[0]):
                    if packet.dts is not None:
                        packet.stream = out_audio
                        container.mux(packet)
        finally:
            container.close()
            if audio is not None:
                audio[0].close()
        tmp.replace(video)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    record = {"source": str(source), "video": video.name, "frames": len(faces_per_frame), "fps": rate, "scale": k,
              "audio": audio is not None, "tracks": records, "seconds": round(time.time() - t0, 3)}
    atomic_write_text(out_dir / f"{name}.tracks.json", json.dumps(record, indent=2) + "\n")
    return record
