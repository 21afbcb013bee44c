"""The MI integral and its point-wise forms.

For any Gaussian noising path ``x_t = alpha x + sigma eps`` with log-SNR
``lam = log(alpha^2 / sigma^2)``, and the optimal noise predictions with the
information (``eps_c``) and without it (``eps_u``),

    I(X; Y) = 1/2 * Integral over lam of E || eps_c(x_lam, y) - eps_u(x_lam) ||^2 d lam   (1)

in nats (MINDE's Girsanov argument, or I-MMSE: ``mmse_u - mmse_c = E||eps_c - eps_u||^2``).
The integral does not depend on how the path is parametrised, so one integrator
serves every model: only the conversion to ``eps`` (``miest.paths``) and the time
sampler (``miest.timesamplers``) change.

For each sample ``x_i`` (with whatever it is paired with) and ``n_draws`` draws of
``(t, eps)`` from a time sampler, the integrator noises ``x_t = alpha x + sigma eps``,
asks a ``predict`` callable for two predictions, one *with* the information
(conditional or joint model) and one *without* (unconditional or product of
marginals), converts both to noise predictions ``eps_w, eps_o`` and averages

- orthogonal form:  ``w(t) * ||eps_w - eps_o||^2``
- MMSE-gap form:    ``w(t) * (||eps - eps_o||^2 - ||eps - eps_w||^2)``
- cross form:       ``w(t) * (eps_w - eps_o) . (eps - eps_o)``, the mean of the two

where ``w`` is the sampler's quadrature weight (``1/2 |d lam/dt| / q(t)``). All three
average to the MI over the joint distribution; with optimal predictions the
MMSE-gap form is the exact point-wise MI ``log p(x|y) - log p(x)`` of each sample.
With a learnt ``eps_w = eps_o + delta`` whose ``delta`` carries no information (a
model that overfits to ``y``), the orthogonal form adds ``||delta||^2 >= 0``, the
MMSE-gap form subtracts it, and the cross form adds only ``delta . (eps - eps_o)``,
zero on average: it cancels that bias to first order.
Values are in nats; docs/maths.md derives (1) and the forms. Any model fits: give a
``predict`` (or, for a conditional model, a ``denoiser`` through ``conditional_predict``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from miest.paths import GaussianPath, to_eps
from miest.timesamplers import TimeSampler

Form = Literal["orthogonal", "mmse-gap", "cross"]
FORMS: tuple[str, ...] = ("orthogonal", "mmse-gap", "cross")
MI_FORM: Form = "cross"
"""The form of MI estimates (means of point-wise values): the diffusion/flow estimators'
``form`` default, the most accurate mean (docs/maths.md section 5)."""
POINTWISE_FORM: Form = "mmse-gap"
"""The default form of per-sample values, for estimators (``pointwise``) and text-to-image
pipelines (``t2i.score``, ``miest.pointwise(pipe, ...)``, ``t2i score``) alike: the form
that tracks the exact point-wise MI (docs/maths.md section 5)."""

Predict = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``predict(x_t, t, rows) -> (with_information, without_information)``.

``x_t`` (b, ...) noisy samples, ``t`` (b,) times, ``rows`` (b,) indices of the samples
in the array being integrated (to look up their conditions). Outputs have the shape
of ``x_t``, in the model's parametrisation.
"""

Denoiser = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
"""``denoiser(x_t, t, condition)``; ``condition=None`` asks for the unconditional output."""


