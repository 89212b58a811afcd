"""run_and_evaluate (facesr benchmark, evaluate --run) keeps what a killed or shorter run finished."""

import json
from dataclasses import asdict

import numpy as np
from PIL import Image

from facesr.engine.options import SamplingOptions
from facesr.methods.hub import load_model
from facesr.workflows.evaluate import RUN_STATE, _finished_rows, run_and_evaluate


def probes(root):
    return sorted(root.glob("*/1.png"))


def run(model, hr, out, **kw):
    opts = SamplingOptions.for_model(model, steps=2, samples=1, seed=0, batch_size=2, precision="fp32")
    return run_and_evaluate(model, hr, opts, "cpu", out, on_error=lambda m: None, **kw)


def test_a_run_over_more_probes_keeps_the_probes_a_shorter_run_finished(tiny_model, make_identity_root, tmp_path):
    model = load_model(str(tiny_model))
    hr = probes(make_identity_root(people=3, images=2))
    whole, out = tmp_path / "whole", tmp_path / "out"
    ref = run(model, hr, whole)["rows"]
    first = run(model, hr[:2], out)["rows"]
    assert [r["name"] for r in first] == [r["name"] for r in ref[:2]]
    marked = out / "sr" / f"{first[0]['name']}.png"  # a kept probe is read back, not redone
    Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(marked)
    more = run(model, hr, out)["rows"]
    assert [r["name"] for r in more] == [r["name"] for r in ref]
    assert np.asarray(Image.open(marked)).max() == 0 and more[0] == first[0]
    new = ref[2]["name"]  # the new probe is made as in a single run over all of them (noise by name)
    assert (out / "sr" / f"{new}.png").read_bytes() == (whole / "sr" / f"{new}.png").read_bytes()
    assert more[2]["psnr"] == ref[2]["psnr"]
    redone = run(model, hr, out, overwrite=True)["rows"]
    assert np.asarray(Image.open(marked)).max() > 0 and redone[0]["psnr"] == ref[0]["psnr"]


def test_other_settings_or_a_conditioned_run_over_other_probes_start_afresh(tmp_path):
    out = tmp_path / "run"
    (out / "sr").mkdir(parents=True)
    (out / "sr" / "a.png").write_bytes(b"png")
    options = {k: v for k, v in asdict(SamplingOptions(steps=2)).items() if k != "batch_size"}
    settings = {"model": "m", "options": options, "probes": ["/x/a.png"], "y": False, "crop": 0, "extra": {}}
    (out / RUN_STATE).write_text(json.dumps({"settings": settings, "rows": [{"name": "a"}, {"name": "b"}]}))
    more = {**settings, "probes": ["/x/a.png", "/x/b.png"]}
    names = {"a": "/x/a.png", "b": "/x/b.png"}
    assert _finished_rows(out, more, names, conditioned=False) == {"a": {"name": "a"}}  # b: no SR on disk
    assert _finished_rows(out, more, names, conditioned=True) == {}
    assert _finished_rows(out, settings, names, conditioned=True) == {"a": {"name": "a"}}
    assert _finished_rows(out, {**more, "options": {**options, "steps": 3}}, names, conditioned=False) == {}
    assert _finished_rows(out, more, {"a": "/y/a.png"}, conditioned=False) == {}  # same name, another file
    (out / RUN_STATE).write_text("[1, 2]")
    assert _finished_rows(out, more, names, conditioned=False) == {}


def test_a_run_written_before_an_option_existed_is_kept_when_that_option_is_at_its_default(tmp_path):
    out = tmp_path / "run"
    (out / "sr").mkdir(parents=True)
    (out / "sr" / "a.png").write_bytes(b"png")
    options = {k: v for k, v in asdict(SamplingOptions()).items() if k != "batch_size"}
    now = {"model": "m", "options": options, "probes": ["/x/a.png"], "y": False, "crop": 0, "extra": {}}
    older = {**now, "options": {k: v for k, v in options.items() if k != "flip"}}  # before flip was an option
    (out / RUN_STATE).write_text(json.dumps({"settings": older, "rows": [{"name": "a"}]}))
    assert _finished_rows(out, now, {"a": "/x/a.png"}, conditioned=True) == {"a": {"name": "a"}}
    flipped = {**now, "options": {**options, "flip": True}}
    assert _finished_rows(out, flipped, {"a": "/x/a.png"}, conditioned=True) == {}
