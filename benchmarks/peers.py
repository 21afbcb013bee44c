"""Thin adapters for peer MI libraries from PyPI: ``torch-mist`` and ``latentmi``.

Each builder takes ``(seed, **options)`` like the entries of ``benchmarks.estimators.BUILDERS``
and returns an object with ``estimate(x, y) -> float`` in nats. The peer library is imported
inside the adapter, so this module imports without it (``pip install miest[peers]``).

Every call seeds torch's and numpy's global generators (restoring both afterwards) and
swallows the libraries' own printing, so runs are repeatable and quiet.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


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
        order = np.random.default_rng(self.seed).permutation(len(x))
        n_test = max(1, round(len(x) * self.test_size))
        test, train = order[:n_test], order[n_test:]
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
