"""Continuous-time score SDEs on t in [0, 1] (Song et al., ICLR 2021, "Score-SDE"; seeds dossier §1.4).

Conventions:
- ``t`` is a float or a tensor, usually of shape (B,) (one time per sample). Coefficients
  (``mean_coef``, ``std``, ``sigma``, the diffusion ``g``) have the shape of ``t`` and are cast
  to ``x.dtype`` only where they meet ``x``.
- The marginal is p_t(x | x0) = N(mean_coef(t) x0, std(t)^2 I). Dividing by mean_coef gives
  facesr's variance-exploding coordinates x_ve = x0 + sigma(t) noise with sigma = std / mean_coef,
  which is how score models plug into the one denoiser interface D(x_ve, sigma) -> x0
  (``score_from_denoiser`` / ``denoiser_from_score``).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from facesr.diffusion.noise import randn_like
from facesr.errors import FacesrError

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _as_t(t) -> torch.Tensor:
    return t if torch.is_tensor(t) else torch.as_tensor(t, dtype=torch.float64)


def bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample coefficient (shape (B,) or scalar) cast to x.dtype, shaped to broadcast against x."""
    return torch.as_tensor(v).to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


class SDE:
    """Forward SDE dx = f(x, t) dt + g(t) dw on [0, T = 1], discretised with ``N`` steps.

    Subclasses define ``sde``, ``mean_coef``, ``std``, ``prior_std`` and ``t_of_sigma``.
    ``eps`` is the time at which sampling stops (the score is singular or untrained near 0).
    """

    T = 1.0

    def __init__(self, N: int, eps: float, **params):
        self.N, self.eps = int(N), float(eps)
        self._params = {"N": self.N, "eps": self.eps, **params}

    def with_N(self, N: int) -> "SDE":
        """The same SDE discretised with ``N`` steps (what ``pc_sample(steps=...)`` uses)."""
        return type(self)(**{**self._params, "N": N})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self._params.items())})"

    # --- continuous-time definition -------------------------------------------------------------
    def sde(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(drift f(x, t) shaped like x, diffusion g(t) shaped like t)."""
        raise NotImplementedError

    def mean_coef(self, t) -> torch.Tensor:
        raise NotImplementedError

    def std(self, t) -> torch.Tensor:
        raise NotImplementedError

    def marginal_prob(self, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of the perturbation kernel p_t(x | x0) (std shaped like t)."""
        return bcast(self.mean_coef(t), x0) * x0, self.std(t)

    @property
    def prior_std(self) -> float:
        raise NotImplementedError

    def prior_sampling(self, shape, generator=None, dtype=torch.float32, device=None) -> torch.Tensor:
        """x ~ N(0, prior_std^2 I); ``generator`` as in ``randn_like`` (one, or a list per sample)."""
        return randn_like(torch.empty(shape, dtype=dtype, device=device), generator) * self.prior_std

    def sigma(self, t) -> torch.Tensor:
        """Noise level in VE coordinates: std(t) / mean_coef(t)."""
        return self.std(t) / self.mean_coef(t)

    def t_of_sigma(self, sigma) -> torch.Tensor:
        """Inverse of ``sigma(t)``."""
        raise FacesrError(f"{type(self).__name__} has no closed-form t(sigma)")

    # --- N-step discretisation (reverse-diffusion predictor, Score-SDE §4.2 / App. E) ------------
    def discretize(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """x_{i+1} = x_i + f + G z. Default: Euler with dt = 1/N, f = drift/N, G = g/sqrt(N)."""
        drift, g = self.sde(x, t)
        return drift / self.N, g / math.sqrt(self.N)

    def _index(self, t) -> torch.Tensor:
        """Index k = floor(t (N - 1)) into the discrete grid (reference behaviour, dossier §1.6)."""
        return (_as_t(t) * (self.N - 1) / self.T).long()

    def langevin_alpha(self, t) -> torch.Tensor:
        """The alpha of the Langevin step size (dossier §1.6): 1 unless the SDE defines a discrete one."""
        return torch.ones_like(_as_t(t), dtype=torch.float64)

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
        return ReverseSDE(self, score_fn, probability_flow)


class ReverseSDE:
    """Reverse-time SDE dx = [f - g^2 s] dt + g dw_bar (Score-SDE eq. 6), or, with ``probability_flow``,
    the ODE dx = [f - g^2 s / 2] dt (eq. 13) with zero diffusion.

    Both ``sde`` and ``discretize`` honour ``probability_flow`` and return a zero diffusion tensor of
    the right shape, so every predictor works with it (the reference returned a scalar 0 from
    ``sde`` and its Euler-Maruyama predictor crashed indexing it, dossier §1.6).
    """

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False):
        self.forward, self.score_fn, self.probability_flow = sde, score_fn, probability_flow

    @property
    def N(self) -> int:
        return self.forward.N

    def _reverse(self, x, t, f, g):
        weight = 0.5 if self.probability_flow else 1.0
        f = f - bcast(g**2, x) * self.score_fn(x, t) * weight
        return f, (torch.zeros_like(g) if self.probability_flow else g)

    def sde(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        return self._reverse(x, t, *self.forward.sde(x, t))

    def discretize(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Reverse discretisation: x_{i-1} = x_i - rev_f + rev_G z with rev_f = f - G^2 s (x 1/2 for the ODE)."""
        return self._reverse(x, t, *self.forward.discretize(x, t))


class VESDE(SDE):
    """Variance exploding (SMLD): sigma(t) = sigma_min (sigma_max / sigma_min)^t,
    dx = sigma(t) sqrt(2 ln(sigma_max / sigma_min)) dw, prior N(0, sigma_max^2).

    Defaults are sr-sde's (dossier §1.4); FASR uses sigma_min = 0.001.
    The kernel N(x0, sigma(t)^2) has std sigma_min (not 0) at t = 0, as in Score-SDE.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 348.0, N: int = 2000, eps: float = 1e-5):
        super().__init__(N, eps, sigma_min=sigma_min, sigma_max=sigma_max)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)
        self.discrete_sigmas = torch.exp(torch.linspace(math.log(sigma_min), math.log(sigma_max), self.N,
                                                        dtype=torch.float64))

    def sigma(self, t) -> torch.Tensor:
        return self.sigma_min * torch.exp(_as_t(t) * self.log_ratio)

    def mean_coef(self, t) -> torch.Tensor:
        return torch.ones_like(_as_t(t))

    def std(self, t) -> torch.Tensor:
        return self.sigma(t)

    def t_of_sigma(self, sigma) -> torch.Tensor:
        return torch.log(_as_t(sigma) / self.sigma_min) / self.log_ratio

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def sde(self, x, t):
        return torch.zeros_like(x), self.sigma(t) * math.sqrt(2 * self.log_ratio)

    def discretize(self, x, t):
        """SMLD discretisation: f = 0, G = sqrt(sigma_k^2 - sigma_{k-1}^2), k = floor(t (N-1)), sigma_{-1} = 0.

        The floor-indexed grid is the reference behaviour (kept for parity, dossier §1.6): the score is
        evaluated at the continuous sigma(t) while G comes from the discrete grid.
        """
        k = self._index(t)
        sig = self.discrete_sigmas.to(k.device)
        prev = torch.where(k == 0, torch.zeros_like(sig[k]), sig[(k - 1).clamp(min=0)])
        return torch.zeros_like(x), torch.sqrt(sig[k] ** 2 - prev**2)


class _BetaSDE(SDE):
    """Shared by VP and subVP: beta(t) = beta_min + t (beta_max - beta_min), drift -beta(t) x / 2, prior N(0, I)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 2000, eps: float = 1e-3):
        super().__init__(N, eps, beta_min=beta_min, beta_max=beta_max)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t) -> torch.Tensor:
        return self.beta_min + _as_t(t) * (self.beta_max - self.beta_min)

    def log_mean_coef(self, t) -> torch.Tensor:
        """m(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2 = -1/2 integral_0^t beta."""
        t = _as_t(t)
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def mean_coef(self, t) -> torch.Tensor:
        return torch.exp(self.log_mean_coef(t))

    @property
    def prior_std(self) -> float:
        return 1.0

    def _t_of_log_mean_coef(self, m: torch.Tensor) -> torch.Tensor:
        """Solve A t^2 + B t = -m (A = (beta_max - beta_min)/4, B = beta_min/2) for t >= 0, in the
        cancellation-free form t = 2c / (B + sqrt(B^2 + 4 A c)) with c = -m."""
        a, b, c = (self.beta_max - self.beta_min) / 4, self.beta_min / 2, -m
        return 2 * c / (b + torch.sqrt(b**2 + 4 * a * c))


class VPSDE(_BetaSDE):
    """Variance preserving (DDPM): dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw, std = sqrt(1 - e^{2m(t)}) (§1.4)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 2000, eps: float = 1e-3):
        super().__init__(beta_min, beta_max, N, eps)
        self.discrete_betas = torch.linspace(beta_min / N, beta_max / N, N, dtype=torch.float64)
        self.alphas = 1 - self.discrete_betas

    def _discrete_index(self, t) -> torch.Tensor:
        """Index into the discrete chain, which exists only while beta_k = beta(t)/N < 1."""
        if self.beta_max / self.N >= 1:
            raise FacesrError(f"the discrete VP chain needs N > beta_max (got N={self.N}, beta_max={self.beta_max}); "
                              "use more steps, or the euler_maruyama predictor / the ode sampler")
        return self._index(t)

    def std(self, t) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(2 * self.log_mean_coef(t)))

    def t_of_sigma(self, sigma) -> torch.Tensor:
        # sigma^2 = (1 - a^2) / a^2  =>  m = log a = -log(1 + sigma^2) / 2
        return self._t_of_log_mean_coef(-0.5 * torch.log1p(_as_t(sigma) ** 2))

    def sde(self, x, t):
        beta = self.beta(t)
        return -0.5 * bcast(beta, x) * x, torch.sqrt(beta)

    def discretize(self, x, t):
        """DDPM discretisation: f = (sqrt(alpha_k) - 1) x, G = sqrt(beta_k), k = floor(t (N-1))."""
        k = self._discrete_index(t)
        beta = self.discrete_betas.to(k.device)[k]
        return bcast(torch.sqrt(1 - beta) - 1, x) * x, torch.sqrt(beta)

    def langevin_alpha(self, t) -> torch.Tensor:
        """alpha_k = 1 - beta_k of the discrete chain (reference behaviour); with too few steps for that
        chain (N <= beta_max) its continuous analogue exp(-beta(t) / N), which stays positive."""
        if self.beta_max / self.N >= 1:
            return torch.exp(-self.beta(_as_t(t)) / self.N)
        k = self._discrete_index(t)
        return self.alphas.to(k.device)[k]


