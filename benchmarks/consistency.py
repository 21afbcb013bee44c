"""MINDE's self-consistency tests (after Song & Ermon, 2020) on small images.

The true MI of image data is unknown, but three of its properties are exact, and an
estimator should reproduce them:

- ``baseline``: ``I(A; B_r)`` grows with ``r`` (``B_r`` is a function of ``B_{r+1}``);
  ``independent``: ``I(A; B) = 0`` when ``B`` is observed from another image.
- ``dpi`` (data processing): ``I([A, A]; [B_r, B_{r-2}]) = I(A; B_r)``, since ``B_{r-2}``
  is a function of ``B_r``: the ratio to the baseline is 1.
- ``additivity``: for independent images, ``I([A1, A2]; [B1_r, B2_r]) = 2 I(A1; B1_r)``:
  the ratio to the baseline is 2.

Data: scikit-learn's 8x8 digits (1,797 images shipped inside scikit-learn, no download).
A sample draws an image uniformly (with replacement) and dequantises it: ``A`` is the 64
pixels ``(value + U(0, 1)) / 17`` in ``[0, 1]``. ``B_r`` is the top ``r`` rows of ``A``
(``8 r`` pixels) plus independent Gaussian noise of standard deviation ``NOISE``, which
keeps ``I(A; B_r)`` finite.

An exact upper bound is known: for a given signal covariance, a Gaussian signal has the
largest MI through an additive Gaussian channel, so
``I(A; B_r) <= 0.5 log det(I + Cov(A_r) / NOISE^2)`` (1.83 nats at ``r = 8``), with
``Cov(A)`` computed exactly from the 1,797 images (see ``upper_bound``).

The MI itself is known too, up to Monte Carlo error (``exact_mi``): ``A`` is a uniform
mixture over the 1,797 images of products of pixel boxes, so given its integer image each
observed pixel of ``B_r`` is a box-uniform value plus Gaussian noise, whose density is a
difference of two normal CDFs. Then ``I(A; B_r) = E[log p(b | a) - log p(b)]`` with
``p(b)`` the mixture over the images, averaged over sampled pairs (standard error about
0.01 nats). The channel is very noisy, so the MI sits just below the Gaussian bound
(1.79 for 1.83 nats at ``r = 8``); ``dpi`` tasks have the baseline's MI, ``additivity``
twice it.
"""

from __future__ import annotations

import time
from functools import cache

import numpy as np

NOISE = 1.0
SIDE = 8  # pixels per image row
DROPPED = 2  # rows the data-processing test removes from B_r
TASKS = (
    "independent-r8",
    *(f"baseline-r{r}" for r in (1, 2, 4, 6, 8)),
    *(f"dpi-r{r}" for r in (4, 6, 8)),
    *(f"additivity-r{r}" for r in (2, 4, 8)),
)
IDEAL_RATIO = {"dpi": 1.0, "additivity": 2.0}


@cache
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images.reshape(-1, SIDE * SIDE).astype(np.float64)


def upper_bound(task: str) -> float:
    """The Gaussian-channel upper bound on the task's true MI, in nats (0 if independent)."""
    test, rows = parse(task)
    if test == "independent":
        return 0.0
    digits = _digits()
    # Cov of (digit + U(0, 1)) / 17: the images' population covariance plus uniform noise
    cov = (np.cov(digits.T, bias=True) + np.eye(SIDE * SIDE) / 12.0) / 17.0**2
    k = SIDE * rows
    bound = 0.5 * np.linalg.slogdet(np.eye(k) + cov[:k, :k] / NOISE**2)[1]
    return float(2 * bound if test == "additivity" else bound)


EXACT_PAIRS = 20_000  # Monte Carlo pairs behind ``exact_mi``


