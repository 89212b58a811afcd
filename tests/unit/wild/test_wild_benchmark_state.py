"""benchmarks/wild.py's scene records (its resume state is facesr.io.records.ResultLog, tested in tests/unit/io)."""


def record(found):
    return {"people": ["A", "B"], "weights": "w", "found": found, "right": [found, 0], "face_psnr": [25.0],
            "photo_psnr": [23.0], "seconds": [1.0]}


def test_merge_adds_a_scene_to_the_totals(benchmark_script):
    wild = benchmark_script("wild")
    total = {"found": 0, "right": [0, 0], "face_psnr": [], "photo_psnr": [], "seconds": []}
    wild.merge(total, record(3))
    wild.merge(total, record(2))
    assert total["found"] == 5 and total["right"] == [5, 0]
    assert total["face_psnr"] == [25.0, 25.0] and total["seconds"] == [1.0, 1.0]
