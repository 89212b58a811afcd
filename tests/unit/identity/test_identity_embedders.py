"""Embedder interface (a fake embedder: fast) and the AdaFace IR backbone / checkpoint loader."""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesr.io.images import list_images
from facesr.errors import FacesrError, InputError
from facesr.identity.embedders import Embedder


class FakeEmbedder(Embedder):
    name, dim, mode, batch_size = "fake", 3, "m1", 2

    def __init__(self):
        self.computed = 0

    def _prepare(self, img, ref):
        if img.max() == 0:
            raise InputError(ref, "no face found")
        return img.reshape(-1, 3).mean(0).astype(np.float32) + 1.0

    def _forward(self, batch):
        self.computed += len(batch)
        return np.stack(batch)


def _write(path, rgb):
    Image.fromarray(np.full((8, 8, 3), rgb, np.uint8)).save(path)
    return path


def test_embed_normalises_and_names_bad_inputs():
    e = FakeEmbedder()
    out = e.embed([np.full((4, 4, 3), (3, 0, 4), np.uint8)])
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out[0], np.array([4, 1, 5]) / np.sqrt(42), rtol=1e-6)
    assert e.embed([]).shape == (0, 3)
    with pytest.raises(InputError, match=r"images\[1\]: expected a uint8 RGB"):
        e.embed([np.ones((4, 4, 3), np.uint8), np.ones((4, 4), np.uint8)])
    with pytest.raises(InputError, match=r"images\[0\]: no face found"):
        e.embed([np.zeros((4, 4, 3), np.uint8)])


def test_embed_files_reports_failures_and_keeps_the_rest(tmp_path):
    good = [_write(tmp_path / f"g{i}.png", (10 * i + 1, 2, 3)) for i in range(3)]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    black = _write(tmp_path / "black.png", (0, 0, 0))
    paths = [good[0], corrupt, good[1], tmp_path / "missing.png", black, good[2]]
    out, failures = FakeEmbedder().embed_files(paths)
    assert [Path(f.path).name for f in failures] == ["corrupt.png", "missing.png", "black.png"]
    assert "no face found" in str(failures[2]) and "file not found" in str(failures[1])
    assert np.isnan(out[[1, 3, 4]]).all() and np.isfinite(out[[0, 2, 5]]).all()
    np.testing.assert_allclose(out[[0, 2, 5]], FakeEmbedder().embed([np.asarray(Image.open(p)) for p in good]))


def test_cache_is_content_addressed_npy_and_atomic(tmp_path):
    files = [_write(tmp_path / f"f{i}.png", (i + 1, 5, 9)) for i in range(5)]
    cache = tmp_path / "cache"
    e = FakeEmbedder()
    first, _ = e.embed_files(files, cache_dir=cache)
    assert e.computed == 5
    again, _ = e.embed_files(files, cache_dir=cache)
    assert e.computed == 5 and np.array_equal(first, again)
    stored = sorted((cache / "fake").iterdir())
    assert len(stored) == 5 and all(p.suffix == ".npy" for p in stored)  # no temp files left, no pickles
    np.load(stored[0], allow_pickle=False)
    # same bytes under another name: a hit; changed bytes: recomputed
    (tmp_path / "copy.png").write_bytes(files[0].read_bytes())
    _write(files[1], (200, 5, 9))
    out, _ = e.embed_files([tmp_path / "copy.png", files[1]], cache_dir=cache)
    assert e.computed == 6 and np.array_equal(out[0], first[0]) and not np.allclose(out[1], first[1])
    # another mode is another key; a damaged cache file is recomputed
    e.mode = "m2"
    e.embed_files(files[:1], cache_dir=cache)
    assert e.computed == 7
    for p in (cache / "fake").iterdir():
        p.write_bytes(b"garbage")
    e.embed_files(files[:2], cache_dir=cache)
    assert e.computed == 9


