"""A resumable run records its pixel options; one recorded before an option existed still matches at its default."""

import json
from dataclasses import asdict

from facesr.engine.options import SamplingOptions, pixel_options, recorded_options
from facesr.workflows.video_sr import MANIFEST, _resumable


def test_the_batch_size_is_not_recorded_and_a_missing_option_takes_its_default():
    opts = SamplingOptions(steps=3, batch_size=4)
    record = pixel_options(opts)
    assert "batch_size" not in record and record == {k: v for k, v in asdict(opts).items() if k != "batch_size"}
    older = {k: v for k, v in record.items() if k != "flip"}  # a record from before flip was an option
    assert recorded_options({**older, "batch_size": 8}) == record
    assert recorded_options({**older, "steps": 5}) != record


def test_a_video_run_recorded_before_an_option_existed_resumes(tmp_path):
    options = pixel_options(SamplingOptions(steps=3))
    settings = {"model": "m", "settings": {**options, "step": 1, "fps": None, "video": True, "neighbours": True}}
    older = {"model": "m", "settings": {k: v for k, v in settings["settings"].items() if k != "flip"}}
    clip = {"source": "a.mp4", "complete": True}
    (tmp_path / MANIFEST).write_text(json.dumps({**older, "clips": [clip]}))
    assert _resumable(tmp_path, settings, overwrite=False) == {"a.mp4": clip}
    flipped = {**settings, "settings": {**settings["settings"], "flip": True}}
    assert _resumable(tmp_path, flipped, overwrite=False) == {}
