"""Multi-frame data: frame selection, the prepare-video layout, skipped clips, reruns."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.cli import main
from facesr.io.images import read_image, to_tensor, to_uint8
from facesr.degrade.resample import make_operator, quantize
from facesr.data.video import discover_clips, pick_frames, prepare_video, read_frames, select_frames
from facesr.errors import FacesrError, InputError

BASE, STEP = 20, 7  # frame i of a synthetic video is flat grey BASE + STEP * i


def write_video(path: Path, n: int, fps: int = 10, size: int = 128) -> Path:
    """Flat grey frames whose level encodes the frame number; H.264 with crf 0 (lossless in YUV)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        stream.codec_context.thread_count = 1
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), BASE + STEP * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def level(rgb: np.ndarray) -> int:
    """The frame number encoded by ``write_video`` (robust to a few grey levels of codec loss)."""
    return int(round((float(rgb.mean()) - BASE) / STEP))


def write_folder(path: Path, n: int, fps=10, shape=(100, 140), seed=0) -> Path:
    """n textured frames %04d.png (not square: prepare centre-crops), meta.json with fps unless None."""
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path / f"{i:04d}.png")
    if fps is not None:
        (path / "meta.json").write_text(json.dumps({"source": "x.mp4", "fps": fps, "frames": n}))
    return path


def frames_of(out: Path, sub: str, clip: str) -> list[str]:
    return sorted(p.name for p in (out / sub / clip).iterdir())


def test_select_frames():
    assert select_frames(30, 10, 3, 0.5) == [0, 5, 10]
    assert select_frames(11, 10, 3, 0.5) == [0, 5, 10]
    assert select_frames(10, 10, 3, 0.5) is None  # needs index 10
    assert select_frames(30, 10, 3, 0.7, start_s=0.2) == [2, 9, 16]
    assert select_frames(100, 25, 4, 0.5) == [0, 12, 25, 38]  # exact halves round to even
    assert select_frames(30, 10, 4, 0.1, start_s=0.2) == [2, 3, 4, 5]  # float noise never drops a frame
    assert select_frames(None, 10, 2, 100.0) == [0, 1000]
    assert select_frames(1, 30, 1, 0.5) == [0]
    for bad in [dict(n=0), dict(n=2.5), dict(interval_s=0), dict(interval_s=-1.0)]:
        kwargs = dict(n=3, interval_s=0.5) | bad
        with pytest.raises(FacesrError):
            select_frames(30, 10, **kwargs)
    with pytest.raises(FacesrError, match="shorter than one frame"):
        select_frames(30, 10, 3, 0.01)


