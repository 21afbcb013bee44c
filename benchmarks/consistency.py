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
