"""Predictor-corrector and probability-flow ODE samplers for score SDEs (Song et al., ICLR 2021, §4; dossier §1.6).

Plain functions of a score function ``score_fn(x, t)`` in the SDE's own coordinates; a facesr
denoiser D(x_ve, sigma) becomes one with ``sde.score_from_denoiser``. All noise comes from
``randn_like(x, generator)``, so ``generator`` may be one torch.Generator or a list per sample.

Predictors: ``predictor(rsde, x, t, generator) -> (x, x_mean)``; correctors:
``corrector(sde, score_fn, x, t, snr, n_steps, generator, batch_norms) -> (x, x_mean)``.
``x_mean`` is the update without its final noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from facesr.diffusion.noise import randn_like
from facesr.diffusion.samplers import sampler
from facesr.diffusion.sde import SDE, ReverseSDE, ScoreFn, bcast, score_from_denoiser
from facesr.errors import FacesrError


# --- predictors -------------------------------------------------------------------------------
def reverse_diffusion(rsde: ReverseSDE, x, t, generator=None):
    """Reverse-diffusion predictor (Score-SDE eq. 46): x_mean = x - f + G^2 s, x = x_mean + G z.

    Uses the SDE's N-step ``discretize``; with the probability flow, x_mean = x - f + G^2 s / 2 and no noise.
    """
    rev_f, rev_G = rsde.discretize(x, t)
    x_mean = x - rev_f
    if rsde.probability_flow:
        return x_mean, x_mean
    return x_mean + bcast(rev_G, x) * randn_like(x, generator), x_mean


def euler_maruyama(rsde: ReverseSDE, x, t, generator=None):
    """Euler-Maruyama on the reverse SDE with dt = -1/N: x_mean = x + drift dt, x = x_mean + g sqrt(|dt|) z."""
    dt = -1.0 / rsde.N
    drift, g = rsde.sde(x, t)
    x_mean = x + drift * dt
    if rsde.probability_flow:
        return x_mean, x_mean
    return x_mean + bcast(g, x) * math.sqrt(-dt) * randn_like(x, generator), x_mean


def no_predictor(rsde, x, t, generator=None):
    return x, x


PREDICTORS = {"reverse_diffusion": reverse_diffusion, "euler_maruyama": euler_maruyama, "none": no_predictor}


# --- correctors -------------------------------------------------------------------------------
def langevin(sde: SDE, score_fn: ScoreFn, x, t, snr: float, n_steps: int = 1, generator=None,
             batch_norms: bool = False):
    """Langevin corrector (Score-SDE Alg. 4): eps_L = 2 alpha (snr ||z|| / ||s||)^2,
    x_mean = x + eps_L s, x = x_mean + sqrt(2 eps_L) z.

    Norms are per-sample L2 norms, so each sample's update ignores the rest of the batch;
    ``batch_norms=True`` uses their batch means instead (reference parity, dossier §1.10.6).
    alpha = 1 for VE, 1 - beta_k for VP (reference), and 1 for subVP (the reference crashes there:
    subVP has no discrete chain; 1 is the value the other SDEs tend to as N grows).
    """
    alpha = sde.langevin_alpha(t)
    x_mean = x
    for _ in range(n_steps):
        s = score_fn(x, t)
        z = randn_like(x, generator)
        s_norm = s.reshape(s.shape[0], -1).norm(dim=-1)
        z_norm = z.reshape(z.shape[0], -1).norm(dim=-1)
        if batch_norms:
            s_norm, z_norm = s_norm.mean(), z_norm.mean()
        step = bcast(2 * alpha * (snr * z_norm / s_norm) ** 2, x)
        x_mean = x + step * s
        x = x_mean + torch.sqrt(2 * step) * z
    return x, x_mean


def no_corrector(sde, score_fn, x, t, snr=None, n_steps=None, generator=None, batch_norms=False):
    return x, x


CORRECTORS = {"langevin": langevin, "none": no_corrector}


class _Counted:
    """A score function that counts its evaluations."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn, self.calls = score_fn, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.score_fn(x, t)


def _lookup(table: dict, name, kind: str):
    name = "none" if name is None else name
    if name not in table:
        raise FacesrError(f"unknown {kind} {name!r}; choose one of {sorted(table)}")
    return table[name]


def _start(sde: SDE, x, shape, generator):
    if x is not None:
        return x
    if shape is None:
        raise FacesrError("give either x (the starting point) or shape (to sample the prior)")
    return sde.prior_sampling(shape, generator)


