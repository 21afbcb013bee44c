"""Trained estimators on known-MI tasks (bmi) and invariance properties. Default settings.

Tolerances: the diffusion/flow estimators (MINDE-C, MINDE-J, RFMI) must be within
max(0.1 nats, 10%) of the truth (issue 2); the critic bounds within max(0.15, 15%).
Known shortfalls are marked xfail with the measured value, so a fix shows up as XPASS.
"""

import numpy as np
import pytest

import miest
from miest.gaussian import GaussianPair

bmi = pytest.importorskip("bmi")

TASKS = [
    "1v1-normal-0.75",
    "multinormal-dense-5-5-0.5",
    "student-identity-2-2-1",
    "half_cube-multinormal-sparse-3-3-2-2.0",
]
DIFFUSION = ["minde-c", "minde-j", "rfmi"]
CRITICS = ["mine", "infonce", "nwj"]
KNOWN_GAPS = {  # measured at n=5000, seed 0 (see the README's status section)
    ("minde-j", "student-identity-2-2-1"): "MINDE-J 0.25-0.29 vs 0.432",
    ("minde-j", "half_cube-multinormal-sparse-3-3-2-2.0"): "MINDE-J 0.90 vs 1.022",
    ("minde-c", "student-identity-2-2-1"): "MINDE-C 0.32 vs 0.432",
}


def cases():
    for task in TASKS:
        for name in DIFFUSION + CRITICS:
            marks = []
            if (name, task) in KNOWN_GAPS:
                marks = [pytest.mark.xfail(reason=KNOWN_GAPS[name, task], strict=False)]
            yield pytest.param(name, task, marks=marks, id=f"{name}-{task}")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "task_id"), cases())
def test_estimate_close_to_truth(name, task_id):
    task = bmi.benchmark.BENCHMARK_TASKS[task_id]
    x, y = task.sample(5000, seed=0)
    estimate = miest.estimator(name, seed=0).estimate(x, y)
    truth = task.mutual_information
    relative, absolute = (0.10, 0.10) if name in DIFFUSION else (0.15, 0.15)
    assert abs(estimate - truth) <= max(absolute, relative * truth), (estimate, truth)


@pytest.fixture(scope="module")
def gaussian():
    pair = GaussianPair.from_correlations([0.8, 0.5], 3, 2, seed=0)
    return pair, *pair.sample(3000, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rfmi", "minde-c", "infonce"])
def test_independent_variables_give_about_zero(name):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 2))
    assert abs(miest.estimator(name, seed=0).estimate(x, y)) < 0.05


@pytest.mark.slow
def test_monotone_maps_of_coordinates(gaussian):
    _, x, y = gaussian
    fx, gy = np.arcsinh(3 * x) + x, np.exp(0.5 * y)
    # rank-gauss preprocessing: a strictly increasing map of a column changes nothing at all
    assert miest.estimator("rfmi").estimate(fx, gy) == miest.estimator("rfmi").estimate(x, y)
    # plain standardisation: the estimate barely moves
    plain = lambda: miest.estimator("rfmi", preprocess="standardize")  # noqa: E731
    assert abs(plain().estimate(fx, gy) - plain().estimate(x, y)) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rfmi", "minde-j"])
def test_symmetry(gaussian, name):
    pair, x, y = gaussian
    forward = miest.estimator(name, seed=0).estimate(x, y)
    backward = miest.estimator(name, seed=0).estimate(y, x)
    assert abs(forward - backward) < 0.1
    assert abs(forward - pair.mutual_information()) < max(0.1, 0.1 * pair.mutual_information())
