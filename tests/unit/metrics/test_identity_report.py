"""Identity metrics of a run: an image the judge cannot embed, or a bad gallery image, is reported and left out."""

import numpy as np
import pytest

from facesr.errors import FacesrError, InputError
from facesr.identity.embedders import Embedder
from facesr.degrade.resample import make_operator
from facesr.metrics import lr_consistency
from facesr.metrics.identity import EmbeddedGallery, embed_gallery, identity_report


class FakeEmbedder(Embedder):
    """A black image has no face; otherwise the vector is the image's mean colour (plus one)."""

    name, dim, mode, batch_size = "fake", 3, "m1", 8

    def _prepare(self, img, ref):
        if img.max() == 0:
            raise InputError(ref, "no face found")
        return img.reshape(-1, 3).mean(0).astype(np.float32) + 1.0

    def _forward(self, batch):
        return np.stack(batch)


COLOURS = {"a": (200, 10, 10), "b": (10, 200, 10), "c": (10, 10, 200)}


def _img(rgb):
    return np.full((4, 4, 3), rgb, np.uint8)


def _probes(black_sr=()):
    sr = [_img((0, 0, 0)) if lab in black_sr else _img(COLOURS[lab]) for lab in COLOURS]
    return {"sr": sr, "bicubic": [_img(COLOURS[lab]) for lab in COLOURS], "hr": [_img(COLOURS[lab]) for lab in COLOURS]}


def test_a_probe_the_judge_cannot_embed_gets_no_cs_or_rank_and_the_others_are_scored():
    errors = []
    columns, summary = identity_report(FakeEmbedder(), _probes(black_sr={"b"}), list(COLOURS),
                                       [(lab, _img(c), f"g/{lab}.png") for lab, c in COLOURS.items()],
                                       names=["pa", "pb", "pc"], on_error=errors.append)
    assert errors == ["pb, SR image: no face found"]
    assert columns["cs"][1] is None and columns["cs"][0] == pytest.approx(1.0) and columns["cs"][2] == pytest.approx(1.0)
    assert columns["rank"] == [1, None, 1] and columns["predicted"] == ["a", None, "c"]
    assert columns["bicubic_rank"] == [1, 1, 1]
    assert summary["cs"]["n"] == 2 and summary["sr_probes"]["probes_ranked"] == 2 and summary["sr_probes"]["rank1"] == 1.0
    assert summary["bicubic_probes"]["probes_ranked"] == 3
    with pytest.raises(InputError, match="no face found"):  # without on_error: the caller decides
        identity_report(FakeEmbedder(), _probes(black_sr={"b"}), list(COLOURS), None)


def test_a_gallery_image_the_judge_cannot_embed_leaves_its_identity_out():
    errors = []
    gallery = [(lab, _img((0, 0, 0)) if lab == "c" else _img(col), f"g/{lab}.png") for lab, col in COLOURS.items()]
    columns, summary = identity_report(FakeEmbedder(), _probes(), list(COLOURS), gallery, names=["pa", "pb", "pc"],
                                       on_error=errors.append)
    assert errors == ["g/c.png: no face found; identity c left out of the gallery (its probes get no rank)"]
    assert columns["rank"] == [1, 1, None] and columns["cs"] == pytest.approx([1.0, 1.0, 1.0])
    assert summary["gallery_identities"] == 2 and list(summary["gallery_left_out"]) == ["c"]
    assert summary["sr_probes"]["probes_ranked"] == 2 and "eer" in summary["sr_probes"]


def test_an_embedded_gallery_is_reused_and_a_probe_outside_it_is_still_an_error():
    g = embed_gallery(FakeEmbedder(), [(lab, _img(c)) for lab, c in COLOURS.items() if lab != "c"])
    assert isinstance(g, EmbeddedGallery) and g.labels == ["a", "b"] and g.left_out == {}
    with pytest.raises(FacesrError, match="not in the gallery"):  # not left out because of a bad image: closed set
        identity_report(FakeEmbedder(), _probes(), list(COLOURS), g, on_error=print)
    left = EmbeddedGallery(g.labels, g.vectors, {"c": "g/c.png: empty file"})
    columns, summary = identity_report(FakeEmbedder(), _probes(), list(COLOURS), left, on_error=print)
    assert columns["rank"] == [1, 1, None] and summary["gallery_left_out"] == {"c": "g/c.png: empty file"}


def test_a_one_identity_gallery_ranks_without_verification():
    columns, summary = identity_report(FakeEmbedder(), {k: v[:1] for k, v in _probes().items()}, ["a"],
                                       [("a", _img(COLOURS["a"]))], on_error=print)
    assert columns["rank"] == [1] and summary["sr_probes"]["rank1"] == 1.0 and "eer" not in summary["sr_probes"]


def test_consistency_says_plainly_that_sr_does_not_match_lr_times_the_scale():
    sr = np.zeros((128, 128, 3), np.uint8)
    with pytest.raises(FacesrError) as info:
        lr_consistency(sr, np.zeros((24, 16, 3), np.uint8), make_operator("bicubic", 8))
    assert str(info.value) == "SR size 128x128 does not match the LR size 16x24 x 8 (= 128x192)"
    with pytest.raises(FacesrError, match="SR size 100x100 does not match the LR size 16x16 x 8"):
        lr_consistency(np.zeros((100, 100, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), make_operator("bicubic", 8))
