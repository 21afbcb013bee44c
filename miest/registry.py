"""Estimators by name: ``estimator("rfmi", seed=0, ...)`` and ``available()``."""

from __future__ import annotations

from miest.estimators.denoising import MINDEC, RFMI
from miest.estimators.joint import MINDEJ
from miest.estimators.variational import MINE, NWJ, InfoNCE
from miest.interface import MIEstimator

ESTIMATORS: dict[str, type[MIEstimator]] = {
    cls.name: cls for cls in (MINDEC, MINDEJ, RFMI, MINE, InfoNCE, NWJ)
}


def available() -> dict[str, str]:
    """``{name: one-line description}`` of every estimator."""
    return {name: cls.description for name, cls in ESTIMATORS.items()}


def estimator(name: str, **hyperparameters) -> MIEstimator:
    """A new estimator by name, with hyper-parameters as keywords (e.g. ``seed=0``)."""
    try:
        cls = ESTIMATORS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown estimator {name!r}; available: {sorted(ESTIMATORS)}") from None
    try:
        return cls(**hyperparameters)
    except TypeError as error:
        raise TypeError(f"{name}: {error}") from None