def test_identity_package_imports_no_torch_or_dlib():
    code = ("import sys, facesr.identity as i, facesr.identity.embedders, facesr.identity.recognition, "
            "facesr.identity.aggregate; i.identify; "
            "assert 'torch' not in sys.modules and 'dlib' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- AdaFace ---------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
from facesr.identity.adaface_net import IRBackbone  # noqa: E402
from facesr.identity.embedders import AdaFaceEmbedder  # noqa: E402


def test_ir_param_counts_and_layout():
    m = IRBackbone("ir_18")
    assert sum(p.numel() for p in m.parameters()) == 24_020_352  # dossier section 6, checked
    assert len(m.body) == 8
    keys = list(m.state_dict())
    assert keys[:2] == ["input_layer.0.weight", "input_layer.1.weight"]
    for k in ["body.1.res_layer.3.weight", "body.1.res_layer.5.running_var", "body.2.shortcut_layer.0.weight",
              "body.2.shortcut_layer.1.bias", "output_layer.3.weight", "output_layer.4.running_mean"]:
        assert k in keys
    assert isinstance(m.body[0].shortcut_layer, torch.nn.MaxPool2d)  # 64 -> 64, stride 2
    assert "output_layer.4.weight" not in keys  # BN1d(512, affine=False)
    from facesr.identity.adaface_net import UNITS

    assert {a: sum(u) for a, u in UNITS.items()} == {"ir_18": 8, "ir_50": 24, "ir_101": 49}


@pytest.fixture(scope="module")
def ir18_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = IRBackbone("ir_18")
    with torch.no_grad():  # non-trivial eval-mode statistics
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
    sd = {"model." + k: v for k, v in model.state_dict().items()}
    sd["head.kernel"] = torch.randn(512, 10)
    path = tmp_path_factory.mktemp("ckpt") / "adaface_ir18_test.ckpt"
    torch.save({"epoch": 3, "global_step": 99, "pytorch-lightning_version": "1.8.6", "state_dict": sd}, path)
    return path, model.eval()


def _reference_input(img):  # AdaFace inference.py / FASR features_extract.py, with PIL bicubic to 112
    np_img = np.array(Image.fromarray(img).resize((112, 112), Image.BICUBIC))
    bgr = ((np_img[:, :, ::-1] / 255.0) - 0.5) / 0.5
    return torch.tensor(bgr.transpose(2, 0, 1).copy()[None]).float()


def test_adaface_embedder_matches_model(ir18_ckpt, sample_faces):
    path, model = ir18_ckpt
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in list_images(sample_faces)[:3]]
    e = AdaFaceEmbedder(path, arch="ir_18")
    out = e.embed(imgs)
    assert out.shape == (3, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(out, e.embed(imgs))
    with torch.no_grad():
        ref = torch.cat([model(_reference_input(i))[0] for i in imgs]).numpy()
    np.testing.assert_allclose(out, ref, atol=2e-5)
    assert e.dim == 512 and e.name == "adaface-ir_18" and not any(p.requires_grad for p in e.model.parameters())


def test_adaface_bad_checkpoints(ir18_ckpt, tmp_path):
    path, _ = ir18_ckpt
    sd = torch.load(path, weights_only=True)["state_dict"]
    del sd["model.body.3.res_layer.1.weight"]
    broken = tmp_path / "missing_key.ckpt"
    torch.save({"state_dict": sd}, broken)
    with pytest.raises(FacesrError, match=r"missing_key\.ckpt: keys do not match AdaFace ir_18: 1 missing"):
        AdaFaceEmbedder(broken)
    with pytest.raises(FacesrError, match=r"ir18_test\.ckpt: keys do not match AdaFace ir_50.*looks like ir_18"):
        AdaFaceEmbedder(path, arch="ir_50")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(FacesrError, match=r"corrupt\.ckpt: cannot read"):
        AdaFaceEmbedder(corrupt)
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hparams": argparse.Namespace(lr=1)}, unsafe)
    with pytest.raises(FacesrError, match=r"unsafe\.ckpt: cannot read .*pickled argparse.Namespace"):
        AdaFaceEmbedder(unsafe)
    with pytest.raises(FacesrError, match=r"nope\.ckpt: AdaFace checkpoint not found"):
        AdaFaceEmbedder(tmp_path / "nope.ckpt")
    with pytest.raises(FacesrError, match="unknown AdaFace architecture"):
        AdaFaceEmbedder(path, arch="ir_34")
