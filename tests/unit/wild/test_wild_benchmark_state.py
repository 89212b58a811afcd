"""The resume state of benchmarks/wild.py: finished scenes come back only under the same settings, and a line cut
by a kill neither loses the records before it nor swallows the next one."""


def record(found):
    return {"people": ["A", "B"], "weights": "w", "found": found, "right": [found, 0], "face_psnr": [25.0],
            "photo_psnr": [23.0], "seconds": [1.0]}


def test_records_come_back_under_the_same_settings_only(tmp_path, benchmark_script):
    wild = benchmark_script("wild")
    path = tmp_path / "state.jsonl"
    state = wild.SceneState(path, {"identity": ["dlib"]}, overwrite=False)
    state.add(8, "bicubic", 0, record(3))
    state.add(8, "msrresnet-x8", 0, record(5))
    again = wild.SceneState(path, {"identity": ["dlib"]}, overwrite=False)
    assert again.get(8, "bicubic", 0) == record(3)
    assert again.get(8, "msrresnet-x8", 0) == record(5)
    assert again.get(4, "bicubic", 0) is None
    assert wild.SceneState(path, {"identity": ["faceplugin"]}, overwrite=False).get(8, "bicubic", 0) is None
    assert wild.SceneState(path, {"identity": ["dlib"]}, overwrite=True).get(8, "bicubic", 0) is None
    assert not path.exists()


def test_a_line_cut_by_a_kill_costs_only_itself(tmp_path, benchmark_script):
    wild = benchmark_script("wild")
    path = tmp_path / "state.jsonl"
    state = wild.SceneState(path, {}, overwrite=False)
    state.add(8, "bicubic", 0, record(1))
    with open(path, "a") as f:
        f.write('{"settings": {}, "div": 8, "meth')  # the kill
    wild.SceneState(path, {}, overwrite=False).add(8, "bicubic", 1, record(2))
    again = wild.SceneState(path, {}, overwrite=False)
    assert again.get(8, "bicubic", 0) == record(1)
    assert again.get(8, "bicubic", 1) == record(2)


def test_merge_adds_a_scene_to_the_totals(benchmark_script):
    wild = benchmark_script("wild")
    total = {"found": 0, "right": [0, 0], "face_psnr": [], "photo_psnr": [], "seconds": []}
    wild.merge(total, record(3))
    wild.merge(total, record(2))
    assert total["found"] == 5 and total["right"] == [5, 0]
    assert total["face_psnr"] == [25.0, 25.0] and total["seconds"] == [1.0, 1.0]
