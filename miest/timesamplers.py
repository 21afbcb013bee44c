"""Time samplers: Monte Carlo quadrature for the MI integral (``miest.integrate``, eq. (1)).

A sampler draws times ``t`` (n,) together with weights ``w`` (n,) such that, for any
integrand ``f``,

    E[w * f(t)] = 1/2 * Integral f d lam          (over the sampler's truncated range)

so ``w = |d lam / dt| / (2 q(t))`` for a draw from density ``q``. Estimators only
ever average ``w * ||eps_c - eps_u||^2``; the choice of sampler changes variance
and truncation bias, never the target.

Samplers:

- ``UniformTime``: ``t ~ U[t_lo, t_hi]``.
- ``LambertW``: RFMI's importance sampler (Proposition 3.3), ``q(t) ∝ t / (1 - t)``
  on ``[0, 1 - t_eps]`` (inverse CDF through Lambert W); for paths whose data end is
  ``t = 1``.
- ``LogSNRUniform``: ``lam`` uniform on the truncated range. On the VP path this is
  exactly MINDE's importance sampler ``q(t) ∝ beta(t) / sigma_t^2``.
- ``LogisticLogSNR``: truncated logistic density over ``lam`` (Kong et al., MMG), with
  an ``adaptive`` option that refits location and scale to a pilot integrand curve.

Densities, inverse CDFs and weights: docs/maths.md, section 4.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.special import lambertw
from torch import Tensor

from miest.paths import GaussianPath, log_snr_range


def _uniform(n: int, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64)


class TimeSampler(ABC):
    """Draws ``(t, w)`` with ``E[w f(t)] = 1/2 Integral f d lam``; see the module docstring."""

    name: str
    adaptive: bool = False

    @abstractmethod
    def sample(
        self, path: GaussianPath, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Times ``(n,)`` and quadrature weights ``(n,)``, float64."""

    def check_path(self, path: GaussianPath) -> None:  # noqa: B027 (most samplers fit any path)
        """Raise ``ValueError`` when this sampler cannot integrate on ``path``."""


@dataclass(frozen=True)
class UniformTime(TimeSampler):
    """``t`` uniform on the path's range truncated by ``t_eps`` at each unsafe end."""

    t_eps: float = 1e-3
    name = "uniform"

    def sample(self, path, n, generator=None):
        lo, hi = path.truncated_range(self.t_eps)
        t = lo + (hi - lo) * _uniform(n, generator)
        return t, 0.5 * path.dlog_snr_dt(t).abs() * (hi - lo)


@dataclass(frozen=True)
class LambertW(TimeSampler):
    """RFMI importance sampling: ``q(t) = t / ((1 - t) Z)`` on ``[0, 1 - t_eps]``.

    ``Z = -log(t_eps) - (1 - t_eps)``, ``F(t) = (-t - log(1 - t)) / Z`` and
    ``F^-1(r) = 1 + W_0(-exp(-r Z - 1))`` (``scipy.special.lambertw``, principal branch).
    """

    t_eps: float = 1e-3
    name = "lambert-w"

    def __post_init__(self):
        if not 0 < self.t_eps < 1:
            raise ValueError(f"t_eps must be in (0, 1), got {self.t_eps}")

    @property
    def normaliser(self) -> float:
        return -math.log(self.t_eps) - (1.0 - self.t_eps)

    def cdf(self, t: np.ndarray) -> np.ndarray:
        return (-t - np.log1p(-t)) / self.normaliser

    def inverse_cdf(self, r: np.ndarray) -> np.ndarray:
        # r = 0 puts the argument on the branch point -1/e where scipy returns nan:
        # keep r a hair inside (0, 1].
        r = np.clip(np.asarray(r, dtype=np.float64), 1e-12, 1.0)
        return 1.0 + lambertw(-np.exp(-r * self.normaliser - 1.0), k=0).real

    def check_path(self, path: GaussianPath) -> None:
        if path.data_end != 1.0:
            raise ValueError(
                f"LambertW needs a path with data at t = 1 (rectified flow), got {path!r}"
            )

    def sample(self, path, n, generator=None):
        self.check_path(path)
        t = torch.from_numpy(self.inverse_cdf(_uniform(n, generator).numpy()))
        density = t / ((1.0 - t) * self.normaliser)
        return t, 0.5 * path.dlog_snr_dt(t).abs() / density