def conditional_predict(denoiser: Denoiser, condition: Tensor) -> Predict:
    """``predict``: with = ``denoiser(., ., y)``, without = ``(., ., None)``."""

    def predict(x_t: Tensor, t: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
        return denoiser(x_t, t, condition[rows]), denoiser(x_t, t, None)

    return predict


def check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown point-wise form {form!r}; choose one of {FORMS}")


@dataclass(frozen=True, repr=False)
class PointwiseMI:
    """Per-sample MI in nats, shape ``(n,)``, with Monte Carlo standard errors over draws.

    With no form named, ``values`` and ``standard_errors`` are per-sample values in
    ``POINTWISE_FORM`` and ``mi`` is the MI estimate in ``mi_form`` (an estimator's
    ``integrate`` sets it to the estimator's ``form``, so ``integrate().mi()`` is its
    estimate)."""

    orthogonal: np.ndarray
    mmse_gap: np.ndarray
    cross: np.ndarray
    orthogonal_se: np.ndarray
    mmse_gap_se: np.ndarray
    cross_se: np.ndarray
    n_draws: int
    mi_form: Form = MI_FORM

    def __post_init__(self):
        check_form(self.mi_form)

    def values(self, form: Form | None = None) -> np.ndarray:
        """Per-sample values (n,) in ``form`` (default ``POINTWISE_FORM``)."""
        form = form or POINTWISE_FORM
        check_form(form)
        return getattr(self, form.replace("-", "_"))

    def standard_errors(self, form: Form | None = None) -> np.ndarray:
        form = form or POINTWISE_FORM
        check_form(form)
        return getattr(self, form.replace("-", "_") + "_se")

    def mi(self, form: Form | None = None) -> float:
        """The MI estimate: the mean of the point-wise values in ``form`` (default
        ``mi_form``)."""
        return float(np.mean(self.values(form or self.mi_form)))

    def mi_standard_error(self, form: Form | None = None) -> float:
        """Standard error of ``mi`` over samples and draws (spread of per-sample values)."""
        values = self.values(form or self.mi_form)
        return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else np.nan

    def __repr__(self) -> str:
        forms = ", ".join(
            f"{form}={self.mi(form):.4f}±{self.mi_standard_error(form):.4f}" for form in FORMS
        )
        return (
            f"PointwiseMI(n={len(self.orthogonal)}, n_draws={self.n_draws}, nats: {forms}; "
            f"mi_form={self.mi_form!r})"
        )


def _terms(
    predict: Predict,
    x: Tensor,
    eps: Tensor,
    t: Tensor,
    rows: Tensor,
    path: GaussianPath,
    parametrisation: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row (float64) integrands of the three forms, in ``FORMS`` order."""
    x_t = path.noisy(x, eps, t.to(x.dtype))
    with_info, without_info = predict(x_t, t.to(x.dtype), rows)
    x_t64 = x_t.double()
    eps_w = to_eps(with_info.double(), x_t64, t, path, parametrisation)
    eps_o = to_eps(without_info.double(), x_t64, t, path, parametrisation)
    gap = (eps_w - eps_o).flatten(1)
    orthogonal = gap.pow(2).sum(1)
    mmse_gap = (gap * (2.0 * eps.double() - eps_w - eps_o).flatten(1)).sum(1)
    return orthogonal, mmse_gap, 0.5 * (orthogonal + mmse_gap)


@torch.no_grad()
def pointwise_mi(
    predict: Predict,
    x: Tensor,
    path: GaussianPath,
    parametrisation: str,
    sampler: TimeSampler,
    n_draws: int = 16,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> PointwiseMI:
    """Point-wise MI of every row of ``x`` (n, ...) by ``n_draws`` Monte Carlo draws each.

    ``predict`` sees chunks of at most ``batch_size`` rows. Adaptive samplers are
    fitted first (``fit_time_sampler``). Returns every form; see the module docstring.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    sampler = fit_time_sampler(sampler, predict, x, path, parametrisation, generator)
    n = x.shape[0]
    sums = torch.zeros(len(FORMS), n, dtype=torch.float64)
    squares = torch.zeros(len(FORMS), n, dtype=torch.float64)
    chunks = [torch.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    bar = tqdm(total=n_draws * len(chunks), desc="MI integral", disable=not progress, leave=False)
    for _ in range(n_draws):
        for rows in chunks:
            t, weight = sampler.sample(path, len(rows), generator)
            eps = torch.randn(x[rows].shape, generator=generator, dtype=x.dtype).to(x.device)
            terms = _terms(
                predict, x[rows], eps, t.to(x.device), rows.to(x.device), path, parametrisation
            )
            values = torch.stack(terms).cpu() * weight
            sums[:, rows] += values
            squares[:, rows] += values**2
            bar.update()
    bar.close()
    means = sums / n_draws
    if n_draws > 1:
        variance = (squares / n_draws - means**2).clamp_min(0) * n_draws / (n_draws - 1)
        se = (variance / n_draws).sqrt()
    else:
        se = torch.full_like(means, float("nan"))
    fields = [form.replace("-", "_") for form in FORMS]
    return PointwiseMI(
        **{f: m.numpy() for f, m in zip(fields, means, strict=True)},
        **{f + "_se": e.numpy() for f, e in zip(fields, se, strict=True)},
        n_draws=n_draws,
    )


@torch.no_grad()
def integrand_profile(
    predict: Predict,
    x: Tensor,
    path: GaussianPath,
    parametrisation: str,
    log_snrs: Tensor,
    n_draws: int = 1,
    generator: torch.Generator | None = None,
) -> dict[str, np.ndarray]:
    """The integrand of (1) over ``lam`` for every form: ``1/2 E[term]`` at each log-SNR of
    ``log_snrs`` (k,), in nats per unit of ``lam``, averaged over the rows of ``x`` and
    ``n_draws`` noise draws per row. Its integral over ``lam`` is the MI of that form; the
    profile shows where in noise level an estimate gains or loses it. Returns
    ``{"log_snr": (k,), form: (k,) for each form}``."""
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    rows = torch.arange(x.shape[0], device=x.device)
    curves = np.zeros((len(FORMS), len(log_snrs)))
    for i, lam in enumerate(log_snrs):
        t = path.t_of_log_snr(lam.repeat(len(rows))).to(x.device)
        for _ in range(n_draws):
            eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            terms = _terms(predict, x, eps, t, rows, path, parametrisation)
            curves[:, i] += [0.5 * float(term.mean()) / n_draws for term in terms]
    return {"log_snr": log_snrs.cpu().numpy(), **dict(zip(FORMS, curves, strict=True))}


def fit_time_sampler(
    sampler: TimeSampler,
    predict: Predict,
    x: Tensor,
    path: GaussianPath,
    parametrisation: str,
    generator: torch.Generator | None = None,
    n_pilot: int = 256,
) -> TimeSampler:
    """For an adaptive sampler, a copy fitted to a pilot curve of the integrand; else itself.

    The pilot is the orthogonal form's ``integrand_profile`` on the sampler's grid, from the
    first ``n_pilot`` rows of ``x`` (one noise draw each).
    """
    if not sampler.adaptive:
        return sampler
    lam = sampler.pilot_grid(path)
    profile = integrand_profile(predict, x[:n_pilot], path, parametrisation, lam, 1, generator)
    return sampler.fitted(lam, torch.as_tensor(profile["orthogonal"], dtype=lam.dtype))
