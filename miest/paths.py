"""Gaussian noising paths ``x_t = alpha(t) * x + sigma(t) * eps`` and parametrisations.

Every diffusion or flow model in the project is one of these paths plus a network
that predicts one of these targets (converted to ``eps`` for ``miest.integrate``):

- ``"eps"``: the noise ``eps``;
- ``"v"``: ``v = alpha * eps - sigma * x`` (v-prediction);
- ``"velocity"``: the path's time derivative ``u = alpha' * x + sigma' * eps``
  (rectified flow: ``u = x1 - x0``);
- ``"preconditioned"``: ``F = v / sigma``, so that
  ``eps = sigma (x_t + alpha F) / (alpha^2 + sigma^2)``: the output enters the noise
  prediction scaled by ``alpha sigma / (alpha^2 + sigma^2)``, which vanishes at both ends
  of the log-SNR range. A network's error there (where the true conditional-unconditional
  gap vanishes too) then adds nothing to the MI; with eps, v or velocity outputs it is
  integrated as spurious MI on image-like data (results/forms/).

``to_eps`` and ``from_eps`` convert between them; they are the only place the
conversions are written. Times ``t`` are tensors of shape ``(n,)``; data tensors
have shape ``(n, ...)``. The log signal-to-noise ratio is
``lam = log(alpha^2 / sigma^2)``. The conversions are tabulated in docs/maths.md.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor

Parametrisation = Literal["eps", "v", "velocity", "preconditioned"]
PARAMETRISATIONS: tuple[str, ...] = ("eps", "v", "velocity", "preconditioned")


def expand_like(t: Tensor, x: Tensor) -> Tensor:
    """Reshape per-row values ``(n,)`` to broadcast against ``x`` of shape ``(n, ...)``."""
    return t.reshape(t.shape[0], *([1] * (x.dim() - 1))).to(x.dtype)


class GaussianPath(ABC):
    """A path on ``t`` in ``[0, 1]``; ``data_end`` is the ``t`` at which ``x_t = x``."""

    name: str
    data_end: float

    @abstractmethod
    def alpha(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def sigma(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def alpha_dot(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def sigma_dot(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        """Inverse of ``log_snr``."""

    def log_snr(self, t: Tensor) -> Tensor:
        return 2.0 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def dlog_snr_dt(self, t: Tensor) -> Tensor:
        return 2.0 * (self.alpha_dot(t) / self.alpha(t) - self.sigma_dot(t) / self.sigma(t))

    def noisy(self, x: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """``x_t`` for data ``x`` (n, ...), noise ``eps`` (n, ...) and times ``t`` (n,)."""
        return expand_like(self.alpha(t), x) * x + expand_like(self.sigma(t), x) * eps

    def truncated_range(self, t_eps: float) -> tuple[float, float]:
        """``[t_lo, t_hi]`` that keeps ``t_eps`` away from both ends of ``[0, 1]``."""
        return t_eps, 1.0 - t_eps

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VPPath(GaussianPath):
    """Variance-preserving SDE path (MINDE): ``beta(t) = beta_min + t (beta_max - beta_min)``.

    ``alpha = exp(-B/2)``, ``sigma = sqrt(1 - exp(-B))`` with ``B(t) = int_0^t beta``;
    data at ``t = 0``, ``lam = -log(expm1(B))``.
    """

    name = "vp"
    data_end = 0.0

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def big_b(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * self.big_b(t))

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sqrt(-torch.expm1(-self.big_b(t)))

    def alpha_dot(self, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t) * self.alpha(t)

    def sigma_dot(self, t: Tensor) -> Tensor:
        return 0.5 * self.beta(t) * torch.exp(-self.big_b(t)) / self.sigma(t)

    def log_snr(self, t: Tensor) -> Tensor:
        return -torch.log(torch.expm1(self.big_b(t)))

    def dlog_snr_dt(self, t: Tensor) -> Tensor:
        return -self.beta(t) / -torch.expm1(-self.big_b(t))

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        big_b = torch.nn.functional.softplus(-lam)
        slope = self.beta_max - self.beta_min
        return (-self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * slope * big_b)) / slope

    def truncated_range(self, t_eps: float) -> tuple[float, float]:
        return t_eps, 1.0  # the noise end t = 1 has a finite log-SNR

    def __repr__(self) -> str:
        return f"VPPath(beta_min={self.beta_min}, beta_max={self.beta_max})"


class LinearFlowPath(GaussianPath):
    """Rectified-flow path of the RFMI paper: ``x_t = t * x1 + (1 - t) * x0``.

    Noise ``x0 = eps`` at ``t = 0``, data ``x1`` at ``t = 1``; ``lam = 2 logit(t)``.
    (diffusers' SD3 convention is ``sigma = 1 - t`` with target ``-u``; see ``t2i``.)
    """

    name = "rf"
    data_end = 1.0

    def alpha(self, t: Tensor) -> Tensor:
        return t

    def sigma(self, t: Tensor) -> Tensor:
        return 1.0 - t

    def alpha_dot(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def sigma_dot(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def log_snr(self, t: Tensor) -> Tensor:
        return 2.0 * torch.logit(t)

    def dlog_snr_dt(self, t: Tensor) -> Tensor:
        return 2.0 / (t * (1.0 - t))

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        return torch.sigmoid(0.5 * lam)


class DiscreteSchedulePath(GaussianPath):
    """A discrete DDPM schedule (``alphas_cumprod``, T entries) as a path on ``t`` in [0, 1].

    Timestep ``tau = t (T - 1)``; the log-SNR is linear in ``tau`` between the table's
    entries ``lam_k = log(abar_k / (1 - abar_k))``, ``alpha = sqrt(sigmoid(lam))`` and
    ``sigma = sqrt(sigmoid(-lam))``. Data at ``t = 0``. Integrating ``dlam`` over it
    reproduces MI-TUNE's ``kappa_t = beta_t T / (2 alpha_t (1 - abar_t))`` weights up to
    discretisation.
    """

    name = "ddpm"
    data_end = 0.0

    def __init__(self, alphas_cumprod):
        abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        if abar.dim() != 1 or len(abar) < 2 or not ((abar > 0) & (abar < 1)).all():
            raise ValueError("alphas_cumprod must be a 1-D table of values in (0, 1)")
        self.table = torch.log(abar) - torch.log1p(-abar)
        if not (self.table.diff() < 0).all():
            raise ValueError("alphas_cumprod must decrease with the timestep")
        self.steps = len(abar)

    def _segment(self, t: Tensor) -> tuple[Tensor, Tensor]:
        tau = t.to(torch.float64).clamp(0, 1) * (self.steps - 1)
        k = tau.floor().long().clamp(max=self.steps - 2)
        return k, tau - k

    def log_snr(self, t: Tensor) -> Tensor:
        k, frac = self._segment(t)
        table = self.table.to(t.device)
        return (table[k] + frac * (table[k + 1] - table[k])).to(t.dtype)

    def dlog_snr_dt(self, t: Tensor) -> Tensor:
        k, _ = self._segment(t)
        table = self.table.to(t.device)
        return ((table[k + 1] - table[k]) * (self.steps - 1)).to(t.dtype)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.sigmoid(self.log_snr(t)).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        return torch.sigmoid(-self.log_snr(t)).sqrt()

    def alpha_dot(self, t: Tensor) -> Tensor:
        return 0.5 * self.alpha(t) * self.sigma(t) ** 2 * self.dlog_snr_dt(t)

    def sigma_dot(self, t: Tensor) -> Tensor:
        return -0.5 * self.sigma(t) * self.alpha(t) ** 2 * self.dlog_snr_dt(t)

    def t_of_log_snr(self, lam: Tensor) -> Tensor:
        table = self.table.flip(0).to(lam.device)  # increasing
        value = lam.to(torch.float64).clamp(table[0], table[-1])
        j = torch.searchsorted(table, value).clamp(1, self.steps - 1)
        frac = (value - table[j - 1]) / (table[j] - table[j - 1])
        tau = (self.steps - j) - frac  # index in the original (decreasing) order
        return (tau / (self.steps - 1)).to(lam.dtype)

    def truncated_range(self, t_eps: float) -> tuple[float, float]:
        return t_eps, 1.0  # the noise end has a finite log-SNR

    def __repr__(self) -> str:
        return f"DiscreteSchedulePath(steps={self.steps})"


PATHS: dict[str, type[GaussianPath]] = {"vp": VPPath, "rf": LinearFlowPath}


def make_path(name: str) -> GaussianPath:
    """Path by name: ``"vp"`` or ``"rf"``."""
    try:
        return PATHS[name]()
    except KeyError:
        raise ValueError(f"unknown path {name!r}; choose one of {sorted(PATHS)}") from None


def check_parametrisation(parametrisation: str) -> None:
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(
            f"unknown parametrisation {parametrisation!r}; choose one of {PARAMETRISATIONS}"
        )


def _coefficients(path: GaussianPath, t: Tensor, like: Tensor) -> tuple[Tensor, ...]:
    return tuple(
        expand_like(f(t), like) for f in (path.alpha, path.sigma, path.alpha_dot, path.sigma_dot)
    )


def to_eps(
    output: Tensor, x_t: Tensor, t: Tensor, path: GaussianPath, parametrisation: str
) -> Tensor:
    """Convert a prediction in ``parametrisation`` at ``(x_t, t)`` to a noise prediction."""
    check_parametrisation(parametrisation)
    if parametrisation == "eps":
        return output
    a, s, da, ds = _coefficients(path, t, x_t)
    if parametrisation == "v":
        return (a * output + s * x_t) / (a**2 + s**2)
    if parametrisation == "preconditioned":
        return s * (x_t + a * output) / (a**2 + s**2)
    # velocity: u = da * x + ds * eps with x = (x_t - s * eps) / a
    return (a * output - da * x_t) / (a * ds - da * s)


def _target(x: Tensor, eps: Tensor, coefficients: tuple[Tensor, ...], parametrisation: str):
    a, s, da, ds = coefficients
    if parametrisation == "eps":
        return eps
    if parametrisation == "v":
        return a * eps - s * x
    if parametrisation == "preconditioned":
        return (a * eps - s * x) / s
    return da * x + ds * eps


def from_eps(
    eps: Tensor, x_t: Tensor, t: Tensor, path: GaussianPath, parametrisation: str
) -> Tensor:
    """Convert a noise prediction at ``(x_t, t)`` to ``parametrisation`` (inverse of ``to_eps``)."""
    check_parametrisation(parametrisation)
    if parametrisation == "eps":
        return eps
    coefficients = _coefficients(path, t, x_t)
    a, s = coefficients[:2]
    return _target((x_t - s * eps) / a, eps, coefficients, parametrisation)


def training_target(
    x: Tensor, eps: Tensor, t: Tensor, path: GaussianPath, parametrisation: str
) -> Tensor:
    """The regression target of the model's own loss (eps-, v- or velocity-MSE)."""
    check_parametrisation(parametrisation)
    return _target(x, eps, _coefficients(path, t, x), parametrisation)


def loss_weight(t: Tensor, path: GaussianPath, parametrisation: str) -> Tensor:
    """Per-row weight (n,) of the squared error on ``training_target``: 1, except for
    ``"preconditioned"``, whose error is weighted back to the eps-MSE."""
    if parametrisation != "preconditioned":
        return torch.ones_like(t)
    a, s = (f(t) for f in (path.alpha, path.sigma))
    return (a * s / (a**2 + s**2)) ** 2


def log_snr_range(path: GaussianPath, t_eps: float) -> tuple[float, float]:
    """``(lam_min, lam_max)`` of the truncated time range, ordered."""
    lo, hi = path.truncated_range(t_eps)
    ends = path.log_snr(torch.tensor([lo, hi], dtype=torch.float64))
    a, b = float(ends[0]), float(ends[1])
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{path!r} has an infinite log-SNR at t_eps={t_eps}")
    return min(a, b), max(a, b)
