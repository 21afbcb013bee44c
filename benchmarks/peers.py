"""Thin adapters for peer MI libraries from PyPI: ``torch-mist``, ``latentmi``, ``diffusion-mi``,
``gmm-mi``.

Each builder takes ``(seed, **options)`` like the entries of ``benchmarks.estimators.BUILDERS``
and returns an object with ``estimate(x, y) -> float`` in nats. The peer library is imported
inside the adapter, so this module imports without it (``pip install miest[peers]``).

Every call seeds torch's and numpy's global generators (restoring both afterwards) and
swallows the libraries' own printing, so runs are repeatable and quiet.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import sys
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from miest.data import Standardizer, split


@contextlib.contextmanager
def _seeded_and_quiet(seed: int) -> Iterator[None]:
    """Seed torch and numpy's global RNGs, restore them after, and drop anything printed.

    The peers draw from numpy's legacy global generator, so that is the one to seed.
    """
    numpy_state = np.random.get_state()  # noqa: NPY002
    np.random.seed(seed)  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)  # noqa: NPY002


def _numpy(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


@dataclass
class TorchMist:
    """``torch_mist.estimate_mi`` fitted on a seeded split, evaluated on the held-out rows.

    ``options`` go to ``estimate_mi`` unchanged. Its own defaults apply (batch 128, Adam at
    5e-4, at most 5,000 iterations, early stopping on a 10% validation split of the training
    rows, patience 2% of the epochs), except the critic: ``hidden_dims=[128, 64]`` as in its
    command line's config. (With the factories' ``[128]`` the InfoNCE critic is bilinear in
    ``x`` and ``y`` and read 0.34 nats for a truth of 0.59.)
    """

    estimator: str
    seed: int
    test_size: float
    options: dict[str, Any]

    def estimate(self, x: np.ndarray, y: np.ndarray) -> float:
        from torch_mist import estimate_mi

        x, y = _numpy(x), _numpy(y)  # torch-mist indexes jax arrays (bmi's samples) row by row
        train, test = split(len(x), self.test_size, self.seed)
        settings = {"hidden_dims": [128, 64], "max_iterations": 5000} | self.options
        # torch-mist checkpoints to gettempdir()/model_<iteration>_<same text>.pyt, so two
        # jobs running side by side overwrite and delete each other's file: give each its own
        with _seeded_and_quiet(self.seed), _private_tempdir():
            value = estimate_mi(
                data=(x[train], y[train]),
                test_data=(x[test], y[test]),
                estimator=self.estimator,
                verbose=False,
                logger=False,
                **settings,
            )
        return float(value)


@contextlib.contextmanager
def _private_tempdir() -> Iterator[None]:
    """Point ``tempfile.gettempdir()`` at a fresh folder, removed afterwards."""
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory() as folder:
        tempfile.tempdir = folder
        try:
            yield
        finally:
            tempfile.tempdir = previous


def torch_mist(estimator: str) -> Callable[..., TorchMist]:
    """A builder for torch-mist's ``estimator`` (a factory name: "infonce", "smile", ...)."""

    def build(seed: int, test_size: float = 0.2, **options: Any) -> TorchMist:
        return TorchMist(estimator, seed, test_size, options)

    return build


@dataclass
class LatentMI:
    """``latentmi.lmi.estimate``: KSG on learned 8-d latents of the held-out half.

    It returns point-wise values in bits (KSG with ``base=2``), NaN on the training half;
    their ``nanmean`` times ln 2 is the estimate in nats. ``options`` go to ``lmi.estimate``
    unchanged. Its defaults but one: 30 epochs instead of 300. Each epoch trains six
    1,024-wide networks: on multinormal-dense-5-5-0.5 (n = 5,000, one CPU thread) 300 epochs
    took 520 s for 0.593 nats, 30 epochs 37 s for 0.579 (truth 0.593).
    """

    seed: int
    options: dict[str, Any]

    def estimate(self, x: np.ndarray, y: np.ndarray) -> float:
        from latentmi import lmi

        x, y = _numpy(x), _numpy(y)
        with _seeded_and_quiet(self.seed):
            pmi_bits, _, _ = lmi.estimate(x, y, **({"epochs": 30, "device": "cpu"} | self.options))
        return float(np.nanmean(pmi_bits) * math.log(2))


