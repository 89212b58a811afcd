"""The PyTorch port of dlib's face ResNet against dlib itself, on the bundled sample faces."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facesr.errors import FacesrError
from facesr.identity.dlib_resnet import dlib_resnet_file, load_dlib_resnet
from facesr.identity.embedders import load_dlib, upsample_min_side
from facesr.io.images import list_images, read_image, to_tensor

dlib = pytest.importorskip("dlib")
SAMPLES = Path(__file__).resolve().parents[3] / "src" / "facesr" / "samples" / "faces"


@pytest.fixture(scope="module")
def net():
    return load_dlib_resnet()


@pytest.fixture(scope="module")
def dlib_chips():
    """dlib's own 150-px chips of the sample faces, sharp and after a 16-px bicubic round trip."""
    dl, models = load_dlib()
    predictor = dl.shape_predictor(models.pose_predictor_five_point_model_location())
    chips = []
    for path in list_images(SAMPLES):
        img = read_image(path)
        small = np.asarray(Image.fromarray(img).resize((16, 16), Image.BICUBIC).resize(img.shape[:2], Image.BICUBIC))
        for face in (img, small):
            face = np.ascontiguousarray(upsample_min_side(face, 150))
            shape = predictor(face, dl.rectangle(0, 0, face.shape[1] - 1, face.shape[0] - 1))
            chips.append(dl.get_face_chip(face, shape, 150, 0.25))
    return chips


def test_port_matches_dlibs_descriptors(net, dlib_chips):
    _, models = load_dlib()
    recogniser = dlib.face_recognition_model_v1(models.face_recognition_model_location())
    want = np.array([np.array(recogniser.compute_face_descriptor(c)) for c in dlib_chips], np.float32)
    with torch.no_grad():
        got = net(torch.stack([to_tensor(c) for c in dlib_chips])).numpy()
    cos = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 1 - 1e-4
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert len({tuple(np.round(v, 2)) for v in want}) == len(want)  # twelve different inputs


def test_identity_loss_has_gradients_and_the_network_stays_frozen(net, sample_faces):
    chips = torch.stack([to_tensor(read_image(p)) for p in list_images(sample_faces)[:2]])
    target = net.embed_chips(chips).detach()
    x = (chips + 0.1 * torch.randn_like(chips)).clamp(0, 1).requires_grad_(True)
    v = net.embed_chips(x)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2))
    loss = (1 - (v * target).sum(1)).mean()
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())


def test_a_step_along_the_gradient_raises_the_score(net, sample_faces):
    paths = list_images(sample_faces)
    target = net.embed_chips(to_tensor(read_image(paths[0]))[None]).detach()
    x = to_tensor(read_image(paths[1]))[None].requires_grad_(True)
    score = (net.embed_chips(x) * target).sum()
    score.backward()
    with torch.no_grad():
        stepped = (net.embed_chips(x + 0.5 * x.grad / x.grad.norm()) * target).sum()
    assert stepped > score


def test_a_file_that_is_not_the_network_is_one_clear_error(tmp_path):
    cut = tmp_path / "cut.dat"
    cut.write_bytes(dlib_resnet_file().read_bytes()[:100000])
    with pytest.raises(FacesrError, match=r"cut\.dat: not dlib's face recognition ResNet \(at byte \d+"):
        load_dlib_resnet(cut)
    other = tmp_path / "predictor.dat"
    _, models = load_dlib()
    shutil.copy(models.pose_predictor_five_point_model_location(), other)
    with pytest.raises(FacesrError, match="predictor.dat: not dlib's face recognition ResNet"):
        load_dlib_resnet(other)
    with pytest.raises(FacesrError, match="missing.dat: cannot read"):
        load_dlib_resnet(tmp_path / "missing.dat")
