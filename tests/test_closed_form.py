"""The tests that decide: exact Gaussian denoisers through the integrator reproduce exact MI/PMI.

No training here: these tests decide whether constants, weights, conversions and
samplers are right.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.integrate import quad

from miest.gaussian import GaussianPair
from miest.integrate import FORMS, conditional_predict, integrand_profile, pointwise_mi
from miest.paths import (
    PARAMETRISATIONS,
    LinearFlowPath,
    VPPath,
    from_eps,
    loss_weight,
    to_eps,
    training_target,
)
from miest.timesamplers import LambertW, make_time_sampler

SAMPLERS = ["uniform", "logsnr-uniform", "logistic", "logistic-adaptive"]
CASES = [  # (path, parametrisation, sampler)
    *[(VPPath(), p, s) for p in ("eps", "v", "velocity") for s in SAMPLERS],
    *[(LinearFlowPath(), p, s) for p in ("velocity", "eps") for s in [*SAMPLERS, "lambert-w"]],
    *[(path, "preconditioned", "uniform") for path in (VPPath(), LinearFlowPath())],
]


@st.composite
def gaussian_pairs(draw):
    dim_x = draw(st.integers(1, 4))
    dim_y = draw(st.integers(1, 4))
    k = draw(st.integers(1, min(dim_x, dim_y)))
    correlations = draw(st.lists(st.floats(-0.95, 0.95), min_size=k, max_size=k))
    return GaussianPair.from_correlations(correlations, dim_x, dim_y, seed=draw(st.integers(0, 99)))


def _integrate(pair, path, parametrisation, sampler, n=1500, n_draws=16, seed=0):
    x, y = pair.sample(n, seed=seed)
    predict = conditional_predict(pair.denoiser(path, parametrisation), torch.tensor(y))
    result = pointwise_mi(
        predict,
        torch.tensor(x),
        path,
        parametrisation,
        make_time_sampler(sampler),
        n_draws=n_draws,
        generator=torch.Generator().manual_seed(seed),
    )
    return result, x, y


@pytest.mark.parametrize(("path", "parametrisation", "sampler"), CASES, ids=str)
@given(pair=gaussian_pairs())
def test_exact_denoisers_give_exact_mi(path, parametrisation, sampler, pair):
    result, _, _ = _integrate(pair, path, parametrisation, sampler)
    truth = pair.mutual_information()
    for form in FORMS:
        # Monte Carlo error (data and draws) plus a small allowance for truncation bias
        tolerance = 5 * result.mi_standard_error(form) + 0.01
        assert abs(result.mi(form) - truth) < tolerance, (form, result.mi(form), truth)


@pytest.mark.parametrize("path", [VPPath(), LinearFlowPath()], ids=str)
def test_mmse_gap_form_is_the_exact_pmi_per_sample(path):
    pair = GaussianPair.from_correlations([0.9, 0.6], 3, 2, seed=3)
    param = "eps" if isinstance(path, VPPath) else "velocity"
    result, x, y = _integrate(pair, path, param, "logsnr-uniform", n=300, n_draws=512)
    exact = pair.pmi(x, y)
    assert np.corrcoef(result.mmse_gap, exact)[0, 1] > 0.95
    # the orthogonal form is non-negative per sample; it matches the PMI only in mean
    assert (result.orthogonal >= 0).all()
    assert (
        abs(result.orthogonal.mean() - exact.mean())
        < 5 * result.mi_standard_error("orthogonal") + 0.01
    )


def test_cross_form_cancels_a_spurious_dependence_on_y():
    """A conditional model that uses y although y carries nothing (independent pair):
    its error ``delta(y)`` adds ||delta||^2 to the orthogonal form, subtracts it from the
    MMSE-gap form, and leaves the cross form at the true MI, 0."""
    pair = GaussianPair.from_correlations([0.0], 3, 2, seed=0)
    x, y = pair.sample(2000, seed=1)
    path = VPPath()
    exact = pair.denoiser(path, "eps")
    direction = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def overfit(x_t, t, condition):
        output = exact(x_t, t, None)
        return output if condition is None else output + 0.3 * condition @ direction.T

    result = pointwise_mi(
        conditional_predict(overfit, torch.tensor(y)),
        torch.tensor(x),
        path,
        "eps",
        make_time_sampler("logsnr-uniform"),
        n_draws=16,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.mi("orthogonal") > 10 * result.mi_standard_error("orthogonal")
    assert result.mi("mmse-gap") < -10 * result.mi_standard_error("mmse-gap")
    assert abs(result.mi("cross")) < 4 * result.mi_standard_error("cross") + 0.01
    np.testing.assert_allclose(result.cross, (result.orthogonal + result.mmse_gap) / 2)


@pytest.mark.parametrize("path", [VPPath(), LinearFlowPath()], ids=str)
def test_integrand_profile_of_exact_denoisers_is_the_i_mmse_curve(path):
    """Per log-SNR, every form of the exact Gaussian predictions averages to
    ``1/2 g (mmse_x(g) - mmse_x|y(g))`` with ``g = e^lam`` and
    ``mmse(g) = tr((C^-1 + g I)^-1)`` (I-MMSE), whatever the path."""
    pair = GaussianPair.from_correlations([0.9, 0.5], 3, 2, seed=4)
    x, y = pair.sample(4000, seed=0)
    param = "eps" if isinstance(path, VPPath) else "velocity"
    lam = torch.tensor([-4.0, -1.0, 0.0, 2.0, 5.0], dtype=torch.float64)
    profile = integrand_profile(
        conditional_predict(pair.denoiser(path, param), torch.tensor(y)),
        torch.tensor(x),
        path,
        param,
        lam,
        n_draws=4,
        generator=torch.Generator().manual_seed(0),
    )
    sxx = pair.cov[: pair.dim_x, : pair.dim_x]

    def mmse(cov, g):
        return np.trace(np.linalg.inv(np.linalg.inv(cov) + g * np.eye(len(cov))))

    exact = [0.5 * g * (mmse(sxx, g) - mmse(pair.x_given_y_cov, g)) for g in np.exp(lam.numpy())]
    np.testing.assert_allclose(profile["log_snr"], lam.numpy())
    for form in FORMS:
        np.testing.assert_allclose(profile[form], exact, rtol=0.1, atol=0.005, err_msg=form)


@pytest.mark.parametrize("reference", ["marginal", "conditional"])
def test_joint_predictions_give_exact_mi_and_pmi(reference):
    pair = GaussianPair.from_correlations([0.85, 0.4], 2, 3, seed=1)
    x, y = pair.sample(400, seed=0)
    z = np.concatenate([x, y], axis=1)
    path = VPPath()
    result = pointwise_mi(
        pair.joint_predict(path, "eps", reference, z),
        torch.tensor(z),
        path,
        "eps",
        make_time_sampler("logsnr-uniform"),
        n_draws=256,
        generator=torch.Generator().manual_seed(0),
    )
    truth = pair.mutual_information()
    for form in FORMS:
        assert abs(result.mi(form) - truth) < 5 * result.mi_standard_error(form) + 0.01
    assert np.corrcoef(result.mmse_gap, pair.pmi(x, y))[0, 1] > 0.95


def test_gaussian_pmi_averages_to_mi_and_mi_is_invariant_to_mixing():
    canonical = GaussianPair.from_correlations([0.8], 1, 1, seed=0)
    assert canonical.mutual_information() == pytest.approx(-0.5 * np.log(1 - 0.8**2))
    mixed = GaussianPair.from_correlations([0.8, 0.3], 3, 2, seed=5)
    assert mixed.mutual_information() == pytest.approx(-0.5 * np.log((1 - 0.64) * (1 - 0.09)))
    x, y = mixed.sample(200_000, seed=1)
    assert mixed.pmi(x, y).mean() == pytest.approx(mixed.mutual_information(), abs=0.01)


@pytest.mark.parametrize("path", [VPPath(), LinearFlowPath()], ids=str)
@pytest.mark.parametrize("parametrisation", PARAMETRISATIONS)
def test_parametrisation_conversions_round_trip(path, parametrisation):
    g = torch.Generator().manual_seed(0)
    x, eps = (
        torch.randn(64, 3, generator=g, dtype=torch.float64),
        torch.randn(64, 3, generator=g, dtype=torch.float64),
    )
    t = 0.02 + 0.96 * torch.rand(64, generator=g, dtype=torch.float64)
    x_t = path.noisy(x, eps, t)
    target = training_target(x, eps, t, path, parametrisation)
    assert torch.allclose(to_eps(target, x_t, t, path, parametrisation), eps, atol=1e-8)
    assert torch.allclose(from_eps(eps, x_t, t, path, parametrisation), target, atol=1e-8)


@pytest.mark.parametrize("path", [VPPath(), LinearFlowPath()], ids=str)
def test_preconditioned_loss_is_the_noise_loss_and_its_output_fades_at_both_ends(path):
    g = torch.Generator().manual_seed(1)
    x, eps, output = (torch.randn(64, 3, generator=g, dtype=torch.float64) for _ in range(3))
    t = 0.02 + 0.96 * torch.rand(64, generator=g, dtype=torch.float64)
    x_t = path.noisy(x, eps, t)
    target = training_target(x, eps, t, path, "preconditioned")
    weighted = (output - target).pow(2).sum(1) * loss_weight(t, path, "preconditioned")
    noise = (to_eps(output, x_t, t, path, "preconditioned") - eps).pow(2).sum(1)
    assert torch.allclose(weighted, noise, atol=1e-8)
    assert (loss_weight(t, path, "v") == 1).all()
    ends = torch.tensor([1e-4, 1 - 1e-4], dtype=torch.float64)  # an output's weight on eps
    assert (loss_weight(ends, path, "preconditioned").sqrt() < 0.02).all()


def test_flow_velocity_is_data_minus_noise():
    g = torch.Generator().manual_seed(0)
    x1, x0, t = (
        torch.randn(8, 2, generator=g),
        torch.randn(8, 2, generator=g),
        torch.rand(8, generator=g),
    )
    assert torch.allclose(training_target(x1, x0, t, LinearFlowPath(), "velocity"), x1 - x0)


@pytest.mark.parametrize("path", [VPPath(), LinearFlowPath()], ids=str)
def test_log_snr_inverse_and_derivative(path):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    assert torch.allclose(path.t_of_log_snr(path.log_snr(t)), t, atol=1e-9)
    numeric = (path.log_snr(t + 1e-6) - path.log_snr(t - 1e-6)) / 2e-6
    assert torch.allclose(path.dlog_snr_dt(t), numeric, rtol=1e-5)


def test_vp_importance_normaliser_matches_quadrature():
    """MINDE's q(t) ∝ beta(t)/sigma_t^2 on [1e-3, 1] (beta 0.1 -> 20): the normaliser is the
    log-SNR range. (Quadrature gives 19.165, not the 20.26 once quoted.)"""
    path = VPPath()
    beta = lambda t: 0.1 + 19.9 * t  # noqa: E731
    sigma2 = lambda t: 1 - np.exp(-(0.1 * t + 0.5 * 19.9 * t**2))  # noqa: E731
    normaliser = quad(lambda t: beta(t) / sigma2(t), 1e-3, 1)[0]
    lam = path.log_snr(torch.tensor([1e-3, 1.0], dtype=torch.float64))
    assert float(lam[0] - lam[1]) == pytest.approx(normaliser, rel=1e-8)
    assert normaliser == pytest.approx(19.165, abs=1e-3)


@pytest.mark.parametrize("t_eps", [1e-1, 1e-3, 1e-5])
def test_lambert_w_inverse_cdf_endpoints_and_ks(t_eps):
    sampler = LambertW(t_eps)
    assert sampler.inverse_cdf(np.array([0.0]))[0] == pytest.approx(0.0, abs=1e-5)
    assert sampler.inverse_cdf(np.array([1.0]))[0] == pytest.approx(1 - t_eps, rel=1e-10)
    r = np.linspace(0.01, 0.99, 99)
    assert np.allclose(sampler.cdf(sampler.inverse_cdf(r)), r, atol=1e-10)
    t, _ = sampler.sample(LinearFlowPath(), 20_000, torch.Generator().manual_seed(0))
    assert not torch.isnan(t).any()
    assert stats.kstest(t.numpy(), sampler.cdf).pvalue > 1e-3


def test_lambert_w_weight_is_constant_on_the_velocity_gap():
    """With q ∝ t/(1-t), the weight on ||u_c - u_u||^2 = t^2-scaled eps gap is the normaliser Z."""
    sampler = LambertW(1e-3)
    t, w = sampler.sample(LinearFlowPath(), 1000, torch.Generator().manual_seed(1))
    assert torch.allclose(w * t**2, torch.full_like(t, sampler.normaliser), rtol=1e-9)


def test_samplers_reject_bad_arguments():
    with pytest.raises(ValueError, match="unknown time sampler"):
        make_time_sampler("gaussian")
    with pytest.raises(ValueError, match="data at t = 1"):
        LambertW().sample(VPPath(), 4)
    with pytest.raises(ValueError, match="t_eps"):
        LambertW(0.0)
