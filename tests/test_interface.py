"""The estimator interface: names, bad input, seeding, bmi compatibility. Quick settings only."""

import numpy as np
import pytest
import torch

import miest
from miest.gaussian import GaussianPair
from miest.nets import ConvConditionalDenoiser

RNG = np.random.default_rng(0)
NAMES = ["minde-c", "minde-j", "rfmi", "mine", "infonce", "nwj"]
QUICK = {"steps": 60, "eval_every": 30, "batch_size": 64, "hidden": 16}


@pytest.fixture(scope="module")
def sample():
    return GaussianPair.from_correlations([0.8], 2, 1, seed=0).sample(300, seed=0)


def quick(name, **kw):
    extra = {"n_draws": 2} if name in ("minde-c", "minde-j", "rfmi") else {}
    return miest.estimator(name, **QUICK, **extra, **kw)


def test_available_lists_the_six_estimators():
    assert sorted(miest.available()) == sorted(NAMES)
    assert all(isinstance(text, str) and text for text in miest.available().values())


def test_unknown_estimator_and_hyperparameter_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown estimator 'ksg'.*available"):
        miest.estimator("ksg")
    with pytest.raises(TypeError, match=r"rfmi.*learning_rate"):
        miest.estimator("rfmi", learning_rate=0.1)
    with pytest.raises(ValueError, match="time sampler"):
        miest.estimator("minde-c", time_sampler="beta")
    with pytest.raises(ValueError, match="steps must be a positive"):
        miest.estimator("mine", steps=0)
    with pytest.raises(ValueError, match="condition_width must be None or a positive"):
        miest.estimator("rfmi", condition_width=0)


@pytest.mark.parametrize("name", NAMES)
def test_interface_round_trip(name, sample):
    x, y = sample
    est = quick(name, seed=1)
    assert est.fit(x, y) is est
    values = est.pointwise()
    assert values.shape == (90,) and np.isfinite(values).all()
    # the estimate is the mean of the values in the estimator's form (diffusion/flow: its
    # ``form``; per-sample values default to MMSE-gap), the critics' one form otherwise
    form = getattr(est, "form", None)
    assert est.mutual_information() == pytest.approx(est.pointwise(form=form).mean())
    new = est.pointwise(x[:7], y[:7])
    assert new.shape == (7,)
    result = est.estimate_with_info(x, y)
    assert result.mi_estimate == pytest.approx(est.mutual_information())
    info = result.additional_information
    assert info["n_test"] == 90 and info["training"]["steps"] and result.time_in_seconds > 0
    assert isinstance(info["warnings"], list)
    assert est.parameters()["seed"] == 1 and est.parameters().dict()["steps"] == 60


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_number_other_seed_other_number(name, sample):
    x, y = sample
    a, b = quick(name, seed=3).estimate(x, y), quick(name, seed=3).estimate(x, y)
    assert a == b
    assert quick(name, seed=4).estimate(x, y) != a


def test_accepts_torch_one_dimensional_and_integer_input(sample):
    x, y = sample
    est = quick("mine")
    from_numpy = est.estimate(x[:, 0], y[:, 0])
    from_torch = est.estimate(torch.tensor(x[:, 0]), torch.tensor(y[:, 0]))
    assert from_numpy == from_torch
    assert np.isfinite(est.estimate(np.arange(300), np.arange(300) % 7 + np.arange(300)))


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (np.zeros((100, 2)) + np.arange(2), RNG.random((100, 1)), ValueError, "constant columns"),
        (RNG.random((100, 2)), RNG.random((90, 1)), ValueError, "x has 100 rows, y has 90"),
        (RNG.random((10, 2)), RNG.random((10, 1)), ValueError, "too few samples"),
        (np.full((100, 2), np.nan), RNG.random((100, 1)), ValueError, "NaN/inf"),
        (
            RNG.random((100, 2)),
            np.r_[RNG.random(99), np.inf],
            ValueError,
            r"y has 1 NaN/inf.*\[99\]",
        ),
        (np.array([["a", "b"]] * 100), RNG.random((100, 1)), TypeError, "real numbers"),
        (RNG.random((100, 2)) > 0.5, RNG.random((100, 1)), TypeError, "dtype bool"),
        (RNG.random((100, 2, 2)), RNG.random((100, 1)), ValueError, r"shape \(n,\) or \(n, d\)"),
        (RNG.random((100, 0)), RNG.random((100, 1)), ValueError, "no columns"),
    ],
)
def test_bad_input_is_named(x, y, error, match):
    with pytest.raises(error, match=match):
        quick("infonce").fit(x, y)