def latentmi(seed: int, **options: Any) -> LatentMI:
    """A builder for latentmi's LMI estimator."""
    return LatentMI(seed, options)


@dataclass
class DiffusionMI:
    """MINDE or MMG from ``diffusion-mi`` (its authors' package), on a seeded split.

    Trained on the training rows for at most ``steps`` optimiser steps (miest's own budget),
    evaluated on the held-out rows. Settings are those of the package's own examples
    (learning rate 1e-4; batch 256 for MINDE, 512 for MMG), without early stopping;
    ``options`` go to the estimator's constructor and override them. Details of 0.1.0:

    - MINDE ignores ``max_n_steps`` (Lightning then trains 1,000 epochs), so the budget is
      passed as the whole number of epochs nearest ``steps``; it standardises both
      variables itself. ``type="c"`` (default) or ``"j"`` picks conditional or joint.
    - MMG needs validation data in ``fit`` only to log a loss each epoch: it gets 256
      held-out rows, which change nothing but the cost. It does not standardise, so the
      adapter standardises with the training rows' statistics, as the package's example
      does. ``form="gap"`` (what its ``estimate`` returns: the MMSE gap between the
      unconditional and conditional denoisers) or ``"orthogonal"`` (the squared
      difference of the two denoisers, which it computes and drops).
    """

    estimator: str
    seed: int
    test_size: float
    steps: int
    options: dict[str, Any]

    def estimate(self, x: np.ndarray, y: np.ndarray) -> float:
        x, y = _numpy(x), _numpy(y)
        train, test = split(len(x), self.test_size, self.seed)
        with _seeded_and_quiet(self.seed), _lightning_quiet():
            neural = _import_diffusion_mi()
            if self.estimator == "minde":
                return self._minde(neural, x[train], y[train], x[test], y[test])
            return self._mmg(neural, x[train], y[train], x[test], y[test])

    def _minde(self, neural, x, y, x_test, y_test) -> float:
        settings = {"learning_rate": 1e-4, "batch_size": 256} | self.options
        epochs = max(1, round(self.steps / math.ceil(len(x) / settings["batch_size"])))
        model = neural.MINDEEstimator(max_epochs=epochs, seed=self.seed, **settings)
        model.fit(x, y)
        return float(model.estimate(x_test, y_test))

    def _mmg(self, neural, x, y, x_test, y_test) -> float:
        settings = {"learning_rate": 1e-4, "batch_size": 512} | self.options
        form = settings.pop("form", "gap")
        if form not in ("gap", "orthogonal"):
            raise ValueError(f"MMG form must be 'gap' or 'orthogonal', got {form!r}")
        scale_x, scale_y = Standardizer.fit(x), Standardizer.fit(y)
        x, x_test, y, y_test = scale_x(x), scale_x(x_test), scale_y(y), scale_y(y_test)
        model = neural.MMGEstimator(max_n_steps=self.steps, seed=self.seed, **settings)
        model.fit(x, y, X_val=x_test[:256], Y_val=y_test[:256])
        if form == "gap":
            return float(model.estimate(x_test, y_test))
        # as its ``estimate`` does: the EMA weights, the mean of 10 Monte Carlo passes
        model.eval()
        model.model = model.model_ema.module
        with torch.no_grad():
            x_test, y_test = (torch.from_numpy(a).to(model.device) for a in (x_test, y_test))
            return float(np.mean([model.estimate_x_y(x_test, y_test).item() for _ in range(10)]))


def _import_diffusion_mi() -> types.ModuleType:
    """``estimators.neural`` of diffusion-mi, importable without torchvision.

    diffusion-mi 0.1.0 imports torchvision at module level and never uses it, and PyPI's
    torchvision does not pair with this project's CPU torch. Where torchvision is missing,
    an empty stand-in is present only while diffusion-mi imports, so nothing else sees it
    (Lightning, imported first, probes for torchvision and must find none).
    """
    import lightning  # noqa: F401
    import pytorch_lightning  # noqa: F401

    stand_ins = []
    try:
        import torchvision  # noqa: F401
    except ImportError:
        stand_ins = ["torchvision", "torchvision.transforms"]
        for name in stand_ins:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    try:
        from dmi import estimators
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)
    return estimators


