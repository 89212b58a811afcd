"""The identity student: dlib's network, fine-tuned to read LR faces; saved, loaded, trained and resumed."""

import json

import numpy as np
import pytest
import torch

from facesr.cli import main
from facesr.errors import FacesrError
from facesr.identity.dlib_resnet import load_dlib_resnet
from facesr.identity.embedders import make_embedder, networks_of
from facesr.identity.student import load_student, save_student
from facesr.io.images import list_images, read_image
from facesr.train.student import StudentConfig, student_loss


@pytest.fixture
def faces(sample_faces):
    return [read_image(p) for p in list_images(sample_faces)[:3]]


def test_an_untrained_student_is_dlib(tmp_path, faces):
    save_student(load_dlib_resnet(), tmp_path / "s", {"operator": "bicubic", "scale": 8})
    student, dlib = make_embedder(f"dlib-lq:{tmp_path / 's'}"), make_embedder("dlib")
    np.testing.assert_array_equal(student.embed(faces), dlib.embed(faces))
    assert student.name == "dlib-lq-bicubic-x8" and student.mode != dlib.mode  # caches kept apart
    assert networks_of(f"dlib-lq:{tmp_path / 's'}") == (f"dlib-lq:{tmp_path / 's'}", "dlib")
    assert networks_of("dlib") == ("dlib",)


def test_the_loss_is_one_minus_cosine_to_the_teachers_hr_embedding():
    teacher = load_dlib_resnet()
    student = load_dlib_resnet().requires_grad_(True)
    torch.manual_seed(0)
    hr, lr = torch.rand(2, 3, 150, 150), torch.rand(2, 3, 150, 150)
    loss, lr_term, hr_term = student_loss(student, teacher, lr, hr, 0.5)
    assert hr_term.item() == pytest.approx(0, abs=1e-6)  # the student starts as the teacher
    t = torch.nn.functional.normalize(teacher(hr), dim=1)
    want = (1 - (torch.nn.functional.normalize(teacher(lr), dim=1) * t).sum(1)).mean()
    torch.testing.assert_close(lr_term, want)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def _config(tmp_path, sample_faces):
    cfg = {"name": "s", "data": {"train_dirs": [str(sample_faces)], "patch_size": 0},
           "optim": {"batch_size": 2, "lr": 1e-4, "warmup_steps": 1, "max_steps": 4, "checkpoint_every": 2,
                     "log_every": 1, "mixed_precision": "no"}}
    path = tmp_path / "student.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.slow
def test_training_moves_lr_faces_towards_hr_and_resumes_exactly(tmp_path, sample_faces, capsys):
    cfg = _config(tmp_path, sample_faces)
    assert main(["train-embedder", str(cfg), "--out", str(tmp_path / "a")]) == 0
    assert "--identity dlib-lq:" in capsys.readouterr().out
    # a run stopped at step 2 and resumed ends with the same weights as the run straight to 4
    assert main(["train-embedder", str(cfg), "--out", str(tmp_path / "b"), "--max-steps", "2"]) == 0
    assert main(["train-embedder", str(cfg), "--out", str(tmp_path / "b"), "--resume"]) == 0
    a, config, _ = load_student(tmp_path / "a" / "checkpoints" / "step-00000004")
    b, _, _ = load_student(tmp_path / "b" / "checkpoints" / "step-00000004")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert config["steps"] == 4 and config["scale"] == 8
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # each step logged once
    dlib = load_dlib_resnet()
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), dlib.state_dict().values()))
    # a run folder with checkpoints is not overwritten without --resume
    capsys.readouterr()
    assert main(["train-embedder", str(cfg), "--out", str(tmp_path / "a")]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("no-config", "not an identity student"),
    ("wrong-kind", "kind is not 'dlib-lq'"),
    ("bad-weights", "student.safetensors"),
])
def test_a_folder_that_is_not_a_student_is_one_error(tmp_path, case, message):
    folder = tmp_path / "s"
    folder.mkdir()
    if case == "wrong-kind":
        (folder / "config.json").write_text(json.dumps({"kind": "other"}))
    if case == "bad-weights":
        (folder / "config.json").write_text(json.dumps({"kind": "dlib-lq"}))
        (folder / "student.safetensors").write_bytes(b"garbage")
    with pytest.raises(FacesrError, match=message):
        load_student(folder)


