"""ResultLog (benchmarks/wild.py, benchmarks/video_fasr.py resume with it): finished results come back only under
the same settings, and a line cut by a kill neither loses the records before it nor swallows the next one."""

from facesr.io.records import ResultLog


def record(found):
    return {"people": ["A", "B"], "weights": "w", "found": found, "right": [found, 0], "face_psnr": [25.0],
            "photo_psnr": [23.0], "seconds": [1.0]}


def test_records_come_back_under_the_same_settings_only(tmp_path):
    path = tmp_path / "state.jsonl"
    state = ResultLog(path, {"identity": ["dlib"]}, overwrite=False)
    state.add((8, "bicubic", 0), record(3))
    state.add((8, "msrresnet-x8", 0), record(5))
    again = ResultLog(path, {"identity": ["dlib"]}, overwrite=False)
    assert again.get((8, "bicubic", 0)) == record(3)
    assert again.get((8, "msrresnet-x8", 0)) == record(5)
    assert again.get((4, "bicubic", 0)) is None
    assert ResultLog(path, {"identity": ["faceplugin"]}, overwrite=False).get((8, "bicubic", 0)) is None
    assert ResultLog(path, {"identity": ["dlib"]}, overwrite=True).get((8, "bicubic", 0)) is None
    assert not path.exists()


def test_a_line_cut_by_a_kill_costs_only_itself(tmp_path):
    path = tmp_path / "state.jsonl"
    state = ResultLog(path, {}, overwrite=False)
    state.add((8, "bicubic", 0), record(1))
    with open(path, "a") as f:
        f.write('{"settings": {}, "key": [8, "bicu')  # the kill
    ResultLog(path, {}, overwrite=False).add((8, "bicubic", 1), record(2))
    again = ResultLog(path, {}, overwrite=False)
    assert again.get((8, "bicubic", 0)) == record(1)
    assert again.get((8, "bicubic", 1)) == record(2)


def test_without_a_path_results_stay_in_memory(tmp_path):
    state = ResultLog(None, {})
    state.add(("clip",), {"psnr": 1.0})
    assert state.get(("clip",)) == {"psnr": 1.0} and list(tmp_path.iterdir()) == []


def test_speed_keeps_each_timing_across_runs(tmp_path, benchmark_script):
    timed = benchmark_script("speed").timed
    calls = []

    def measure():
        calls.append(1)
        return 0.25

    path = tmp_path / "SPEED.md.partial.jsonl"
    assert timed(ResultLog(path, {"repeats": 3}), ("forward", 1, "m", "bf16", 16), measure) == 0.25
    assert timed(ResultLog(path, {"repeats": 3}), ("forward", 1, "m", "bf16", 16), measure) == 0.25
    assert len(calls) == 1  # the second run took the kept timing
    assert timed(ResultLog(path, {"repeats": 5}), ("forward", 1, "m", "bf16", 16), measure) == 0.25
    assert len(calls) == 2  # other settings: measured again