def test_read_frames(tmp_path):
    frames, fps = read_frames(write_video(tmp_path / "v.mp4", 12))
    assert fps == 10 and frames.fps_from == "container"
    assert [level(f) for f in frames] == list(range(12))
    folder = write_folder(tmp_path / "f", 3, fps=25)
    frames, fps = read_frames(folder, fps=12)  # meta.json wins over the fallback
    assert (fps, frames.fps_from, len(frames)) == (25.0, "meta.json", 3)
    assert frames[1].shape == (100, 140, 3)
    nometa = write_folder(tmp_path / "g", 3, fps=None)
    with pytest.raises(InputError, match="--fps") as err:
        read_frames(nometa)
    assert err.value.path == str(nometa)
    assert read_frames(nometa, fps=12)[1] == 12.0
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frame images"):
        read_frames(tmp_path / "empty")
    (tmp_path / "x.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(InputError, match="not a readable video") as err:
        read_frames(tmp_path / "x.mp4")
    assert err.value.path == str(tmp_path / "x.mp4")


def test_picks_the_right_frames(tmp_path):
    frames, fps = read_frames(write_video(tmp_path / "v.mp4", 30))
    picked = pick_frames(frames, fps, 3, 0.7, start_s=0.2)
    assert picked["indices"] == [2, 9, 16]
    assert [level(f) for f in picked["images"]] == [2, 9, 16]
    assert picked["times_s"] == [0.2, 0.9, 1.6]
    assert picked["pts_s"] == pytest.approx([0.2, 0.9, 1.6])
    with pytest.raises(InputError, match="too short: 30 frame"):
        pick_frames(frames, fps, 4, 1.0)  # needs index 30


def test_damaged_bitstream_is_skipped(tmp_path):
    import av

    path = tmp_path / "noise.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for _ in range(12):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = bytearray(path.read_bytes())
    for i in range(1000, len(data) - 3000, 499):  # damage the coded frames, keep the container index
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    errors = []
    res = prepare_video([path], tmp_path / "out", n_frames=2, interval_s=0.5, on_error=errors.append)
    assert res["clips_written"] == 0 and len(errors) == 1 and "corrupt video" in errors[0], errors

def test_prepare_video_cli(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    video = write_video(src / "talk.mp4", 30)
    folder = write_folder(src / "still", 12)
    short_video = write_video(src / "brief.mp4", 8)
    short_folder = write_folder(src / "short", 4, seed=1)
    corrupt = src / "x.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    out = tmp_path / "out"
    argv = ["prepare-video", str(video), str(folder), str(short_video), str(short_folder), str(corrupt), str(out),
            "--frames", "3", "--interval", "0.5"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    err = captured.err.strip().splitlines()
    assert len(err) == 3, captured.err
    assert str(short_video) in err[0] and "too short: 8 frame(s)" in err[0]
    assert str(short_folder) in err[1] and "too short: 4 frame(s)" in err[1]
    assert str(corrupt) in err[2] and "not a readable video" in err[2]
    assert "wrote 2 clip(s) x 3 frames" in captured.out and "skipped 3" in captured.out

    names = [f"frame_{k}.png" for k in range(3)]
    for sub in ("hr_128", "lr_16", "sr_16_128"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["still", "talk"]
        assert frames_of(out, sub, "talk") == names and frames_of(out, sub, "still") == names
    assert [level(read_image(out / "hr_128" / "talk" / n)) for n in names] == [0, 5, 10]

    op = make_operator("bicubic", 8)
    for clip in ("talk", "still"):
        for n in names:
            hr = to_tensor(read_image(out / "hr_128" / clip / n))[None]
            lr = to_tensor(read_image(out / "lr_16" / clip / n))
            sr = read_image(out / "sr_16_128" / clip / n)
            assert hr.shape[-2:] == (128, 128) and lr.shape[-2:] == (16, 16)
            assert torch.equal(lr, quantize(op.down(hr))[0])
            assert np.array_equal(sr, to_uint8(op.up(lr[None])[0]))
    # the folder clip: centre crop + bicubic resize of the picked source frames, as 'facesr prepare'
    from facesr.data.prepare import center_square_resize

    expect = to_uint8(center_square_resize(to_tensor(read_image(folder / "0005.png")), 128))
    assert np.array_equal(read_image(out / "hr_128" / "still" / "frame_1.png"), expect)

    meta = json.loads((out / "clips.json").read_text())
    assert (meta["n_frames"], meta["target_frame"], meta["interval_s"]) == (3, 1, 0.5)
    talk, still = meta["clips"]
    assert talk["clip"] == "talk" and talk["source"] == str(video) and talk["kind"] == "video"
    assert talk["frame_indices"] == [0, 5, 10] and talk["times_s"] == [0.0, 0.5, 1.0]
    assert (talk["fps"], talk["fps_from"]) == (10.0, "container")
    assert still["frame_indices"] == [0, 5, 10] and still["source_files"] == ["0000.png", "0005.png", "0010.png"]
    assert (still["fps"], still["fps_from"]) == (10.0, "meta.json")
    assert [s["source"] for s in meta["skipped"]] == [str(short_video), str(short_folder), str(corrupt)]
    deg = json.loads((out / "degradation.json").read_text())
    assert deg["operator"] == {"name": "bicubic", "scale": 8}
    assert (deg["hr_size"], deg["lr_size"], deg["images"], len(deg["skipped"])) == (128, 16, 6, 3)

    # all good -> exit 0; a missing source is a user error: one line, exit 2
    assert main(["prepare-video", str(video), str(tmp_path / "out2"), "--frames", "2", "--interval", "1"]) == 0
    assert main(["prepare-video", str(tmp_path / "nope"), str(tmp_path / "out3")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "no such file or folder" in lines[0]


def test_parent_folder_and_duplicate_stems(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_folder(a / "clip", 6, fps=5)
    write_folder(a / "other", 6, fps=5, seed=2)
    (a / "notes.txt").write_text("not a clip")
    (a / "nothing").mkdir()
    write_folder(b / "clip", 6, fps=5, seed=3)
    write_video(b / "clip.mp4", 6, fps=5)
    out = a / "prepared"  # inside a source parent: must not be taken for a clip on a rerun
    errors = []
    res = prepare_video([a, b / "clip", b / "clip.mp4"], out, n_frames=2, interval_s=1.0, on_error=errors.append)
    assert errors == [] and res["clips_written"] == 4 and res["frames_per_clip"] == 2
    meta = json.loads((out / "clips.json").read_text())
    got = [(c["clip"], Path(c["source"]), c.get("renamed_from")) for c in meta["clips"]]
    assert got == [("clip", a / "clip", None), ("other", a / "other", None),
                   ("clip_2", b / "clip", "clip"), ("clip_3", b / "clip.mp4", "clip")]
    assert sorted(p.name for p in (out / "hr_128").iterdir()) == ["clip", "clip_2", "clip_3", "other"]
    assert not np.array_equal(read_image(out / "hr_128" / "clip" / "frame_0.png"),
                              read_image(out / "hr_128" / "clip_2" / "frame_0.png"))
    assert [c.name for c in discover_clips([a], exclude=out)] == ["clip", "other"]
    # an empty folder is reported and skipped
    (tmp_path / "empty").mkdir()
    res = prepare_video([tmp_path / "empty"], tmp_path / "o2", on_error=errors.append)
    assert res["clips_written"] == 0 and len(errors) == 1 and "empty" in errors[0] and "no frame images" in errors[0]


def test_a_rerun_rewrites_each_clip_with_its_frames_only(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "v.mp4", 30)
    write_folder(src / "f", 30, shape=(128, 128))
    out = tmp_path / "out"
    prepare_video([src], out, n_frames=4, interval_s=0.5, on_error=pytest.fail)  # an earlier, longer run
    prepare_video([src], out, n_frames=3, interval_s=0.7, on_error=pytest.fail)  # stale frame_3 removed
    names = [f"frame_{k}.png" for k in range(3)]
    for sub in ("hr_128", "lr_16", "sr_16_128"):
        assert frames_of(out, sub, "f") == names and frames_of(out, sub, "v") == names
    meta = json.loads((out / "clips.json").read_text())
    assert (meta["n_frames"], meta["target_frame"]) == (3, 1) and [c["clip"] for c in meta["clips"]] == ["f", "v"]
    # frames in order (0, 0.7 and 1.4 s at 10 fps), in every folder; the middle one is the target
    for sub in ("hr_128", "sr_16_128"):
        assert [level(read_image(out / sub / "v" / n)) for n in names] == [0, 7, 14]
    ups = [read_image(out / "sr_16_128" / "v" / n) for n in names]
    lrs = [read_image(out / "lr_16" / "v" / n) for n in names]
    op = make_operator("bicubic", 8)
    assert all(np.array_equal(u, to_uint8(op.up(to_tensor(lr)[None])[0])) for u, lr in zip(ups, lrs))
    # a 128x128 source frame is written unchanged
    assert np.array_equal(read_image(out / "hr_128" / "f" / "frame_1.png"), read_image(src / "f" / "0007.png"))


def test_align_without_face_skips_clip(tmp_path):
    video = write_video(tmp_path / "flat.mp4", 12)
    out = tmp_path / "out"
    errors = []
    res = prepare_video([video], out, n_frames=2, interval_s=0.5, align=True, on_error=errors.append)
    assert res["clips_written"] == 0 and len(errors) == 1
    assert str(video) in errors[0] and "no face found in frame 0" in errors[0]
    assert not (out / "hr_128" / "flat").exists()


def test_align_real_face(tmp_path, sample_faces):
    face = read_image(sorted(sample_faces.glob("*.png"))[0])
    assert face.shape == (128, 128, 3)
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, (y, x) in enumerate([(60, 90), (70, 80)]):  # the face pasted off-centre into a larger frame
        frame = np.full((240, 300, 3), 128, np.uint8)
        frame[y:y + 128, x:x + 128] = face
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    out = tmp_path / "out"
    res = prepare_video([folder], out, n_frames=2, interval_s=1.0, align=True, fps=1, on_error=pytest.fail)
    assert res["clips_written"] == 1
    chips = [read_image(out / "hr_128" / "clip" / f"frame_{k}.png") for k in range(2)]
    assert all(c.shape == (128, 128, 3) for c in chips)
    # re-aligning an aligned chip with the same padding gives about the same framing
    for chip in chips:
        assert np.abs(chip.astype(float) - face).mean() < 20
    assert json.loads((out / "clips.json").read_text())["align"] is True


def test_a_missing_source_is_reported_and_the_others_prepared(tmp_path):
    clip = write_folder(tmp_path / "clip", 6, fps=5)
    errors = []
    res = prepare_video([tmp_path / "gone", tmp_path / "clip" / "0000.png", clip], tmp_path / "out", n_frames=2,
                        interval_s=0.4, on_error=errors.append)
    assert res["clips_written"] == 1 and len(res["skipped"]) == 2
    assert errors == [f"skipped {tmp_path / 'gone'}: no such file or folder",
                      f"skipped {tmp_path / 'clip' / '0000.png'}: is an image; give the folder of frames (or its parent folder)"]
    skipped = json.loads((tmp_path / "out" / "clips.json").read_text())["skipped"]
    assert [s["source"] for s in skipped] == [str(tmp_path / "gone"), str(tmp_path / "clip" / "0000.png")]
    with pytest.raises(FacesrError, match="gone: no such file or folder"):
        discover_clips([tmp_path / "gone"])
    with pytest.raises(FacesrError, match="gone: no such file or folder; .*other: no such file or folder"):
        prepare_video([tmp_path / "gone", tmp_path / "other"], tmp_path / "o2", on_error=errors.append)