class SubVPSDE(_BetaSDE):
    """sub-VP (Score-SDE eq. 29): drift as VP, g(t)^2 = beta(t) (1 - exp(-2 beta_min t - (beta_max - beta_min) t^2)).

    Its marginal std is 1 - e^{2m(t)} with NO square root (dossier §1.4; the variance solves
    dv/dt = -beta v + g^2 with v(0) = 0). Discretised by Euler (base class).
    """

    def std(self, t) -> torch.Tensor:
        return -torch.expm1(2 * self.log_mean_coef(t))

    def t_of_sigma(self, sigma) -> torch.Tensor:
        # sigma = (1 - a^2) / a  =>  a^2 + sigma a - 1 = 0  =>  a = 2 / (sigma + sqrt(sigma^2 + 4))
        sigma = _as_t(sigma)
        return self._t_of_log_mean_coef(torch.log(2 / (sigma + torch.sqrt(sigma**2 + 4))))

    def sde(self, x, t):
        beta = self.beta(t)
        discount = -torch.expm1(4 * self.log_mean_coef(t))  # 4 m(t) = -2 beta_min t - (beta_max - beta_min) t^2
        return -0.5 * bcast(beta, x) * x, torch.sqrt(beta * discount)


SDES = {"ve": VESDE, "vp": VPSDE, "subvp": SubVPSDE}


