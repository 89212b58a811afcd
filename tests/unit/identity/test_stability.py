"""Identity stability and score calibration against hand-made scores with known answers."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facesr.errors import FacesrError
from facesr.identity.calibration import BINS, Calibration, bundled_calibration, load_calibration
from facesr.identity.stability import identity_scores, joint_verdict, judges_agree, stability, verdict


def _unit(rng, n, d=8):
    v = rng.normal(size=(n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_an_identical_image_is_rank_1_with_stability_1():
    rng = np.random.default_rng(0)
    gallery = _unit(rng, 6)
    labels = ["a", "b", "c", "d", "e", "f"]
    samples = np.repeat(gallery[2:3], 5, axis=0)  # five samples, all the gallery image of "c"
    scores, ids = identity_scores(samples, gallery, labels)
    result = stability(scores, ids)
    assert result.top_identity == "c" and result.stability == 1.0 and result.samples == 5
    assert result.candidates[0].identity == "c" and result.candidates[0].low == pytest.approx(1.0)
    assert result.candidates[0].top1_share == 1.0 and len(result.candidates) == 5
    assert "Stable: 5 of 5 samples have c" in verdict(result)


def test_split_samples_give_the_fraction_and_the_intervals():
    ids = ["x", "y", "z"]
    scores = np.array([[0.9, 0.5, 0.1], [0.8, 0.6, 0.2], [0.4, 0.7, 0.3], [0.85, 0.2, 0.0]])
    r = stability(scores, ids, top=2)
    assert r.top_identity == "x" and r.stability == 0.75 and r.per_sample == ["x", "x", "y", "x"]
    x, y = r.candidates
    assert (x.identity, x.low, x.high, x.median) == ("x", 0.4, 0.9, pytest.approx(0.825))
    assert (y.identity, y.top1_share) == ("y", 0.25)
    text = verdict(r)
    assert text.startswith("Not stable: only 3 of 4 samples have x") and "others: y" in text


def test_ties_go_to_the_higher_median_and_one_sample_is_not_a_stability():
    r = stability(np.array([[0.9, 0.1], [0.2, 0.95]]), ["p", "q"])
    assert r.stability == 0.5 and r.top_identity == "p"  # medians 0.55 and 0.525
    one = stability(np.array([[0.3, 0.6]]), ["p", "q"])
    assert one.top_identity == "q" and "no stability can be measured" in verdict(one)


def test_the_judges_agree_only_when_each_is_stable_on_the_same_identity():
    ids = ["a", "b"]
    sure_a = stability(np.array([[0.9, 0.1]] * 10), ids)  # 10 of 10 on a
    nine_a = stability(np.array([[0.9, 0.1]] * 9 + [[0.1, 0.9]]), ids)  # 9 of 10 on a
    eight_a = stability(np.array([[0.9, 0.1]] * 8 + [[0.1, 0.9]] * 2), ids)
    sure_b = stability(np.array([[0.1, 0.9]] * 10), ids)
    assert judges_agree({"j1": sure_a, "j2": nine_a}) == "a"
    assert judges_agree({"j1": sure_a, "j2": eight_a}) is None  # one judge below 0.9
    assert judges_agree({"j1": sure_a, "j2": eight_a}, threshold=0.8) == "a"
    assert judges_agree({"j1": sure_a, "j2": sure_b}) is None  # both sure, of different people
    assert judges_agree({"j1": sure_a}) is None  # one judge is no check
    assert joint_verdict({"j1": sure_a, "j2": nine_a}).startswith("All 2 judges agree, stably: a (j1: a in 10 of 10")
    text = joint_verdict({"j1": sure_a, "j2": sure_b})
    assert text.startswith("The judges do not agree stably (j1: a in 10 of 10 samples; j2: b in 10 of 10")
    assert joint_verdict({"j1": sure_a}).startswith("One judge only")


def test_several_gallery_images_of_one_identity_count_by_their_best():
    gallery = np.eye(3)
    scores, ids = identity_scores(np.array([[0.0, 1.0, 0.0]]), gallery, ["a", "b", "b"])
    assert ids == ["a", "b"] and scores.tolist() == [[0.0, 1.0]]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(2, 9), st.integers(0, 10_000))
def test_stability_agrees_with_a_direct_count(k, n, seed):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(-1, 1, size=(k, n))
    ids = [f"id{i}" for i in range(n)]
    r = stability(scores, ids)
    best = scores.argmax(axis=1)
    assert r.stability == pytest.approx(np.mean(best == ids.index(r.top_identity)))
    assert r.stability == pytest.approx(max(np.mean(best == j) for j in range(n)))
    for c in r.candidates:
        col = scores[:, ids.index(c.identity)]
        assert c.low == col.min() and c.high == col.max() and c.low <= c.median <= c.high


def test_bad_shapes_are_refused():
    with pytest.raises(FacesrError):
        identity_scores(np.ones((2, 4)), np.ones((3, 5)), ["a", "b", "c"])
    with pytest.raises(FacesrError):
        identity_scores(np.ones((2, 4)), np.ones((3, 4)), ["a", "b"])
    with pytest.raises(FacesrError):
        stability(np.ones((2, 3)), ["a", "b"])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(-0.9, 0.9))
def test_fmr_is_the_impostor_tail_against_a_direct_count(seed, score):
    rng = np.random.default_rng(seed)
    impostor = rng.uniform(-1, 1, 500)
    genuine = rng.uniform(0, 1, 100)
    cal = Calibration.fit("j", "test", genuine, impostor)
    edge = np.floor((score + 1) / 2 * BINS) / BINS * 2 - 1  # the bin's lower edge: the resolution
    assert cal.fmr(score) == pytest.approx(np.mean(impostor >= edge), abs=1e-12)
    assert cal.tmr(score) == pytest.approx(np.mean(genuine >= edge), abs=1e-12)
    assert cal.comparisons == (100, 500)


def test_fmr_text_and_round_trip(tmp_path):
    cal = Calibration.fit("j", "test", [0.9, 0.95], np.linspace(-0.5, 0.5, 1000))
    assert cal.fmr(0.99) == 0 and cal.fmr_text(0.99) == "< 1 in 1,000"
    assert cal.fmr_text(0.4) == f"1 in {round(1 / cal.fmr(0.4)):,}"
    cal.save(tmp_path / "c.json")
    back = load_calibration(tmp_path / "c.json")
    assert back.judge == "j" and np.array_equal(back.impostor, cal.impostor)


def test_bad_calibration_files_are_one_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "short.json").write_text(json.dumps({"judge": "j", "source": "s", "bins": BINS, "genuine": [1],
                                                     "impostor": [1]}))
    with pytest.raises(FacesrError, match="bad.json: not JSON"):
        load_calibration(tmp_path / "bad.json")
    with pytest.raises(FacesrError, match="short.json: histograms must have"):
        load_calibration(tmp_path / "short.json")
    with pytest.raises(FacesrError, match="missing.json: cannot read"):
        load_calibration(tmp_path / "missing.json")
    with pytest.raises(FacesrError, match="needs genuine and impostor"):
        Calibration.fit("j", "s", [], [0.1])


@pytest.mark.parametrize("judge", ["dlib-resnet-v1", "faceplugin-arcface"])
def test_bundled_calibrations_separate_genuine_from_impostor(judge):
    cal = bundled_calibration(judge)
    assert cal is not None and cal.judge == judge
    genuine, impostor = cal.comparisons
    assert genuine >= 300 and impostor >= 50_000
    # a score that keeps most genuine pairs lets few impostors through
    scores = np.linspace(-1, 1, 2001)
    at_1pct = min(s for s in scores if cal.fmr(s) <= 0.01)
    assert cal.tmr(at_1pct) > 0.5