def test_using_before_fit_and_mismatched_columns_are_clear(sample):
    x, y = sample
    with pytest.raises(RuntimeError, match="not fitted"):
        quick("rfmi").pointwise()
    est = quick("rfmi").fit(x, y)
    with pytest.raises(ValueError, match="expected 2 columns, got 3"):
        est.pointwise(RNG.random((5, 3)), y[:5])
    with pytest.raises(ValueError, match="both x and y"):
        est.pointwise(x[:5])
    with pytest.raises(ValueError, match="form"):
        est.pointwise(form="dv")


def test_diffusion_estimators_offer_every_pointwise_form(sample):
    x, y = sample
    est = quick("minde-c").fit(x, y)
    result = est.integrate(x[:50], y[:50])
    assert np.array_equal(est.pointwise(x[:50], y[:50]), result.mmse_gap)  # per-sample default
    assert np.array_equal(est.pointwise(x[:50], y[:50], form="cross"), result.cross)
    assert result.mi() == pytest.approx(result.cross.mean())  # the estimate: the form of `form`
    assert np.array_equal(est.pointwise(x[:50], y[:50], form="orthogonal"), result.orthogonal)
    assert np.array_equal(est.pointwise(x[:50], y[:50], form="mmse-gap"), result.mmse_gap)
    assert np.array_equal(est.integrate().orthogonal, est.pointwise(form="orthogonal"))
    assert (result.orthogonal >= 0).all() and result.orthogonal_se.shape == (50,)
    with pytest.raises(ValueError, match="one point-wise form"):
        quick("mine").fit(x, y).pointwise(form="mmse-gap")


@pytest.mark.parametrize("name", ["minde-c", "rfmi"])
def test_shuffled_held_out_pairs_are_a_same_fit_control(name):
    pair = GaussianPair.from_correlations([0.8], 2, 1, seed=0)  # 0.51 nats
    options = QUICK | {"steps": 400, "eval_every": 100, "hidden": 32, "n_draws": 2}
    est = miest.estimator(name, **options).fit(*pair.sample(1000, seed=1))
    real, control = est.integrate(), est.integrate(shuffled=True)
    assert control.cross.shape == real.cross.shape
    assert np.array_equal(est.integrate(shuffled=True).cross, control.cross)  # seeded
    assert real.mi("cross") > 0.3 and abs(control.mi("cross")) < 0.3 * real.mi("cross")


def test_miest_pointwise_dispatches_and_rejects_unknown_models(sample):
    x, y = sample
    est = quick("nwj").fit(x, y)
    assert np.array_equal(miest.pointwise(est, x[:5], y[:5]), est.pointwise(x[:5], y[:5]))
    with pytest.raises(TypeError, match="no point-wise MI handler for str"):
        miest.pointwise("model-dir", "a prompt", None)


def test_runs_unchanged_inside_bmis_own_workflow(tmp_path, sample):
    bmi = pytest.importorskip("bmi")
    from bmi.benchmark.result import run_estimator

    x, y = sample
    path = tmp_path / "sample.csv"
    bmi.utils.save_sample(path, x, y)
    result = run_estimator(quick("rfmi"), "miest-rfmi", path, task_id="gauss", seed=0)
    assert result.success, result.additional_information.get("error")
    assert np.isfinite(result.mi_estimate)
    assert "training" in result.additional_information


def test_linearly_dependent_columns_are_dropped_before_training(sample):
    from miest.data import IndependentColumns

    x, y = sample
    noise = np.random.default_rng(1).standard_normal((len(x), 1))
    redundant = np.hstack([x, x, x @ np.array([[1.0], [-2.0]]), noise])
    kept = IndependentColumns.fit(redundant.astype(np.float32)).columns
    assert len(kept) == 3 and 5 in kept  # rank 3: two columns spanning x, and the noise
    assert len(IndependentColumns.fit(np.hstack([x, noise])).columns) == 3  # full rank: all kept
    assert len(IndependentColumns.fit(redundant[:8]).columns) == 6  # too few rows to tell
    # duplicated columns reach the network as the original ones: the same estimate
    est = quick("rfmi", seed=3)
    assert est.estimate(np.hstack([x, x]), y) == quick("rfmi", seed=3).estimate(x, y)
    with pytest.raises(ValueError, match="expected 4 columns"):
        est.mutual_information(x, y)


def _integral(orthogonal, mmse_gap):
    from miest.integrate import PointwiseMI

    noise = np.random.default_rng(0).normal(0, 0.5, 2000)
    o, m = orthogonal + noise, mmse_gap + noise
    se = np.full(2000, 0.1)
    return PointwiseMI(o, m, (o + m) / 2, se, se, se, n_draws=16)


def test_untrustworthy_fits_say_so():
    from miest.estimators.denoising import form_warnings
    from miest.interface import fit_warnings

    assert form_warnings(_integral(1.1, 0.9)) == []  # forms agree within their spread
    assert form_warnings(_integral(1.0, 0.6)) == []  # apart, but by less than 1.5 x the MI
    warning = form_warnings(_integral(7.3, -1.7))  # the v-parametrised RFMI on image pairs
    assert len(warning) == 1 and "forms disagree: orthogonal 7.29" in warning[0]
    assert fit_warnings(5.0, 3000) == []
    assert "exceeds log(n) = 8.01" in fit_warnings(170.0, 3000)[0]


