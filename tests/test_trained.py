"""Trained estimators on known-MI tasks (bmi) and invariance properties. Default settings.

Tolerances: the diffusion/flow estimators (MINDE-C, MINDE-J, RFMI) must be within
max(0.1 nats, 10%) of the truth (issue 2); the critic bounds within max(0.15, 15%).
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


@pytest.mark.slow
@pytest.mark.parametrize("task_id", TASKS)
@pytest.mark.parametrize("name", DIFFUSION + CRITICS)
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
    # rank-gauss: training rows map to identical scores; held-out rows only differ by
    # interpolating between knots in the mapped space, so the estimate barely changes at all
    # (an invariance, not an accuracy check: a short fit shows it as well as a full one)
    short = lambda: miest.estimator("rfmi", steps=800)  # noqa: E731
    assert short().estimate(fx, gy) == pytest.approx(short().estimate(x, y), abs=1e-3)
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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rfmi", "minde-c"])
def test_distilled_unconditional_keeps_the_truth(gaussian, name):
    """An unconditional prediction trained on the network's own conditional one (not on the
    data) has the exact unconditional prediction as its optimum (tower property): the
    estimate stays within the diffusion tolerance on a closed-form Gaussian. (Measured:
    RFMI 0.68, MINDE-C 0.59 for 0.65 nats; before early stopping followed the data loss,
    MINDE-C's fit stopped on the moving distilled loss and gave 0.46.)"""
    pair, x, y = gaussian
    estimate = miest.estimator(name, seed=0, unconditional_target="conditional").estimate(x, y)
    truth = pair.mutual_information()
    assert abs(estimate - truth) < max(0.1, 0.1 * truth), (estimate, truth)
