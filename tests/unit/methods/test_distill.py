"""Sampler distillation (``distill_from``, SR3 and score-SDE alike): the loss is this model's one DDIM step against
the teacher's ``distill_steps``-step draw from the same noisy start, checked against the engine's own sampler."""

import dataclasses

import pytest
import torch

from facesr.config import ConfigValueError
from facesr.diffusion.sampling import sample
from facesr.diffusion.schedules import DDPMConfig
from facesr.engine.options import SamplingOptions
from facesr.errors import FacesrError
from facesr.methods.score_sde import ScoreSR, ScoreSRConfig
from facesr.methods.sr3 import SR3, SR3Config
from facesr.nets.unet import UNetConfig

UNET = UNetConfig(block_out_channels=(32, 32), attention_levels=())
KINDS = {"sr3": lambda **kw: SR3(SR3Config(unet=UNET, diffusion=DDPMConfig(timesteps=50), scale=4, hr_size=16, **kw)),
         "score-sde": lambda **kw: ScoreSR(ScoreSRConfig(unet=dataclasses.replace(UNET, time_embedding="fourier"),
                                                         scale=4, hr_size=16, **kw))}


def student_of(teacher_folder, steps: int, kind: str = "sr3", **changes):
    return KINDS[kind](distill_from=str(teacher_folder), distill_steps=steps, **changes)


@pytest.fixture(params=list(KINDS))
def teacher(tmp_path, request):
    torch.manual_seed(0)
    model = KINDS[request.param]()
    model.save_pretrained(tmp_path / "teacher")
    return model, tmp_path / "teacher"


def lr_batch():
    return torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("steps", [1, 4])
def test_a_student_equal_to_its_teacher_scores_the_engines_one_step_against_its_multi_step_draw(teacher, steps):
    model, folder = teacher
    student = student_of(folder, steps, model.method)
    student.load_state_dict(model.state_dict())
    lr = lr_batch()
    up = student.condition_image(lr)
    loss = student.distill_loss(up, torch.Generator().manual_seed(7))
    estimate = model.encode(model.target_frame(up), up)
    draws = [sample(model.process(up), estimate, SamplingOptions(sampler="ddim", steps=n, strength=0.5), estimate,
                    torch.Generator().manual_seed(7)) for n in (1, steps)]
    expected = (draws[0] - draws[1]).abs().mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    if steps == 1:
        assert loss.item() == pytest.approx(0.0, abs=1e-6)
    else:
        assert loss.item() > 1e-4


def test_only_the_student_learns_and_the_teacher_is_not_saved_with_it(teacher):
    model, folder = teacher
    student = student_of(folder, 4, model.method)
    student.load_state_dict(model.state_dict())
    loss = student.training_loss({"hr": torch.rand(2, 3, 16, 16), "up": student.upsample(lr_batch()),
                                  "lr": lr_batch()}, torch.Generator().manual_seed(0))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in student.teacher(torch.device("cpu")).parameters())
    assert set(student.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize("other,differs", [("sr3", "target"), ("score-sde", "method")])
def test_a_teacher_of_another_kind_is_refused_in_one_line(tmp_path, other, differs):
    KINDS[other](**({"target": "image"} if other == "sr3" else {})).save_pretrained(tmp_path / "other")
    student = student_of(tmp_path / "other", 4)
    with pytest.raises(FacesrError, match=f"differs in {differs}"):
        student.distill_loss(student.condition_image(lr_batch()))


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_the_denoise_weight_adds_the_models_own_loss_on_the_same_batch(teacher, weight):
    model, folder = teacher
    student = student_of(folder, 3, model.method, distill_denoise_weight=weight)
    student.load_state_dict(model.state_dict())
    hr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    up = student.upsample(lr_batch())
    loss = student.training_loss({"hr": hr, "up": up, "lr": lr_batch()}, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)  # the same draws, in the same order
    distill = student.distill_loss(up, g)
    denoise = student.denoising_loss(hr, up, g)
    assert distill.item() > 1e-4 and denoise.item() > 1e-4
    assert loss.item() == pytest.approx((distill + weight * denoise).item() if weight else distill.item(), rel=1e-5)


@pytest.mark.parametrize("field,value", [("distill_steps", 0), ("distill_steps", 2.5), ("distill_strength", 1.0),
                                         ("distill_strength", 0), ("distill_denoise_weight", -0.1),
                                         ("distill_denoise_weight", True), ("distill_denoise_weight", float("nan"))])
@pytest.mark.parametrize("config", [lambda **kw: SR3Config(unet=UNET, **kw), lambda **kw: ScoreSRConfig(**kw)])
def test_bad_distillation_settings_are_refused(field, value, config):
    with pytest.raises(ConfigValueError, match=field):
        config(**{field: value})


def test_distillation_does_not_mix_with_the_identity_loss():
    with pytest.raises(FacesrError, match="identity_weight"):
        SR3Config(unet=UNET, distill_from="sr3-x8-res", identity_weight=0.1)


def test_the_settings_travel_with_the_config():
    cfg = SR3Config(unet=UNET, distill_from="sr3-x8-res", distill_steps=6, distill_strength=0.4)
    assert {f.name for f in dataclasses.fields(cfg)} >= {"distill_from", "distill_steps", "distill_strength"}
    assert (cfg.distill_steps, cfg.distill_strength) == (6, 0.4)


def test_the_student_records_the_face_networks_its_teacher_was_trained_with(tmp_path):
    from facesr.identity.loss import NETWORK

    teacher = SR3(SR3Config(unet=UNET, diffusion=DDPMConfig(timesteps=50), scale=4, hr_size=16, identity_weight=0.1))
    teacher.save_pretrained(tmp_path / "teacher")
    student = student_of(tmp_path / "teacher", 4)
    assert NETWORK not in student.identity_networks
    lines = student.prepare_training()
    assert NETWORK in student.identity_networks
    assert any(line.startswith("teacher:") for line in lines)
    saved = student.config_dict()
    fresh = student_of(tmp_path / "teacher", 4)
    fresh.carry_records(saved)  # a resumed run reads them back from its checkpoint
    assert NETWORK in fresh.identity_networks


def test_a_score_sde_student_records_the_face_networks_its_teacher_carries(tmp_path):
    from facesr.identity.loss import NETWORK

    KINDS["score-sde"](teacher_identity_networks=(NETWORK,)).save_pretrained(tmp_path / "teacher")  # itself a student
    student = student_of(tmp_path / "teacher", 4, "score-sde")
    assert NETWORK not in student.identity_networks
    student.prepare_training()
    assert NETWORK in student.identity_networks


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_students_one_step_from_its_distillation_strength_is_a_draw(kind):
    """The report's stability and the uncertainty maps take such samples as draws; any other one step is a mean."""
    from facesr.engine.options import mean_estimates

    student, plain = KINDS[kind](distill_from="teacher", distill_strength=0.7), KINDS[kind]()
    at = dict(sampler="ddim", steps=1, samples=4)
    assert not mean_estimates(student, SamplingOptions(strength=0.7, **at))
    assert mean_estimates(student, SamplingOptions(strength=0.5, **at))
    assert mean_estimates(plain, SamplingOptions(strength=0.7, **at))
    assert not mean_estimates(student, SamplingOptions(strength=0.7, **{**at, "steps": 2}))  # a multi-step draw anyway