@contextlib.contextmanager
def _lightning_quiet() -> Iterator[None]:
    """Drop Lightning's log lines, warnings and progress bars (stderr) for the call."""
    loggers = [logging.getLogger(name) for name in ("lightning", "pytorch_lightning")]
    levels = [one.level for one in loggers]
    for one in loggers:
        one.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for one, level in zip(loggers, levels, strict=True):
            one.setLevel(level)


def diffusion_mi(estimator: str, **defaults: Any) -> Callable[..., DiffusionMI]:
    """A builder for diffusion-mi's ``"minde"`` or ``"mmg"``; ``defaults`` under ``options``."""
    if estimator not in ("minde", "mmg"):
        raise ValueError(f"diffusion-mi estimator must be 'minde' or 'mmg', got {estimator!r}")

    def build(seed: int, test_size: float = 0.3, steps: int = 4000, **options: Any):
        return DiffusionMI(estimator, seed, test_size, steps, defaults | options)

    return build


@dataclass
class GMMMI:
    """``gmm_mi.mi.EstimateMI`` (Piras et al.): Gaussian mixtures fitted to ``(x, y)``, the
    number of components chosen by cross-validation, the MI integrated by Monte Carlo and
    averaged over bootstrap refits. Its authors' documented defaults throughout (50
    bootstrap fits, 10^5 Monte Carlo samples, up to 50 components, random initialisation,
    ``reg_covar`` 1e-15), passed as ``options`` to ``MIDistParamHolder`` for the MI step.

    One-dimensional ``x`` and ``y`` only (the method integrates a 2-D density); anything
    else is a clear error. The estimate depends on the data alone; ``seed`` permutes the
    rows, which moves its cross-validation folds and bootstrap draws. gmm-mi 0.8.2 calls
    two private scikit-learn methods that scikit-learn 1.6 removed or changed; the adapter
    gives its mixture class working versions (``_patch_gmm_mi``). Licence: GPL-3 with a
    non-commercial clause (it is a benchmark peer here, not a dependency of miest).
    """

    seed: int
    options: dict[str, Any]

    def estimate(self, x: np.ndarray, y: np.ndarray) -> float:
        from gmm_mi.mi import EstimateMI
        from gmm_mi.param_holders import MIDistParamHolder

        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
        if x.shape[1] != 1 or y.shape[1] != 1:
            raise ValueError(
                f"gmm-mi estimates MI between one-dimensional variables only, got "
                f"{x.shape[1]} and {y.shape[1]} columns"
            )
        _patch_gmm_mi()
        rows = np.random.default_rng(self.seed).permutation(len(x))
        estimator = EstimateMI()  # a fresh one: a fitted instance skips refitting
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            mi, _ = estimator.fit_estimate(
                x[rows, 0], y[rows, 0], mi_dist_params=MIDistParamHolder(**self.options)
            )
        return float(mi)  # nats: fit_estimate's default base is e


def _patch_gmm_mi() -> None:
    """gmm-mi 0.8.2's mixture class calls ``self._validate_data`` (removed in scikit-learn
    1.6: ``sklearn.utils.validation.validate_data``) and ``_check_parameters(X)`` (which
    now takes the array namespace ``xp``): give it both."""
    import inspect

    from gmm_mi.gmm import GMMWithMI
    from sklearn.mixture import GaussianMixture

    if not hasattr(GMMWithMI, "_validate_data"):
        from sklearn.utils.validation import validate_data

        GMMWithMI._validate_data = lambda self, X, **kwargs: validate_data(self, X, **kwargs)
    check = GaussianMixture._check_parameters
    if "xp" in inspect.signature(check).parameters and GMMWithMI._check_parameters is check:

        def check_parameters(self, X, xp=None):
            from sklearn.utils._array_api import get_namespace

            return check(self, X, xp=get_namespace(X)[0] if xp is None else xp)

        GMMWithMI._check_parameters = check_parameters


def gmm_mi(seed: int, **options: Any) -> GMMMI:
    """A builder for gmm-mi's estimator (``options``: ``MIDistParamHolder`` settings)."""
    return GMMMI(seed, options)