def pc_time_grid(sde: SDE, steps: int | None = None, t_start: float | None = None) -> tuple[SDE, list[float]]:
    """(SDE discretised to match, decreasing times) for about ``steps`` PC steps from ``t_start`` to eps.

    The predictors take steps of 1/N, so a warm start from t_start < 1 uses the grid
    linspace(1, eps, N_full) with N_full = steps (1 - eps) / (t_start - eps), from its first time
    <= t_start. A t_start already on that grid (as this function returns it) is kept exactly.
    """
    n = steps or sde.N
    t_start = sde.T if t_start is None else float(t_start)
    if not sde.eps < t_start <= sde.T:
        raise FacesrError(f"start time {t_start} outside ({sde.eps}, {sde.T}]")
    if t_start < sde.T and n < 2:
        raise FacesrError("the pc sampler needs at least 2 steps for a warm start (strength < 1): "
                          "its only time with 1 step would be the end time")
    n_full = n if t_start >= sde.T else max(n, round(n * (sde.T - sde.eps) / (t_start - sde.eps)))
    while True:  # rounding can leave fewer than n grid times at or below t_start
        ts = [t for t in torch.linspace(sde.T, sde.eps, n_full, dtype=torch.float64).tolist() if t <= t_start + 1e-12]
        if len(ts) >= n:
            break
        n_full += 1
    return (sde.with_N(n_full) if n_full != sde.N else sde), ts


@torch.no_grad()
def pc_sample(score_fn: ScoreFn, sde: SDE, x: torch.Tensor | None = None, predictor: str = "reverse_diffusion",
              corrector: str = "langevin", snr: float = 0.075, n_steps: int = 1, probability_flow: bool = False,
              denoise: bool = True, steps: int | None = None, generator=None, batch_norms: bool = False,
              shape=None, t_start: float | None = None) -> tuple[torch.Tensor, int]:
    """Predictor-corrector sampler (Score-SDE Alg. 1; dossier §1.6). Returns (sample, score evaluations).

    - ``x``: the prior sample x(1); None draws ``shape`` from ``sde.prior_sampling``.
    - Time grid linspace(1, sde.eps, steps), steps = sde.N by default; other values re-discretise the
      SDE with N = steps, so the predictor's step matches the grid.
    - At every t the CORRECTOR runs FIRST, THEN THE PREDICTOR (the reference's order): the corrector
      refines x towards p_t at the time the predictor is about to leave.
    - ``denoise``: return the last predictor's x_mean (its final noise is not added), else x.
    - ``t_start`` < 1 (warm start): ``x`` is a sample of p_{t_start} (e.g. a noised estimate) and the
      grid is ``pc_time_grid(sde, steps, t_start)``: noise the estimate to its first time.
    - Cost: steps * (n_steps + 1) evaluations with a corrector, steps without.
    """
    predict, correct = _lookup(PREDICTORS, predictor, "predictor"), _lookup(CORRECTORS, corrector, "corrector")
    sde, ts = pc_time_grid(sde, steps, t_start)
    score = _Counted(score_fn)
    rsde = sde.reverse(score, probability_flow)
    x = _start(sde, x, shape, generator)
    x_mean = x
    for t in ts:
        vec_t = torch.full((x.shape[0],), t, dtype=torch.float64, device=x.device)
        x, x_mean = correct(sde, score, x, vec_t, snr, n_steps, generator, batch_norms)
        x, x_mean = predict(rsde, x, vec_t, generator)
    return (x_mean if denoise else x), score.calls


