"""Input checking, train/held-out splits and MI-preserving preprocessing.

Every estimator goes through ``check_pair`` first, so bad input fails here with a
message that names the problem instead of deep inside training.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.special import ndtri


def as_matrix(a, name: str) -> np.ndarray:
    """``a`` (numpy, torch or lists) as a float32 array ``(n, d)``; 1-D becomes ``(n, 1)``."""
    if hasattr(a, "detach"):  # a torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    try:
        array = np.asarray(a)
    except ValueError as error:  # ragged lists
        raise ValueError(f"{name} is not a rectangular array: {error}") from None
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers (int or float), got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, d), got {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has no columns")
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf values, in rows {rows[:5].tolist()}"
            + ("..." if len(rows) > 5 else "")
        )
    return array.astype(np.float32)


def check_pair(x, y, min_samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate a paired sample: same number of rows, finite reals, enough rows."""
    x, y = as_matrix(x, "x"), as_matrix(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must be paired row by row: x has {len(x)} rows, y has {len(y)}")
    if len(x) < min_samples:
        raise ValueError(
            f"too few samples: got {len(x)}, this estimator needs at least {min_samples}"
        )
    return x, y


def check_not_constant(a: np.ndarray, name: str) -> None:
    """Constant columns carry no information and break standardisation: say which."""
    constant = np.flatnonzero(a.std(axis=0) == 0)
    if len(constant):
        raise ValueError(
            f"{name} has constant columns {constant.tolist()}; they carry no information, drop them"
        )


def check_positive_int(name: str, value, optional: bool = False) -> None:
    """A count option: a positive integer (numpy integers too, never bools), or ``None``
    when ``optional``."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        kind = "None or a positive integer" if optional else "a positive integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


SMALL_SAMPLE = 1000  # fewer pairs than this draw a warning
DISCRETE_LEVELS = 20  # a column with at most this many distinct values looks discrete


def data_warnings(x: np.ndarray, y: np.ndarray) -> list[str]:
    """Reasons to distrust any neural estimate from these pairs (checked arrays ``(n, d)``):
    too few pairs for the held-out split to be informative, and discrete-looking columns
    (at most ``DISCRETE_LEVELS`` distinct values, or a tenth of ``n``), for which the
    continuous MI these estimators target is ill-defined (infinite when ``x`` and ``y``
    share a discrete variable)."""
    n = len(x)
    warnings = []
    if n < SMALL_SAMPLE:
        warnings.append(
            f"only {n} pairs: neural estimates from fewer than {SMALL_SAMPLE} are noisy and "
            "biased (the benchmarks use 5,000 and more); compare with miest's known-MI tasks "
            "at your sample size"
        )
    limit = min(DISCRETE_LEVELS, max(n // 10, 1))
    for name, a in (("x", x), ("y", y)):
        levels = (np.diff(np.sort(a, axis=0), axis=0) != 0).sum(axis=0) + 1
        discrete = np.flatnonzero(levels <= limit)
        if len(discrete):
            warnings.append(
                f"{len(discrete)} of the {a.shape[1]} columns of {name} look discrete (at most "
                f"{int(levels[discrete].max())} distinct values, e.g. columns "
                f"{discrete[:5].tolist()}): these estimators target the MI of continuous "
                "variables, which ties make ill-defined; add noise within the grid step "
                "(dequantise) or use an estimator for discrete data"
            )
    return warnings


def split(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and held-out row indices."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_size))
    return order[n_test:], order[:n_test]


@dataclass(frozen=True)
class Standardizer:
    """Per-column affine map to zero mean, unit variance (fitted on training rows).

    Affine maps of each variable leave the MI unchanged, so this only helps training.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, a: np.ndarray) -> Standardizer:
        return cls(a.mean(axis=0), a.std(axis=0))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        if a.shape[1] != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} columns, got {a.shape[1]}")
        return ((a - self.mean) / self.std).astype(np.float32)


@dataclass(frozen=True)
class RankGauss:
    """Per-column map to standard-normal scores through the training empirical CDF.

    A strictly increasing map of each coordinate leaves the MI unchanged, so this
    Gaussian-copula step removes heavy tails and bounded supports (which make neural
    training hard) without changing the target. New values are mapped by
    interpolation; values beyond the training range are clipped to its ends.
    """

    knots: np.ndarray  # (m, d) sorted training values per column
    scores: np.ndarray  # (m,) normal quantiles of the mid-ranks

    @classmethod
    def fit(cls, a: np.ndarray) -> RankGauss:
        m = len(a)
        return cls(np.sort(a, axis=0), ndtri((np.arange(m) + 0.5) / m))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        if a.shape[1] != self.knots.shape[1]:
            raise ValueError(f"expected {self.knots.shape[1]} columns, got {a.shape[1]}")
        columns = [np.interp(a[:, j], self.knots[:, j], self.scores) for j in range(a.shape[1])]
        return np.stack(columns, axis=1).astype(np.float32)


@dataclass(frozen=True)
class IndependentColumns:
    """Keep a largest set of linearly independent columns (fitted on training rows).

    Columns that are exact linear combinations of others (duplicated features, images
    upsampled by a linear map) add directions in which the data have no spread; a
    denoiser must then learn a degenerate score, and its errors there become MI. The
    kept columns determine the dropped ones through a linear map, so the MI is
    unchanged. Columns constant on the rows it is fitted on (though not on all rows) are
    dropped too. Only looked for with at least ``2 d`` rows (fewer rows than columns
    always look dependent); a column counts as dependent when pivoted QR of the
    standardised columns leaves it a residual below ``RTOL`` of the largest (float32
    rounding of upsampled digit images leaves about 2e-7; the smallest real residual of
    the 64 digit pixels is 0.3, and no bmi v1 task has a column below ``RTOL``).
    """

    RTOL = 1e-4
    dim: int  # columns of the input
    columns: np.ndarray  # (k,) indices of the kept columns, increasing

    @classmethod
    def fit(cls, a: np.ndarray) -> IndependentColumns:
        n, d = a.shape
        if d == 1 or n < 2 * d:
            return cls(d, np.arange(d))
        scale = a.std(axis=0)
        z = (a - a.mean(axis=0)) / np.where(scale > 0, scale, 1)  # constant here: dropped
        r, pivots = scipy.linalg.qr(z.astype(np.float64), mode="r", pivoting=True)
        residuals = np.abs(np.diag(r))
        rank = int(np.sum(residuals > cls.RTOL * residuals[0]))
        return cls(d, np.sort(pivots[:rank]))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        if a.shape[1] != self.dim:
            raise ValueError(f"expected {self.dim} columns, got {a.shape[1]}")
        return a if len(self.columns) == self.dim else a[:, self.columns]


@dataclass(frozen=True)
class Preprocessor:
    """Drop linearly dependent columns (``IndependentColumns``), then map each kept
    column (``RankGauss`` or ``Standardizer``); every step leaves the MI unchanged."""

    independent: IndependentColumns
    per_column: RankGauss | Standardizer

    @classmethod
    def fit(cls, a: np.ndarray, kind: str) -> Preprocessor:
        independent = IndependentColumns.fit(a)
        return cls(independent, PREPROCESSORS[kind](independent(a)))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self.per_column(self.independent(a))


PREPROCESSORS = {"rank-gauss": RankGauss.fit, "standardize": Standardizer.fit}
