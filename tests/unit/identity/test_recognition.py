import numpy as np
import pytest

from facesr.errors import FacesrError
from facesr.identity.recognition import (cosine_similarity, identify, identity_split, pairs_from_labels,
                                         similarity_matrix, verify)


def _unit(deg):
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])


def test_cosine_similarity_and_matrix():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[3.0, 3.0], [0.0, -1.0]])
    np.testing.assert_allclose(cosine_similarity(a, b), [2**-0.5, -1.0])
    np.testing.assert_allclose(similarity_matrix(a, b), [[2**-0.5, 0.0], [2**-0.5, -1.0]])
    with pytest.raises(FacesrError):
        cosine_similarity(a, b[:1])
    with pytest.raises(FacesrError):
        similarity_matrix(a, [[np.nan, 1.0]])


# Toy on the unit circle. Gallery: A at 0 and 90 deg (two images), B at 120, C at 240.
# Probes (true label, angle): A 10 -> A wins (cos 10); A 104 -> A via its 90-deg image (cos 14) beats
# B (cos 16) only because an identity scores by its best image; B 200 -> C (cos 40) > B (cos 80) >
# A (cos 110, the 90-deg image), rank 2; C 250 -> C (cos 10), rank 1.
GALLERY = np.stack([_unit(0), _unit(90), _unit(120), _unit(240)])
GLABELS = ["A", "A", "B", "C"]
PROBES = np.stack([_unit(10), _unit(104), _unit(200), _unit(250)])
PLABELS = ["A", "A", "B", "C"]


def test_identify_toy():
    r = identify(PROBES, PLABELS, GALLERY, GLABELS, ks=(1, 2, 3))
    assert r.identities == ["A", "B", "C"]
    np.testing.assert_array_equal(r.rank, [1, 1, 2, 1])
    assert r.predicted == ["A", "A", "C", "C"]
    assert r.accuracy == {1: 0.75, 2: 1.0, 3: 1.0}
    np.testing.assert_allclose(r.scores[2], np.cos(np.radians([110, 80, 40])))
    # Without A's 90-deg image the probe at 104 is nearer B: rank 2.
    r1 = identify(PROBES, PLABELS, GALLERY[[0, 2, 3]], ["A", "B", "C"], ks=(1,))
    np.testing.assert_array_equal(r1.rank, [1, 2, 2, 1])
    assert r1.accuracy[1] == 0.5


def test_identify_ties_count_against_the_probe():
    r = identify([_unit(60)], ["A"], [_unit(0), _unit(120)], ["A", "B"], ks=(1, 2))
    assert r.rank[0] == 2 and r.accuracy == {1: 0.0, 2: 1.0}
    assert r.predicted == ["B"]  # the prediction agrees with the rank: a tie is a miss


def test_identify_predicts_the_true_identity_exactly_at_rank_1():
    rng = np.random.default_rng(2)
    gallery = np.repeat(rng.standard_normal((5, 4)), 2, axis=0)  # each identity's 2 images identical
    glabels = np.repeat(list("abcde"), 2)
    probes = np.concatenate([gallery[::2], gallery[::2] + 0.3 * rng.standard_normal((5, 4))])
    plabels = ["a", "b", "a", "d", "e"] * 2  # some probes carry another identity's face exactly (a tie-free miss)
    r = identify(probes, plabels, gallery, glabels)
    assert [p == t for p, t in zip(r.predicted, plabels)] == list(r.rank == 1)
    ties = identify(gallery[:2], ["a", "a"], np.concatenate([gallery[:2], gallery[:2]]), ["a", "a", "b", "b"])
    assert list(ties.rank) == [2, 2] and ties.predicted == ["b", "b"]


def test_identify_independent_of_probe_order():
    rng = np.random.default_rng(1)
    probes, labels = rng.standard_normal((30, 8)), rng.integers(0, 6, 30)
    gallery, glabels = rng.standard_normal((12, 8)), np.repeat(np.arange(6), 2)
    base = identify(probes, labels, gallery, glabels)
    perm = rng.permutation(30)
    shuf = identify(probes[perm], labels[perm], gallery, glabels)
    np.testing.assert_array_equal(shuf.rank, base.rank[perm])
    assert shuf.predicted == [base.predicted[i] for i in perm]
    assert shuf.accuracy == base.accuracy