@dataclass(frozen=True)
class LogSNRUniform(TimeSampler):
    """``lam`` uniform on the truncated range (MINDE's VP importance sampler on the VP path)."""

    t_eps: float = 1e-3
    name = "logsnr-uniform"

    def sample(self, path, n, generator=None):
        lo, hi = log_snr_range(path, self.t_eps)
        lam = lo + (hi - lo) * _uniform(n, generator)
        return path.t_of_log_snr(lam), torch.full_like(lam, 0.5 * (hi - lo))


@dataclass(frozen=True)
class LogisticLogSNR(TimeSampler):
    """Truncated logistic density over ``lam`` (location ``loc``, scale ``scale``).

    Cut at ``loc ± clip * scale``.

    The range is further cut to the path's range at ``t_eps``. ``uniform_fraction`` mixes
    in ``lam`` uniform over the path's range (defensive importance sampling: weights stay
    bounded where the logistic's tails are too light). With ``adaptive=True``, ``fitted``
    refits ``loc``/``scale`` by moment matching to a pilot curve of the integrand over
    ``lam`` (``miest.integrate.fit_time_sampler`` runs the pilot); ``min_scale`` floors the
    fitted scale.
    """

    loc: float = 2.0
    scale: float = 3.0
    clip: float = 4.0
    t_eps: float = 1e-3
    adaptive: bool = False
    min_scale: float = 1.0
    uniform_fraction: float = 0.0
    name = "logistic"

    def __post_init__(self):
        if not 0 <= self.uniform_fraction <= 1 or self.scale <= 0 or self.clip <= 0:
            raise ValueError(f"invalid logistic sampler {self}")

    def _cdf(self, lam):
        return torch.sigmoid((torch.as_tensor(lam, dtype=torch.float64) - self.loc) / self.scale)

    def sample(self, path, n, generator=None):
        lo, hi = log_snr_range(path, self.t_eps)
        a, b = (
            max(lo, self.loc - self.clip * self.scale),
            min(hi, self.loc + self.clip * self.scale),
        )
        f_a, f_b = self._cdf(a), self._cdf(b)
        u = f_a + (f_b - f_a) * _uniform(n, generator)
        lam = self.loc + self.scale * torch.logit(u)
        if self.uniform_fraction > 0:
            pick_uniform = _uniform(n, generator) < self.uniform_fraction
            lam = torch.where(pick_uniform, lo + (hi - lo) * _uniform(n, generator), lam)
        z = self._cdf(lam)
        inside = (lam >= a) & (lam <= b)
        logistic_density = torch.where(inside, z * (1 - z) / (self.scale * (f_b - f_a)), 0.0)
        density = (1 - self.uniform_fraction) * logistic_density + self.uniform_fraction / (hi - lo)
        return path.t_of_log_snr(lam), 0.5 / density

    def pilot_grid(self, path: GaussianPath, n_points: int = 48) -> Tensor:
        lo, hi = log_snr_range(path, self.t_eps)
        return torch.linspace(lo, hi, n_points, dtype=torch.float64)

    def fitted(self, lam: Tensor, curve: Tensor) -> LogisticLogSNR:
        """A copy with ``loc``/``scale`` matched to the density ``∝ curve`` on grid ``lam``."""
        weights = curve.clamp_min(0).double()
        if not torch.isfinite(weights).all() or weights.sum() <= 0:
            return self
        weights = weights / weights.sum()
        mean = float((weights * lam).sum())
        std = float((weights * (lam - mean) ** 2).sum().sqrt())
        scale = max(self.min_scale, std * math.sqrt(3.0) / math.pi)
        return replace(self, loc=mean, scale=scale)


SAMPLERS: dict[str, type[TimeSampler]] = {
    "uniform": UniformTime,
    "lambert-w": LambertW,
    "logsnr-uniform": LogSNRUniform,
    "logistic": LogisticLogSNR,
}


def make_time_sampler(name: str | TimeSampler, t_eps: float = 1e-3) -> TimeSampler:
    """A sampler by name (``"uniform"``, ``"lambert-w"``, ``"logsnr-uniform"``,
    ``"logistic"``, ``"logistic-adaptive"``), or the given instance unchanged."""
    if isinstance(name, TimeSampler):
        return name
    if name == "logistic-adaptive":
        return LogisticLogSNR(t_eps=t_eps, adaptive=True, uniform_fraction=0.25)
    if name not in SAMPLERS:
        choices = [*SAMPLERS, "logistic-adaptive"]
        raise ValueError(f"unknown time sampler {name!r}; choose one of {choices}")
    return SAMPLERS[name](t_eps=t_eps)