def box_gaussian_mi(
    images: np.ndarray, noise: float, n: int = EXACT_PAIRS, seed: int = 0, chunk: int = 2000
) -> tuple[float, float]:
    """``I(A; A + noise * N)`` in nats and its Monte Carlo standard error, where ``A`` is a
    uniformly chosen row of ``images`` (integers ``0..16``, shape ``(m, k)``) dequantised as
    ``(value + U(0, 1)) / 17`` and ``N`` is standard normal (``k`` pixels)."""
    import torch

    from benchmarks.integrand import log_mass_and_mean

    images = np.asarray(images, dtype=np.int64)
    m, k = images.shape
    rng = np.random.default_rng(seed)
    a = (images[rng.integers(m, size=n)] + rng.uniform(size=(n, k))) / 17.0
    b = a + noise * rng.standard_normal((n, k))
    edges = torch.arange(18, dtype=torch.float64) / 17.0
    onehot = torch.zeros(k * 17, m, dtype=torch.float64)  # image j has value v at pixel d
    onehot[(np.arange(k) * 17 + images).ravel(), np.repeat(np.arange(m), k)] = 1
    pointwise = []
    for rows in np.array_split(np.arange(n), max(1, n // chunk)):
        # density of b_d given pixel value v: 17 x the mass of N(b_d, noise^2) in v's box
        centre = torch.as_tensor(b[rows])[:, :, None]
        log_mass = log_mass_and_mean(edges[:-1], edges[1:], centre, torch.tensor(noise))[0]
        per_image = (log_mass + np.log(17.0)).flatten(1) @ onehot  # (rows, m)
        log_pb = torch.logsumexp(per_image, 1).numpy() - np.log(m)
        residual = (b[rows] - a[rows]) / noise
        log_pb_given_a = (-0.5 * residual**2 - 0.5 * np.log(2 * np.pi * noise**2)).sum(1)
        pointwise.append(log_pb_given_a - log_pb)
    values = np.concatenate(pointwise)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n))


def exact_mi(task: str) -> tuple[float, float]:
    """The task's MI in nats and its Monte Carlo standard error (``box_gaussian_mi`` on the
    observed rows of the 1,797 images; see the module docstring)."""
    test, rows = parse(task)
    if test == "independent":
        return 0.0, 0.0
    mi, se = _observed_rows_mi(rows)
    return (2 * mi, 2 * se) if test == "additivity" else (mi, se)


@cache
def _observed_rows_mi(rows: int) -> tuple[float, float]:
    return box_gaussian_mi(_digits()[:, : SIDE * rows], NOISE)


def parse(task: str) -> tuple[str, int]:
    """``"dpi-r6"`` -> ``("dpi", 6)``; a clear error for anything else."""
    test, _, rows = task.partition("-r")
    if test not in ("independent", "baseline", *IDEAL_RATIO) or not rows.isdigit():
        raise ValueError(f"unknown consistency task {task!r}; known: {list(TASKS)}")
    if not 1 <= int(rows) <= SIDE or (test == "dpi" and int(rows) <= DROPPED):
        raise ValueError(f"consistency task {task!r}: rows out of range")
    return test, int(rows)


def sample(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs ``(x, y)`` of ``task``, shapes ``(n, d_x)`` and ``(n, d_y)``."""
    test, rows = parse(task)
    rng = np.random.default_rng(seed)

    def image() -> np.ndarray:
        digits = _digits()
        chosen = digits[rng.integers(len(digits), size=n)]
        return (chosen + rng.uniform(size=chosen.shape)) / 17.0

    def observe(a: np.ndarray, r: int) -> np.ndarray:
        top = a[:, : SIDE * r]
        return top + NOISE * rng.standard_normal(top.shape)

    a = image()
    if test == "independent":
        return a, observe(image(), rows)
    b = observe(a, rows)
    if test == "baseline":
        return a, b
    if test == "dpi":
        return np.hstack([a, a]), np.hstack([b, b[:, : SIDE * (rows - DROPPED)]])
    a2 = image()
    return np.hstack([a, a2]), np.hstack([b, observe(a2, rows)])


def run_consistency_job(job, estimator) -> list[dict]:
    """One row: the estimate on ``job.task`` with the built ``estimator``."""
    test, rows = parse(job.task)
    x, y = sample(job.task, job.n, job.seed)
    start = time.perf_counter()
    estimate = float(estimator.estimate(x, y))
    return [
        {
            "test": test,
            "rows": rows,
            "dim_x": x.shape[1],
            "dim_y": y.shape[1],
            "upper_bound": upper_bound(job.task),
            "estimate": estimate,
            "seconds": time.perf_counter() - start,
        }
    ]
