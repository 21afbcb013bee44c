"""Peer-library adapters (``benchmarks.peers``) on a Gaussian pair with known MI.

Each test skips unless its library is installed (``pip install miest[peers]``). Training is
cut short, so the accuracy tolerances are loose: they catch a broken adapter (a wrong split,
no training), not a weak estimator. Errors measured with these settings on seeds 0-2:
torch-mist InfoNCE -0.07 to -0.08 nats, SMILE -0.19 to +0.08; latentmi -0.09 to -0.20;
diffusion-mi (1,500 steps) MINDE-C -0.03 to -0.13, MMG orthogonal -0.18 to +0.04; gmm-mi
(1-D pairs only, 5 bootstrap fits) is checked on a 1 x 1 Gaussian.
Units (latentmi reports bits) are checked exactly, without training.
"""

import importlib.util
import math
import sys

import numpy as np
import pytest
import torch

from benchmarks import peers
from miest.gaussian import GaussianPair

PAIR = GaussianPair.from_correlations([0.8, 0.5], 2, 2, seed=0)
TRUTH = PAIR.mutual_information()  # 0.655 nats


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    return PAIR.sample(2000, seed=1)


@pytest.fixture(scope="module")
def few(samples) -> tuple[np.ndarray, np.ndarray]:
    return samples[0][:600], samples[1][:600]


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["infonce", "smile"])
def test_torch_mist_close_to_truth(estimator, samples):
    pytest.importorskip("torch_mist")
    build = peers.torch_mist(estimator)
    estimate = build(0, max_iterations=300, early_stopping=False).estimate(*samples)
    assert np.isfinite(estimate)
    assert abs(estimate - TRUTH) <= 0.3, (estimate, TRUTH)


@pytest.mark.parametrize("estimator", ["infonce", "smile"])
def test_torch_mist_same_seed_same_estimate(estimator, few):
    pytest.importorskip("torch_mist")
    build = peers.torch_mist(estimator)
    first = build(3, max_iterations=30).estimate(*few)
    assert build(3, max_iterations=30).estimate(*few) == first


@pytest.mark.slow
def test_latentmi_close_to_truth(samples):
    pytest.importorskip("latentmi")
    estimate = peers.latentmi(0, epochs=15).estimate(*samples)
    assert np.isfinite(estimate)
    assert abs(estimate - TRUTH) <= 0.25, (estimate, TRUTH)


def test_latentmi_converts_bits_to_nats(monkeypatch, few):
    lmi = pytest.importorskip("latentmi.lmi")
    pmi_bits = np.array([1.0, np.nan, 3.0])
    monkeypatch.setattr(lmi, "estimate", lambda x, y, **options: (pmi_bits, None, None))
    assert peers.latentmi(0).estimate(*few) == pytest.approx(2 * math.log(2))


def test_latentmi_same_seed_same_estimate(few):
    pytest.importorskip("latentmi")
    first = peers.latentmi(3, epochs=2).estimate(*few)
    assert peers.latentmi(3, epochs=2).estimate(*few) == first


def test_adapters_restore_global_rngs(few):
    pytest.importorskip("torch_mist")
    numpy_before = np.random.get_state()[1].copy()  # noqa: NPY002
    torch_before = torch.get_rng_state()
    peers.torch_mist("smile")(0, max_iterations=5).estimate(*few)
    assert np.array_equal(np.random.get_state()[1], numpy_before)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_before)


def test_torch_mist_checkpoints_in_a_private_folder(few, monkeypatch):
    """torch-mist names its checkpoint the same in every process; side-by-side jobs must
    not share the folder (they deleted each other's files in the v1 run)."""
    torch_mist = pytest.importorskip("torch_mist")
    import tempfile

    seen = []
    original = torch_mist.estimate_mi

    def spy(*args, **kwargs):
        seen.append(tempfile.gettempdir())
        return original(*args, **kwargs)

    monkeypatch.setattr(torch_mist, "estimate_mi", spy)
    shared = tempfile.gettempdir()
    peers.torch_mist("smile")(0, max_iterations=5).estimate(*few)
    assert seen and seen[0] != shared
    assert tempfile.gettempdir() == shared


def needs_diffusion_mi() -> None:
    """Skip unless diffusion-mi and Lightning are installed (``import dmi`` needs the
    adapter's torchvision stand-in, so only the package's presence is checked)."""
    pytest.importorskip("lightning")
    if importlib.util.find_spec("dmi") is None:
        pytest.skip("diffusion-mi is not installed (make setup installs it)")


@pytest.mark.slow
@pytest.mark.parametrize(("estimator", "options"), [("minde", {}), ("mmg", {"form": "orthogonal"})])
def test_diffusion_mi_close_to_truth(estimator, options, samples):
    needs_diffusion_mi()
    estimate = peers.diffusion_mi(estimator)(0, steps=1500, **options).estimate(*samples)
    assert np.isfinite(estimate)
    assert abs(estimate - TRUTH) <= 0.3, (estimate, TRUTH)


@pytest.mark.parametrize(("estimator", "options"), [("minde", {"type": "j"}), ("mmg", {})])
def test_diffusion_mi_same_seed_same_estimate(estimator, options, few):
    needs_diffusion_mi()
    build = peers.diffusion_mi(estimator, **options)
    first = build(3, steps=10).estimate(*few)
    assert np.isfinite(first)
    assert build(3, steps=10).estimate(*few) == first


def test_diffusion_mi_imports_without_leaving_a_torchvision_stand_in():
    needs_diffusion_mi()
    had_torchvision = "torchvision" in sys.modules
    neural = peers._import_diffusion_mi()
    assert hasattr(neural, "MINDEEstimator") and hasattr(neural, "MMGEstimator")
    assert ("torchvision" in sys.modules) == had_torchvision


def test_diffusion_mi_rejects_unknown_names(few):
    with pytest.raises(ValueError, match="'minde' or 'mmg'"):
        peers.diffusion_mi("mind")
    needs_diffusion_mi()
    with pytest.raises(ValueError, match="form must be"):
        peers.diffusion_mi("mmg", form="cross")(0, steps=2).estimate(*few)


def test_gmm_mi_on_one_dimensional_pairs_and_a_clear_error_otherwise():
    pytest.importorskip("gmm_mi")
    pair = GaussianPair.from_correlations([0.75], 1, 1, seed=0)  # 0.413 nats
    x, y = pair.sample(2000, seed=2)
    build = peers.gmm_mi
    estimate = build(0, n_bootstrap=5).estimate(x, y)
    assert abs(estimate - pair.mutual_information()) <= 0.05, estimate
    assert build(0, n_bootstrap=5).estimate(x, y) == estimate  # the same seed, the same rows
    with pytest.raises(ValueError, match="one-dimensional variables only"):
        build(0).estimate(*PAIR.sample(100, seed=0))