@pytest.mark.parametrize("field, value, message", [
    ("data", {"patch_size": 64}, "patch_size"), ("hr_anchor", -1, "hr_anchor"), ("operator", "nope", "nope")])
def test_bad_configs_are_refused(field, value, message):
    from facesr.config import from_dict

    with pytest.raises(FacesrError, match=message):
        from_dict(StudentConfig, {field: value}, "student.json")


def test_the_bundled_student_puts_tiny_faces_nearer_their_hr_faces_than_dlib_does(sample_faces, capsys):
    """The bundled 'dlib-lq' (benchmarks/results/condition-identity-student-*.md): each sample face's 16-px
    LR, embedded by the student, is nearer dlib's embedding of its HR face than dlib's own LR embedding is."""
    from facesr.degrade.protocol import LRProtocol
    from facesr.identity.features import usable_embeddings
    from facesr.identity.student import bundled_students

    paths = list_images(sample_faces)
    dlib, student = make_embedder("dlib"), make_embedder("dlib-lq")
    assert student.name == "dlib-lq-bicubic-x8" and networks_of("dlib-lq") == ("dlib-lq", "dlib")
    protocol = LRProtocol.of("bicubic", 8)
    hr = usable_embeddings(dlib, paths, None, print)
    cos_dlib = (usable_embeddings(dlib, paths, protocol, print) * hr).sum(1)
    cos_student = (usable_embeddings(student, paths, protocol, print) * hr).sum(1)
    assert len(hr) == len(paths) == 6
    assert cos_student.mean() > cos_dlib.mean() + 0.01 and (cos_student > cos_dlib).sum() >= 5, (cos_student, cos_dlib)
    assert [s["spec"] for s in bundled_students()] == ["dlib-lq"]
    assert main(["models"]) == 0 and "identity network dlib-lq (dlib-lq-x8)" in capsys.readouterr().out


def test_a_fasr_video_track_is_conditioned_through_the_bundled_student(monkeypatch, faces):
    """restore on video: a FASR track's condition is the mean embedding of its tiny faces by the student of
    the model's network at its scale (dlib-lq for fasr-x8), not by dlib; models of other networks keep theirs."""
    import facesr.engine.conditions as conditions
    from facesr.identity.features import aggregate
    from facesr.identity.student import student_for
    from facesr.io.images import to_tensor
    from facesr.methods.hub import load_model
    from facesr.workflows import restore_video

    assert student_for("dlib", 8) == "dlib-lq" and student_for("dlib", 4) is None and student_for("onnx:x", 8) is None
    model = load_model("fasr-x8", "cpu")
    assert restore_video.track_embedder(model) == "dlib-lq"
    assert restore_video.track_embedder(load_model("msrresnet-x8", "cpu")) is None
    seen = []

    def fake_run(model, inputs, keys, opts, device, conditions=None, **_):
        seen.extend(conditions)
        return [torch.zeros(3, 128, 128) for _ in inputs]

    monkeypatch.setattr("facesr.engine.run.super_resolve_tensors", fake_run)

    class Restorer:
        device = "cpu"

        def load(self, name):
            return model, object()

    lr = [to_tensor(model.lr_protocol.lr_image(f, "probe")[0]) for f in faces]
    restore_video._restore_track(lr, Restorer(), "fasr-x8", "clip-track0")
    chips = [(c.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for c in lr]
    expected = aggregate(make_embedder("dlib-lq").embed(chips), "mean")
    assert len(seen) == 3 and all(torch.equal(c.vector, seen[0].vector) for c in seen)
    np.testing.assert_allclose(seen[0].vector.numpy(), expected, atol=1e-5)
    by_dlib = aggregate(make_embedder("dlib").embed(chips), "mean")
    assert np.abs(seen[0].vector.numpy() - by_dlib).max() > 1e-3
    assert not torch.equal(seen[0].vector, conditions.null_identity(model))
