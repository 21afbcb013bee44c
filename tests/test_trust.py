"""How far to trust a number: threads, warnings, repeat intervals and the shuffled-pairs null.

Quick settings; the estimates are checked for their structure and for properties that
hold at any training budget (a seed reproduces, an interval holds its mean, the null of
a fit on strongly dependent pairs is far below its estimate).
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import miest
from miest.data import data_warnings
from miest.gaussian import GaussianPair
from miest.interface import MIWarning, null_summary, student_interval
from miest.training import TrainingLog

QUICK = {"steps": 200, "eval_every": 50, "batch_size": 128, "hidden": 32}


@pytest.fixture(scope="module")
def gaussian():
    pair = GaussianPair.from_correlations([0.9], 1, 1, seed=0)
    x, y = pair.sample(1200, seed=0)
    return x, y, pair.mutual_information()


def test_threads_are_checked_and_restored(gaussian):
    x, y, _ = gaussian
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be None or a positive integer"):
            miest.estimator("mine", threads=bad)
    before = torch.get_num_threads()
    seen = []
    est = miest.estimator("mine", threads=1, **QUICK)
    original = est._fit

    def spy(*args):
        seen.append(torch.get_num_threads())
        return original(*args)

    est._fit = spy
    est.fit(x, y)
    assert seen == [1] and torch.get_num_threads() == before


def test_discrete_and_small_data_are_named():
    digits = load_digits().data  # integer pixels 0-16
    x, y = digits[:, :32], digits[:, 32:]
    found = data_warnings(x, y)
    assert any("columns of x look discrete" in w for w in found)
    assert any("columns of y look discrete" in w for w in found)
    continuous = np.random.default_rng(0).normal(size=(5000, 3))
    assert data_warnings(continuous, continuous) == []
    assert "only 500 pairs" in data_warnings(continuous[:500], continuous[:500])[0]


def test_step_cap_warns_only_while_still_improving():
    falling = TrainingLog(
        steps=list(range(100, 1100, 100)),
        val_loss=[1.0 - 0.05 * i for i in range(10)],
        best_step=1000,
        max_steps=1000,
    )
    assert falling.stopped_at_step_cap
    assert "step cap (1000 steps)" in falling.warnings(patience=3)[0]
    flat = TrainingLog(
        steps=falling.steps, val_loss=[0.5] * 9 + [0.4999], best_step=1000, max_steps=1000
    )
    assert flat.stopped_at_step_cap and flat.warnings(patience=3) == []
    early = TrainingLog(
        steps=falling.steps, val_loss=falling.val_loss, best_step=1000, stopped_early=True
    )
    assert not early.stopped_at_step_cap and early.warnings(patience=3) == []


def test_fit_emits_warnings_a_user_sees():
    digits = load_digits().data[:600]
    digits = digits[:, digits.std(axis=0) > 0]  # drop the always-blank border pixels
    est = miest.estimator("mine", **QUICK)
    with pytest.warns(MIWarning, match="look discrete"):
        est.fit(digits[:, :25], digits[:, 25:])
    assert any("only 600 pairs" in w for w in est.warnings_)


def test_repeats_give_a_reproducible_interval(gaussian):
    x, y, _ = gaussian
    est = miest.estimator("infonce", seed=3, **QUICK)
    result = est.estimate_with_info(x, y, n_repeats=3)
    info = result.additional_information
    assert len(info["repeats"]) == 3 and len(set(info["repeats"])) == 3
    assert result.mi_estimate == pytest.approx(np.mean(info["repeats"]))
    low, high = info["interval"]
    assert low < result.mi_estimate < high
    assert (low, high) == pytest.approx(student_interval(info["repeats"]))
    single = miest.estimator("infonce", seed=3, **QUICK).estimate_with_info(x, y)
    assert single.mi_estimate == pytest.approx(info["repeats"][0])
    assert single.additional_information["interval"] is None
    assert est.mutual_information() == pytest.approx(info["repeats"][0])  # state: first fit
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="n_repeats must be a positive integer"):
            est.estimate_with_info(x, y, n_repeats=bad)


def test_student_interval_matches_the_textbook():
    low, high = student_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303
    assert (low, high) == pytest.approx((2 - 4.3027 / np.sqrt(3), 2 + 4.3027 / np.sqrt(3)), 1e-4)


def test_shuffled_pairs_null_is_near_zero_and_below_the_estimate(gaussian):
    x, y, truth = gaussian  # 0.83 nats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MIWarning)
        result = miest.estimator("mine", **QUICK).estimate_with_info(x, y, null=True)
    info = result.additional_information
    assert abs(info["null_estimate"]) < 0.1
    assert result.mi_estimate - info["null_estimate"] > 0.5 * truth
    assert info["null_interval"] is None and len(info["null_repeats"]) == 1


def test_a_null_above_zero_is_a_warning():
    biased = [{"estimate": 0.3, "standard_error": 0.02}]
    summary, found = null_summary(biased)
    assert summary["null_estimate"] == 0.3 and "reports 0.30 nats instead of 0" in found[0]
    assert null_summary([{"estimate": 0.03, "standard_error": 0.02}])[1] == []
    assert null_summary([{"estimate": 0.3, "standard_error": 0.2}])[1] == []  # 0 within 95%


def test_integrate_defaults_to_the_estimators_form(gaussian):
    x, y, _ = gaussian
    est = miest.estimator("rfmi", n_draws=2, **QUICK).fit(x, y)
    integral = est.integrate()
    assert integral.mi_form == est.form == "cross"
    assert integral.mi() == pytest.approx(est.mutual_information())
    # per-sample values default to MMSE-gap whatever the estimate's form
    assert np.array_equal(integral.values(), integral.mmse_gap)
    assert np.array_equal(est.pointwise(), integral.mmse_gap)
    other = miest.estimator("rfmi", n_draws=2, form="orthogonal", **QUICK).fit(x, y)
    assert other.mutual_information() == pytest.approx(other.integrate().orthogonal.mean())
    text = repr(integral)
    assert len(text) < 300 and "cross=" in text and "n=360" in text
