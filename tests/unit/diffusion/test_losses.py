"""SR3's epsilon loss with continuous noise levels."""

import math

import pytest
import torch

from facesr.diffusion.losses import sr3_eps_loss
from facesr.diffusion.schedules import DDPMConfig, DDPMSchedule

COSINE = DDPMSchedule(DDPMConfig("cosine", 50))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def x0_batch(b=64, seed=1):
    return torch.rand((b, 3, 32, 32), generator=gen(seed)) * 2 - 1


def zeros_fn(x_t, sqrt_gamma):
    return torch.zeros_like(x_t)


def capture_sqrt_gamma(schedule, per_batch_t, seed=0, b=64):
    seen = []
    sr3_eps_loss(lambda x_t, sg: seen.append(sg.clone()) or torch.zeros_like(x_t), x0_batch(b), schedule,
                 generator=gen(seed), per_batch_t=per_batch_t)
    return seen[0]


def intervals_containing(schedule, v, tol=1e-6):
    """Timesteps t with sqrt(ab_t) <= v <= sqrt(ab_{t-1}) (float32 rounding tolerated)."""
    lo, hi = schedule.sqrt_alpha_bar, schedule.sqrt_alpha_bar_prev
    return {t for t in range(schedule.timesteps) if lo[t] - tol <= v <= hi[t] + tol}


@pytest.mark.parametrize("kind, expected", [("l2", 1.0), ("l1", math.sqrt(2 / math.pi))])
def test_zero_prediction_loss_is_the_noise_moment(kind, expected):
    loss = sr3_eps_loss(zeros_fn, x0_batch(), COSINE, generator=gen(0), kind=kind)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected, rel=0.01)  # 196608 standard normals


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_exact_noise_prediction_gives_zero_loss(kind):
    """eps_fn that inverts x_t = g x0 + sqrt(1 - g^2) eps must score ~0: checks x_t and the target."""
    sched = DDPMSchedule(DDPMConfig("linear", 10, 0.05, 0.5))  # keeps 1 - g^2 well away from 0
    x0 = x0_batch()

    def oracle(x_t, sqrt_gamma):
        g = sqrt_gamma.double().view(-1, 1, 1, 1)
        return (x_t.double() - g * x0.double()) / torch.sqrt(1 - g**2)

    assert sr3_eps_loss(oracle, x0, sched, generator=gen(0), kind=kind).item() < 1e-4
    assert sr3_eps_loss(zeros_fn, x0, sched, generator=gen(0), kind=kind).item() > 0.5


def test_the_x0_term_sees_the_denoised_estimate_and_gamma():
    """With the exact noise prediction the estimate is x0 itself; the term's value is added to the loss."""
    sched = DDPMSchedule(DDPMConfig("linear", 10, 0.05, 0.5))
    x0 = x0_batch(8)
    seen = {}

    def oracle(x_t, sqrt_gamma):
        seen["sg"] = sqrt_gamma.clone()
        g = sqrt_gamma.double().view(-1, 1, 1, 1)
        return ((x_t.double() - g * x0.double()) / torch.sqrt(1 - g**2)).float()

    def term(x0_hat, gamma):
        seen["x0_hat"], seen["gamma"] = x0_hat, gamma
        return torch.tensor(2.5)

    plain = sr3_eps_loss(oracle, x0, sched, generator=gen(0))
    total = sr3_eps_loss(oracle, x0, sched, generator=gen(0), x0_loss=term)
    torch.testing.assert_close(seen["x0_hat"], x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(seen["gamma"], seen["sg"] ** 2)
    assert total.item() == pytest.approx(plain.item() + 2.5, abs=1e-6)


@pytest.mark.parametrize("schedule", [COSINE, DDPMSchedule(DDPMConfig("linear", 50))], ids=["cosine", "linear"])
def test_sqrt_gamma_lies_in_a_schedule_interval(schedule):
    sg = capture_sqrt_gamma(schedule, per_batch_t=False)
    assert sg.shape == (64,)
    assert (sg > 0).all() and (sg <= 1).all()
    assert all(intervals_containing(schedule, v) for v in sg.tolist())


def test_per_batch_t_shares_one_interval():
    sg = capture_sqrt_gamma(COSINE, per_batch_t=True)
    common = set.intersection(*(intervals_containing(COSINE, v) for v in sg.tolist()))
    assert len(common) >= 1
    assert len(set(sg.tolist())) > 1  # one interval, but gamma itself still varies


def test_per_sample_t_differs_within_a_batch():
    sg = capture_sqrt_gamma(COSINE, per_batch_t=False)
    common = set.intersection(*(intervals_containing(COSINE, v) for v in sg.tolist()))
    assert not common
    hit = {min(intervals_containing(COSINE, v)) for v in sg.tolist()}
    assert len(hit) > 20  # 64 draws over 50 timesteps


def test_sqrt_gamma_covers_the_whole_range():
    sg = torch.cat([capture_sqrt_gamma(COSINE, per_batch_t=False, seed=s) for s in range(8)])
    assert sg.min() < 0.05 and sg.max() > 0.99


def test_same_seed_same_loss():
    x0 = x0_batch()
    a, b, c = (sr3_eps_loss(zeros_fn, x0, COSINE, generator=gen(s)) for s in (3, 3, 4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --- denoising score matching (score SDE models) ---------------------------------------------


@pytest.mark.parametrize("name", ["ve", "vp", "subvp"])
def test_dsm_loss_is_zero_for_the_exact_score_and_the_weighted_mean_square_otherwise(name):
    from facesr.diffusion.losses import dsm_loss
    from facesr.diffusion.sde import make_sde

    sde = make_sde(name)
    x0 = x0_batch(4).double()
    t = torch.tensor([0.05, 0.3, 0.6, 0.95], dtype=torch.float64)
    z = torch.randn(x0.shape, generator=gen(2), dtype=torch.float64)
    a, std = sde.mean_coef(t).view(-1, 1, 1, 1), sde.std(t).view(-1, 1, 1, 1)

    def exact(x, tt):  # the score of x_t | x0, the target of denoising score matching
        assert torch.equal(tt, t)
        return -(x - a * x0) / std**2

    assert float(dsm_loss(exact, sde, x0, t, z)) < 1e-20
    zero = lambda x, tt: torch.zeros_like(x)  # noqa: E731  (s = 0: the loss is |z|^2 per sample)
    per_sample = (z**2).flatten(1)
    torch.testing.assert_close(dsm_loss(zero, sde, x0, t, z), per_sample.mean(1).mean())
    torch.testing.assert_close(dsm_loss(zero, sde, x0, t, z, "sum"), (per_sample.sum(1) / 2).mean())
    weight = (sde.std(t) ** 2 + 0.25) / 0.25
    torch.testing.assert_close(dsm_loss(zero, sde, x0, t, z, edm_sigma_data=0.5), (per_sample.mean(1) * weight).mean())
