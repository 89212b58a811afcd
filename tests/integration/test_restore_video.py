"""Video in the wild: faces tracked across frames, each track restored with one seed, pasted back;
the restored video keeps the audio; tracks.json; a corrupt video or frame fails alone."""

import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from facesr.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_restore import scene  # noqa: E402


def _frames(n: int = 8) -> list[np.ndarray]:
    lr = scene(8)[0]
    return [np.roll(lr, t // 2, axis=1) for t in range(n)]  # the faces drift right, 1 px every 2 frames


def _video(path: Path, frames, audio: bool = True) -> None:
    h, w = frames[0].shape[:2]
    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
    a = out.add_stream("aac", rate=16000) if audio else None
    for f in frames:
        for p in v.encode(av.VideoFrame.from_ndarray(np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge"),
                                                     format="rgb24")):
            out.mux(p)
    for p in v.encode():
        out.mux(p)
    if a is not None:
        tone = (np.sin(np.arange(16000 * len(frames) // 25) / 10) * 0.2).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        af.sample_rate = 16000
        for p in [*a.encode(af), *a.encode()]:
            out.mux(p)
    out.close()


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video")
    _video(tmp / "clip.mp4", _frames())
    assert main(["restore", str(tmp / "clip.mp4"), "-o", str(tmp / "out")]) == 0
    assert main(["restore", str(tmp / "clip.mp4"), "-o", str(tmp / "bic"), "--model", "bicubic"]) == 0
    return tmp


def test_tracks_and_the_restored_video_with_its_audio(restored):
    record = json.loads((restored / "out" / "clip.tracks.json").read_text())
    assert record["frames"] == 8 and record["audio"] and record["scale"] == 8
    assert len(record["tracks"]) == 6 and all(len(t["frames"]) == 8 for t in record["tracks"])
    assert all(t["model"] == "msrresnet-x8-wild" for t in record["tracks"])
    with av.open(str(restored / "out" / "clip.mp4")) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
    frames = _decode(restored / "out" / "clip.mp4")
    h, w = _frames()[0].shape[:2]
    assert len(frames) == 8 and frames[0].shape[:2] == (8 * h + (8 * h) % 2, 8 * w + (8 * w) % 2)


def test_no_more_change_from_frame_to_frame_than_the_real_clip(restored):
    """Flicker as benchmarks/video.py measures it: the restored clip's mean |frame_t - frame_t-1| less the
    full-resolution clip's own (the same scene moving 8 px every 2 frames) is not above 0."""
    def change(frames):
        return float(np.mean([np.abs(a.astype(float) - b.astype(float)).mean() for a, b in zip(frames, frames[1:])]))

    full = scene(8)[1]
    hr = [np.roll(full, 8 * (t // 2), axis=1) for t in range(8)]
    sr = _decode(restored / "out" / "clip.mp4")
    assert change(sr) - change(hr) <= 0.0, (change(sr), change(hr))


def test_a_frame_folder_with_video_and_bad_clips_fail_alone(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(_frames(4)):
        Image.fromarray(f).save(folder / f"{t:04d}.png")
    (folder / "meta.json").write_text('{"fps": 25}')
    bad = tmp_path / "frames_bad"
    bad.mkdir()
    for t, f in enumerate(_frames(3)):
        Image.fromarray(f).save(bad / f"{t:04d}.png")
    (bad / "0001.png").write_bytes((bad / "0001.png").read_bytes()[:100])  # truncated
    (bad / "meta.json").write_text('{"fps": 25}')
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    out = tmp_path / "out"
    assert main(["restore", str(folder), str(bad), str(broken), "-o", str(out), "--video"]) == 1
    err = capsys.readouterr().err
    assert "0001.png" in err and "broken.mp4" in err
    assert (out / "frames.mp4").is_file() and len(_decode(out / "frames.mp4")) == 4
    assert not (out / "frames_bad.mp4").exists() and not list(out.glob(".facesr-tmp-*"))