def test_preconditioned_bottlenecked_fit_runs_and_repeats(sample):
    x, y = sample
    options = {"parametrisation": "preconditioned", "condition_width": 1, "condition": "x"}
    est = quick("rfmi", seed=2, **options).fit(x, y)
    assert est.net_.embed is not None and est.net_.dim_y == 1  # x (2 columns) enters as 1
    assert est.mutual_information() == quick("rfmi", seed=2, **options).estimate(x, y)
    assert quick("minde-j", parametrisation="preconditioned").estimate(x, y) > -1


def test_condition_encoder_conditions_on_an_infonce_embedding(sample):
    x, y = sample
    est = quick("rfmi", condition_encoder="infonce").fit(x, y)
    assert est.encoder_(torch.zeros(3, 1)).shape == (3, 32)  # y is 1-D: 32 features
    assert np.isfinite(est.pointwise(x[:5], y[:5])).all()
    with pytest.raises(ValueError, match="condition_encoder must be None or 'infonce'"):
        miest.estimator("minde-c", condition_encoder="pca")


def test_convolutional_denoiser_fits_image_rows_and_rejects_other_shapes():
    x, y = GaussianPair.from_correlations([0.8] * 4, 4, 4, seed=0).sample(300, seed=0)
    est = quick("rfmi", network="conv", seed=3).fit(x, y)  # rows of 4 values: 2x2 images
    assert isinstance(est.net_, ConvConditionalDenoiser)
    assert est.net_.image_shape == (1, 2, 2)
    assert est.mutual_information() == quick("rfmi", network="conv", seed=3).estimate(x, y)
    with pytest.raises(ValueError, match="not a square image"):
        quick("rfmi", network="conv").fit(x[:, :3], y)
    with pytest.raises(ValueError, match=r"image_shape \(3, 3\) does not hold rows of 4"):
        quick("rfmi", network="conv", image_shape=(3, 3)).fit(x, y)
    with pytest.raises(ValueError, match="network must be 'mlp' or 'conv'"):
        miest.estimator("rfmi", network="unet")


def test_distilled_unconditional_fits_repeats_and_rejects_unknown_targets(sample):
    x, y = sample
    est = quick("rfmi", unconditional_target="conditional", seed=4).fit(x, y)
    assert np.isfinite(est.pointwise()).all()
    repeat = quick("rfmi", unconditional_target="conditional", seed=4).estimate(x, y)
    assert est.mutual_information() == repeat
    assert repeat != quick("rfmi", seed=4).estimate(x, y)  # a different training loss
    with pytest.raises(ValueError, match="unconditional_target must be 'data' or 'conditional'"):
        miest.estimator("minde-c", unconditional_target="marginal")


def test_unconditional_weight_changes_the_fit_and_must_be_positive(sample):
    x, y = sample
    weighted = quick("minde-c", unconditional_weight=2.0, seed=4).estimate(x, y)
    assert weighted == quick("minde-c", unconditional_weight=2.0, seed=4).estimate(x, y)
    assert weighted != quick("minde-c", seed=4).estimate(x, y)
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="unconditional_weight must be positive"):
            miest.estimator("rfmi", unconditional_weight=bad)


def test_weight_decay_shrinks_the_weights_and_must_be_non_negative(sample):
    x, y = sample
    plain = quick("infonce", seed=4).fit(x, y)
    decayed = quick("infonce", weight_decay=1.0, seed=4).fit(x, y)
    assert decayed.estimate(x, y) == quick("infonce", weight_decay=1.0, seed=4).estimate(x, y)

    def norm(est):
        return float(sum(p.detach().pow(2).sum() for p in est.net_.parameters()))

    assert norm(decayed) < norm(plain)
    with pytest.raises(ValueError, match="weight_decay must be non-negative"):
        miest.estimator("mine", weight_decay=-0.1)


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_condition_decay_shrinks_the_weights_reading_the_condition(network):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = x + 0.5 * rng.normal(size=(400, 4))
    options = {"network": network, "steps": 200, "eval_every": 50, "seed": 1}
    if network == "conv":
        options["image_shape"] = (1, 2, 2)
    plain = miest.estimator("minde-c", **options).fit(x, y)
    decayed = miest.estimator("minde-c", condition_decay=50.0, **options).fit(x, y)
    # the same seed draws the same batches: what differs is the condition's weights
    assert decayed.net_.condition_weights().norm() < 0.5 * plain.net_.condition_weights().norm()
    with pytest.raises(ValueError, match="condition_decay must be non-negative"):
        miest.estimator("rfmi", condition_decay=-1.0)
