"""The ONNX ArcFace backend: alignment to the template, a random-weight ONNX network written by the test,
and the project's faceplugin judge on the sample faces."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from facesr.errors import FacesrError
from facesr.identity.arcface import (ARCFACE_POINTS, CHIP_POINTS, similarity_transform,
                                     warp_to_template)
from facesr.identity.embedders import make_embedder
from facesr.io.images import list_images, read_image

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def write_random_onnx(path, batch=None, dim=16, side=112, seed=0):
    """input (N, 3, side, side) -> Conv 3->8 (stride 4) -> Relu -> global average -> Gemm -> (N, dim)."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(8, 3, 5, 5)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.normal(size=(8, dim)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], strides=[4, 4]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["out"])]
    n = batch if batch is not None else "n"
    graph = helper.make_graph(nodes, "random", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, side, side])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [n, dim])], [w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@settings(max_examples=40, deadline=None)
@given(st.floats(0.3, 3.0), st.floats(-math.pi, math.pi), st.floats(-50, 50), st.floats(-50, 50), st.integers(0, 10_000))
def test_similarity_transform_recovers_a_known_similarity(scale, angle, tx, ty, seed):
    src = np.random.default_rng(seed).uniform(0, 128, size=(5, 2))
    a = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    got_a, got_t = similarity_transform(src, src @ a.T + [tx, ty])
    np.testing.assert_allclose(got_a, a, atol=1e-8)
    np.testing.assert_allclose(got_t, [tx, ty], atol=1e-6)


def test_least_squares_with_noise_is_no_worse_than_the_truth():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 128, size=(5, 2))
    dst = src * 0.8 + 3 + rng.normal(scale=2.0, size=src.shape)
    a, t = similarity_transform(src, dst)
    err = np.square(src @ a.T + t - dst).sum()
    assert err <= np.square(src * 0.8 + 3 - dst).sum() + 1e-9


def test_warp_with_the_template_points_is_the_identity():
    img = (np.random.default_rng(0).uniform(0, 255, (112, 112, 3))).astype(np.uint8)
    out = warp_to_template(img, ARCFACE_POINTS)
    assert np.abs(out.astype(int) - img.astype(int)).max() <= 1


def test_warp_moves_the_points_onto_the_template():
    # a chip whose 5 points are bright dots: after the warp they sit on the template's points
    img = np.zeros((128, 128, 3), np.uint8)
    for x, y in CHIP_POINTS:
        img[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2] = 255
    out = warp_to_template(img, CHIP_POINTS).max(axis=2).astype(float)
    for x, y in ARCFACE_POINTS:
        patch = out[round(y) - 3:round(y) + 4, round(x) - 3:round(x) + 4]
        assert patch.max() > 100


def test_random_onnx_model_dynamic_and_fixed_batch_agree(tmp_path, sample_faces):
    faces = [read_image(p) for p in list_images(sample_faces)][:4]
    dynamic = make_embedder(f"onnx:{write_random_onnx(tmp_path / 'dyn.onnx')}")
    fixed = make_embedder(f"onnx:{write_random_onnx(tmp_path / 'one.onnx', batch=1)}")
    a, b = dynamic.embed(faces), fixed.embed(faces)
    assert a.shape == (4, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0], a[1])  # different faces, different vectors
    np.testing.assert_allclose(dynamic.embed(faces[:1])[0], a[0], atol=1e-6)  # batching changes nothing
    assert dynamic.name.startswith("onnx-") and dynamic.name != fixed.name  # named by the file's sha256


def test_normalisation_is_part_of_the_spec_and_the_cache_key(tmp_path, sample_faces):
    path = write_random_onnx(tmp_path / "m.onnx")
    face = read_image(list_images(sample_faces)[0])
    plain, custom = make_embedder(f"onnx:{path}"), make_embedder(f"onnx:{path}:0,255")
    assert (custom.mean, custom.std) == (0.0, 255.0) and plain.mode != custom.mode
    assert not np.allclose(plain.embed([face]), custom.embed([face]))


def test_small_inputs_are_enlarged_and_fall_back_to_the_chip_points(tmp_path):
    e = make_embedder(f"onnx:{write_random_onnx(tmp_path / 'm.onnx')}")
    noise = (np.random.default_rng(0).uniform(0, 255, (16, 16, 3))).astype(np.uint8)
    assert np.isfinite(e.embed([noise])).all() and e.fallbacks == 1


@pytest.mark.parametrize("spec, message", [
    ("onnx:", "give the model file"),
    ("onnx:/nonexistent/judge.onnx", "judge.onnx: ONNX model file not found"),
    ("onnx:{tmp}/m.onnx:1,0", "STD must be positive"),
    ("onnx:{tmp}/m.onnx:a,b", "MEAN,STD must be two numbers"),
    ("onnx:{tmp}/garbage.onnx", "garbage.onnx: not a usable ONNX model"),
    ("onnx:{tmp}/small.onnx", "expected an input of shape"),
])
def test_bad_specs_and_files_are_one_clear_error(tmp_path, spec, message):
    write_random_onnx(tmp_path / "m.onnx")
    write_random_onnx(tmp_path / "small.onnx", side=64)
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(FacesrError, match=message):
        make_embedder(spec.format(tmp=tmp_path))


def test_faceplugin_judge_identifies_the_sample_faces(sample_faces):
    """The project's judge (`make judge` fetches it): each sample face, flipped, is nearest to itself."""
    judge = make_embedder("faceplugin")
    faces = [read_image(p) for p in list_images(sample_faces)]
    assert judge.dim == 512 and judge.name == "faceplugin-arcface"
    g = judge.embed(faces)
    p = judge.embed([np.ascontiguousarray(f[:, ::-1]) for f in faces])
    scores = p @ g.T
    assert (scores.argmax(axis=1) == np.arange(len(faces))).all()
    assert np.diag(scores).min() > 0.5 and judge.fallbacks == 0
    # a 16-px face enlarged still gives a finite, unit vector
    small = np.asarray(Image.fromarray(faces[0]).resize((16, 16), Image.BICUBIC))
    assert abs(np.linalg.norm(judge.embed([small])[0]) - 1) < 1e-5


def test_faceplugin_missing_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESR_JUDGES", str(tmp_path))
    with pytest.raises(FacesrError, match="make judge"):
        make_embedder("faceplugin")


def test_faceplugin_with_another_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESR_JUDGES", str(tmp_path))
    write_random_onnx(tmp_path / "faceplugin-fr_feature.onnx")
    with pytest.raises(FacesrError, match="is not the faceplugin judge"):
        make_embedder("faceplugin")


@pytest.mark.parametrize("embedder", ["faceplugin", "onnx:judge.onnx"])
def test_a_judge_can_never_be_a_condition(embedder):
    from facesr.nets.unet import UNetConfig

    with pytest.raises(FacesrError, match="never trains, conditions or guides with the network that judges"):
        UNetConfig(vector_dim=512, vector_embedder=embedder)
    assert UNetConfig(vector_dim=0, vector_embedder=embedder).vector_dim == 0  # no vector, no condition
