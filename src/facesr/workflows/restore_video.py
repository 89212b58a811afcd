"""Video in the wild: faces found in every frame, linked into tracks, each track restored as one face
(one noise seed for all its frames; a multi-frame model gets the track's neighbouring frames as its
window; a FASR model the track's frames as its identity images, embedded by the network made for tiny faces),
pasted back frame by frame.

Writes OUT/<clip>.mp4 (H.264, the clip's frame rate, the audio stream copied when there is one) and
OUT/<clip>.tracks.json (per track: its frames, boxes, landmarks, model and, for FASR, identity_embedder).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from facesr.errors import FacesrError, InputError
from facesr.io.images import TEMP_PREFIX, atomic_write_text, to_tensor, to_uint8
from facesr.workflows.restore import Restorer


def track_embedder(model) -> str | None:
    """What embeds a track's tiny faces for a FASR model: a bundled student of its network at its scale
    (``identity.student.student_for``), else the model's own network; None for other models."""
    from facesr.identity.student import student_for

    network = model.needs.vector_embedder
    return (student_for(network, model.scale) or network) if model.needs.vector_dim else None


def _restore_track(lr: list[torch.Tensor], restorer: Restorer, name: str, key: str, embedder: str | None = None):
    """SR chips (3, 128, 128) of one track's faces (LR chips ``lr``), in its frame order, and the LR chips.
    A FASR model is conditioned on the mean of the track's faces embedded by ``embedder`` (``track_embedder``)."""
    from facesr.engine.conditions import frame_stacks, identity_vector
    from facesr.engine.run import output_problem, super_resolve_tensors
    from facesr.methods.base import Conditions

    model, opts = restorer.load(name)
    if opts is None:  # bicubic
        return list(model.lr_protocol.upsample(torch.stack(lr))), lr
    needs = model.needs
    inputs = frame_stacks(model, lr) if needs.frames > 1 else lr
    conditions = None
    if needs.vector_dim:
        vector = identity_vector(model, [to_uint8(c) for c in lr], embedder=embedder or track_embedder(model))
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


def _find_faces(source: Path, frames, finder, sizes: set[int]):
    """Pass 1: each frame's faces and their LR chips at each of ``sizes`` (small); the frames are not kept."""
    from facesr.wild.faces import cut_chip

    faces_per_frame, cuts, size = [], [], None
    for t, frame in enumerate(frames):
        size = size or frame.shape[:2]
        if frame.shape[:2] != size:
            raise InputError(source, f"frame {t} is {frame.shape[1]}x{frame.shape[0]}, the first {size[1]}x{size[0]}")
        faces = finder(frame)
        faces_per_frame.append(faces)
        cuts.append([{n: to_tensor(cut_chip(frame, f.frame, n)) for n in sizes} for f in faces])
    if not faces_per_frame:
        raise InputError(source, "no frames")
    return faces_per_frame, cuts, size


def _restore_tracks(source: Path, name: str, faces_per_frame, cuts, restorer: Restorer, on_error):
    """Pass 2: {(frame, face index): (SR chip, its bicubic chip, scale)} and one record per track."""
    from facesr.wild.tracks import link

    restored, records = {}, []
    for tr in link(faces_per_frame):
        model_name, problem = restorer.choose(float(np.median([f.frame.side for f in tr.faces])))
        rec = {"track": tr.id, "frames": tr.frames, "model": model_name,
               "boxes": [[round(v, 2) for v in f.box] for f in tr.faces],
               "landmarks": [np.round(f.landmarks, 2).tolist() for f in tr.faces]}
        records.append(rec)
        if problem:
            rec["skipped"] = problem
            on_error(f"{source}: track {tr.id} (frames {tr.frames[0]}-{tr.frames[-1]}) not restored: {problem}")
            continue
        index = [faces_per_frame[t].index(f) for t, f in zip(tr.frames, tr.faces)]
        model = restorer.load(model_name)[0]
        embedder = track_embedder(model)
        if embedder is not None:
            rec["identity_embedder"] = embedder
        srs, lrs = _restore_track([cuts[t][i][model.lr_size] for t, i in zip(tr.frames, index)], restorer,
                                  model_name, f"{name}-track{tr.id}", embedder)
        bad = sum(sr is None for sr in srs)
        if bad:
            rec["not_restored_frames"] = bad
            on_error(f"{source}: track {tr.id}: {bad} of {len(srs)} frame(s) not restored: the output is not a "
                     "restoration of the input (too few steps from pure noise?)")
        for t, i, sr, lr in zip(tr.frames, index, srs, lrs):
            if sr is not None:
                restored[t, i] = (sr, model.lr_protocol.upsample(lr[None])[0], model.scale)
    return restored, records


def _encode(path: Path, frames, faces_per_frame, restored, k: int, size, rate: float, audio_from, progress) -> bool:
    """Pass 3: each frame upscaled by k with its restored faces pasted, encoded as it is made; the
    audio of ``audio_from`` copied. Written under a temporary name and renamed. True if audio was copied."""
    import av

    from facesr.wild.paste import restored_photo

    h, w = size
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    try:
        container, stream, audio = _video_writer(tmp, rate, w * k, h * k, audio_from)
        try:
            for t, frame in enumerate(frames):
                pieces = [(restored[t, i][0], restored[t, i][1], face.frame)
                          for i, face in enumerate(faces_per_frame[t]) if (t, i) in restored]
                canvas = restored_photo(frame, k, pieces)
                rgb = np.pad(to_uint8(canvas), ((0, (h * k) % 2), (0, (w * k) % 2), (0, 0)), mode="edge")
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
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return audio is not None


def restore_clip(source, out_dir, finder, restorer: Restorer, upscale: int | None = None, fps: float | None = None,
                 on_error=print, progress=None) -> dict:
    """One clip (a video file or a folder of frames) restored to OUT/<clip>.mp4; returns its record."""
    from facesr.data.video import read_frames

    source = Path(source)
    frames, rate = read_frames(source, fps)
    name = source.stem if source.is_file() else source.name
    faces_per_frame, cuts, size = _find_faces(source, frames, finder, restorer.lr_sizes())
    restored, records = _restore_tracks(source, name, faces_per_frame, cuts, restorer, on_error)
    k = upscale or max((s for _, _, s in restored.values()), default=1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    audio = _encode(out_dir / f"{name}.mp4", frames, faces_per_frame, restored, k, size, rate,
                    source if source.is_file() else None, progress)
    record = {"source": str(source), "video": f"{name}.mp4", "frames": len(faces_per_frame), "fps": rate, "scale": k,
              "audio": audio, "tracks": records, "seconds": round(time.time() - t0, 3)}
    atomic_write_text(out_dir / f"{name}.tracks.json", json.dumps(record, indent=2) + "\n")
    return record