@torch.no_grad()
def ode_sample(score_fn: ScoreFn, sde: SDE, x: torch.Tensor | None = None, method: str = "heun",
               steps: int | None = None, rtol: float = 1e-5, atol: float = 1e-5, eps: float | None = None,
               denoise: bool = True, generator=None, shape=None, t_start: float | None = None) -> tuple[torch.Tensor, int]:
    """Integrate the probability-flow ODE dx/dt = f(x, t) - g(t)^2 s(x, t) / 2 (Score-SDE eq. 13) from t = 1
    to ``eps`` (default sde.eps). Returns (sample, score evaluations).

    - "euler" / "heun": ``steps`` (default sde.N) uniform steps in t; 1 or 2 evaluations per step.
    - "rk45": adaptive Dormand-Prince via scipy ``solve_ivp`` on the flattened float64 state, with
      ``rtol``/``atol`` (the reference's black-box solver); its evaluations are counted.
    - ``denoise``: finish with one Tweedie step x0 = (x + std^2 s(x, eps)) / mean_coef, the posterior
      mean E[x0 | x(eps)] (the reference instead takes one reverse-diffusion predictor step).
    ``t_start`` < 1 starts from a sample of p_{t_start}.
    """
    eps = sde.eps if eps is None else float(eps)
    t_start = sde.T if t_start is None else float(t_start)
    score = _Counted(score_fn)
    rsde = sde.reverse(score, probability_flow=True)
    x = _start(sde, x, shape, generator)

    def drift(x, t: float):
        return rsde.sde(x, torch.full((x.shape[0],), t, dtype=torch.float64, device=x.device))[0]

    if method in ("euler", "heun"):
        ts = torch.linspace(t_start, eps, (steps or sde.N) + 1, dtype=torch.float64).tolist()
        for i in range(len(ts) - 1):
            t, t_next = ts[i], ts[i + 1]
            h = t_next - t
            d = drift(x, t)
            if method == "euler":
                x = x + h * d
            else:
                x = x + h * (d + drift(x + h * d, t_next)) / 2
    elif method == "rk45":
        from scipy.integrate import solve_ivp

        shape, dtype, device = x.shape, x.dtype, x.device

        def fun(t, y):
            xt = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
            return drift(xt, float(t)).double().cpu().numpy().reshape(-1)

        sol = solve_ivp(fun, (t_start, eps), x.double().cpu().numpy().reshape(-1), method="RK45", rtol=rtol, atol=atol)
        if sol.status < 0:
            raise FacesrError(f"probability-flow ODE solver failed: {sol.message}")
        x = torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).reshape(shape).to(device=device, dtype=dtype)
    else:
        raise FacesrError(f"unknown ODE method {method!r}; choose 'euler', 'heun' or 'rk45'")

    if denoise:
        t = torch.full((x.shape[0],), eps, dtype=torch.float64, device=x.device)
        a, s = bcast(sde.mean_coef(t), x), bcast(sde.std(t), x)
        x = (x + s**2 * score(x, t)) / a
    return x, score.calls


# --- as facesr samplers of a model's DiffusionProcess (facesr.diffusion.sampling) --------------
def _sde_start(process, noise, strength, estimate, t0_of=None):
    """(the model's SDE, its native score or Tweedie's from the denoiser, the start x, the start time or None)."""
    sde = process.sde
    if sde is None:
        raise FacesrError("this sampler needs an SDE view of the model (SR3: linear schedule only)")
    score = process.score or score_from_denoiser(process.denoiser, sde)
    if strength >= 1:
        return sde, score, noise * sde.prior_std, None
    t0 = strength * sde.T if t0_of is None else t0_of(sde, strength * sde.T)
    t = torch.full((noise.shape[0],), t0, dtype=torch.float64)
    return sde, score, bcast(sde.mean_coef(t), noise) * estimate + bcast(sde.std(t), noise) * noise, t0


def _pc_evaluations(steps: int, o) -> int:
    corrector_steps = o.corrector_steps if o.corrector != "none" else 0
    return steps * (1 + corrector_steps)


@sampler("pc", grid="sde", options=("predictor", "corrector", "snr", "corrector_steps", "probability_flow"),
         evaluations=_pc_evaluations)
def sample_pc(process, noise, steps, strength=1.0, estimate=None, generator=None, predictor="reverse_diffusion",
              corrector="langevin", snr=0.075, corrector_steps=1, probability_flow=False):
    """Predictor-corrector (Score-SDE): corrector then predictor at every time; a warm start noises the
    estimate exactly to the first grid time."""
    sde, score, x, t0 = _sde_start(process, noise, strength, estimate,
                                   lambda sde, t: pc_time_grid(sde, steps, t)[1][0])
    x, _ = pc_sample(score, sde, x, predictor=predictor, corrector=corrector, snr=snr, n_steps=corrector_steps,
                     probability_flow=probability_flow, steps=steps, generator=generator, t_start=t0)
    t_end = torch.full((x.shape[0],), sde.eps, dtype=torch.float64)
    return x / bcast(sde.mean_coef(t_end), x)  # the last x_mean is ~ a(eps) x0


@sampler("ode", grid="sde", options=("ode_method",),
         evaluations=lambda steps, o: 2 * steps if o.ode_method == "heun" else steps)
def sample_ode(process, noise, steps, strength=1.0, estimate=None, generator=None, ode_method="heun"):
    """The probability-flow ODE (Euler, Heun, or adaptive RK45), finished with one Tweedie step."""
    sde, score, x, t0 = _sde_start(process, noise, strength, estimate)
    return ode_sample(score, sde, x, method=ode_method, steps=steps, t_start=t0)[0]