def test_identify_open_set_probe_raises():
    with pytest.raises(FacesrError, match="not in the gallery"):
        identify(PROBES, ["A", "A", "B", "Z"], GALLERY, GLABELS)
    with pytest.raises(FacesrError):
        identify(PROBES, PLABELS[:3], GALLERY, GLABELS)


def test_verify_perfectly_separable():
    v = verify([0.9, 0.8, 0.7, 0.3, 0.2, 0.1], [1, 1, 1, 0, 0, 0], fars=(1e-3, 1e-2, 0.5))
    assert v.eer == 0.0 and v.auc == 1.0
    assert v.tar_at_far == {1e-3: 1.0, 1e-2: 1.0, 0.5: 1.0}


def test_verify_hand_computed():
    # genuine 0.9 0.8 0.4, impostor 0.7 0.3 0.2 0.1. ROC points (FAR, TAR) at t = inf, .9, .8, .7, .4, ...:
    # (0,0) (0,1/3) (0,2/3) (1/4,2/3) (1/4,1) ... FAR-FRR goes -1/12 -> +1/4 between t=.7 and t=.4,
    # so the crossing is 1/4 of the way: FAR = 1/4, FRR = 1/3 - 1/12 = 1/4. AUC = 11/12 (Mann-Whitney).
    v = verify([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1], [1, 1, 1, 0, 0, 0, 0], fars=(1e-2, 1e-3, 0.25))
    assert v.eer == pytest.approx(0.25)
    assert v.auc == pytest.approx(11 / 12)
    assert v.tar_at_far[1e-2] == pytest.approx(2 / 3) and v.tar_at_far[1e-3] == pytest.approx(2 / 3)
    assert v.tar_at_far[0.25] == 1.0
    np.testing.assert_allclose(v.far[:5], [0, 0, 0, 0.25, 0.25])
    np.testing.assert_allclose(v.tar[:5], [0, 1 / 3, 2 / 3, 2 / 3, 1])
    assert v.thresholds[0] == np.inf and v.thresholds[-1] == 0.1


def test_verify_ties_and_inverted_scores():
    v = verify([0.5, 0.5], [1, 0])  # a tie: one ROC step from (0,0) to (1,1)
    assert v.eer == pytest.approx(0.5) and v.auc == pytest.approx(0.5)
    v = verify([0.1, 0.9], [1, 0])  # every impostor beats every genuine
    assert v.eer == pytest.approx(1.0) and v.auc == 0.0
    with pytest.raises(FacesrError):
        verify([0.1, 0.2], [1, 1])


def test_pairs_from_labels():
    pairs, gen = pairs_from_labels(["a", "b", "a", "c", "b"])
    assert len(pairs) == 10 and gen.sum() == 2
    np.testing.assert_array_equal(pairs[gen], [[0, 2], [1, 4]])
    assert {tuple(p) for p in pairs} == {(i, j) for i in range(5) for j in range(i + 1, 5)}
    p1, g1 = pairs_from_labels(["a", "b", "a", "c", "b"], max_impostors=3, seed=7)
    p2, _ = pairs_from_labels(["a", "b", "a", "c", "b"], max_impostors=3, seed=7)
    assert len(p1) == 5 and g1.sum() == 2 and np.array_equal(p1, p2)
    assert {tuple(p) for p in p1[~g1]} <= {tuple(p) for p in pairs[~gen]}


def test_identity_split(tmp_path):
    from PIL import Image

    for person, names in {"bob": ["b2.png", "b1.png", "b3.png", "b4.png"], "ann": ["a1.png", "a2.png"],
                          "cid": ["c1.png"], "dee": []}.items():
        (tmp_path / person).mkdir()
        for n in names:
            Image.new("RGB", (4, 4)).save(tmp_path / person / n)
    (tmp_path / "bob" / "notes.txt").write_text("not an image")
    split = identity_split(tmp_path)
    assert list(split) == ["ann", "bob"]
    assert split["bob"] == {"gallery": tmp_path / "bob/b1.png", "probe": tmp_path / "bob/b2.png",
                            "aux": [tmp_path / "bob/b3.png", tmp_path / "bob/b4.png"]}
    assert split["ann"]["aux"] == []
    assert split.skipped == {"cid": "1 image", "dee": "0 images"}
    with pytest.raises(FacesrError):
        identity_split(tmp_path / "bob")  # no identity folders inside
