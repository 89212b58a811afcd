"""Face tracks across the frames of a video: each face joins the track whose last chip frame is
nearest, when its centre is within half a chip side and the chip sizes agree; otherwise it starts one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MAX_GAP = 5  # frames a track may miss (a blink of the detector) and still continue
MAX_STEP = 0.5  # the centre may move this fraction of the chip side per frame
MAX_SIZE_RATIO = 1.5


@dataclass
class Track:
    id: int
    frames: list[int] = field(default_factory=list)  # frame index of each face
    faces: list = field(default_factory=list)  # PhotoFace of each frame (same order)

    def last(self):
        return self.faces[-1]


def link(faces_per_frame: list[list]) -> list[Track]:
    """Tracks from each frame's faces (objects with a ``frame`` ChipFrame), greedy by distance."""
    tracks: list[Track] = []
    for t, faces in enumerate(faces_per_frame):
        live = [tr for tr in tracks if t - tr.frames[-1] <= MAX_GAP]
        pairs = []
        for i, face in enumerate(faces):
            for tr in live:
                prev = tr.last().frame
                d = math.hypot(face.frame.cx - prev.cx, face.frame.cy - prev.cy) / prev.side
                ratio = max(face.frame.side, prev.side) / min(face.frame.side, prev.side)
                if d <= MAX_STEP * (t - tr.frames[-1]) and ratio <= MAX_SIZE_RATIO:
                    pairs.append((d, i, tr))
        taken_faces, taken_tracks = set(), set()
        for d, i, tr in sorted(pairs, key=lambda p: p[0]):
            if i in taken_faces or tr.id in taken_tracks:
                continue
            tr.frames.append(t)
            tr.faces.append(faces[i])
            taken_faces.add(i)
            taken_tracks.add(tr.id)
        for i, face in enumerate(faces):
            if i not in taken_faces:
                tracks.append(Track(len(tracks), [t], [face]))
    return tracks