def make_sde(name: str, **overrides) -> SDE:
    """An SDE with the sr-sde defaults (dossier §1.4), optionally overridden:

    - "ve":    sigma_min 0.01, sigma_max 348, N 2000, eps 1e-5 (FASR: ``make_sde("ve", sigma_min=0.001)``)
    - "vp":    beta_min 0.1, beta_max 20, N 2000, eps 1e-3
    - "subvp": beta_min 0.1, beta_max 20, N 2000, eps 1e-3
    """
    if name not in SDES:
        raise FacesrError(f"unknown SDE {name!r}; choose one of {sorted(SDES)}")
    try:
        return SDES[name](**overrides)
    except TypeError as e:
        raise FacesrError(f"bad option for SDE {name!r}: {e}") from None


def score_from_denoiser(denoiser, sde: SDE) -> ScoreFn:
    """score_fn(x, t) in the SDE's coordinates from a facesr denoiser D(x_ve, sigma) -> x0.

    With a = mean_coef(t), s = std(t), sigma = s / a: x_ve = x / a and
    score = (a D(x / a, sigma) - x) / s^2 (Tweedie: E[x0 | x] = (x + s^2 score) / a).
    """

    def score_fn(x: torch.Tensor, t) -> torch.Tensor:
        t = _as_t(t).to(torch.float64).reshape(-1).expand(x.shape[0])
        a, s = sde.mean_coef(t), sde.std(t)
        x0 = denoiser(x / bcast(a, x), s / a)
        return ((bcast(a, x) * x0 - x) / bcast(s**2, x)).to(x.dtype)

    return score_fn


def denoiser_from_score(score_fn: ScoreFn, sde: SDE):
    """A facesr denoiser D(x_ve, sigma) from a score model, for sigma in [sigma(0), sigma(1)].

    t = t_of_sigma(sigma), x = a x_ve, x0 = (x + s^2 score(x, t)) / a. A sigma outside the SDE's
    range raises FacesrError rather than evaluating the model at a time it never saw.
    """

    def denoiser(x_ve: torch.Tensor, sigma) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x_ve.device).reshape(-1).expand(x_ve.shape[0])
        t = sde.t_of_sigma(sigma)
        if bool(((t < -1e-6) | (t > sde.T + 1e-6) | t.isnan()).any()):
            raise FacesrError(f"sigma {sigma.tolist()} is outside the noise range of {sde!r}")
        t = t.clamp(0.0, sde.T)
        a, s = bcast(sde.mean_coef(t), x_ve), bcast(sde.std(t), x_ve)
        x = a * x_ve
        return (x + s**2 * score_fn(x, t)) / a

    return denoiser
