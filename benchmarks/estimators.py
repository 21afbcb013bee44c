"""Estimators a benchmark can run, by name: miest's own and peers behind thin adapters.

Every entry builds an object with ``estimate(x, y) -> float`` (nats) for a seed and
keyword options. A peer whose library is missing fails its jobs with the import error,
which the report lists under its failures.
"""

from __future__ import annotations

from collections.abc import Callable

import miest
from benchmarks import peers


def _bmi(class_name: str, **defaults) -> Callable[..., object]:
    def build(seed: int, **options):
        import bmi.estimators

        cls = getattr(bmi.estimators, class_name)
        if "seed" in cls.__init__.__code__.co_varnames:
            options.setdefault("seed", seed)
        return cls(**(defaults | options))

    return build


def _miest(name: str) -> Callable[..., object]:
    # threads=None: the runner sets each job's torch threads (``--threads``)
    return lambda seed, **options: miest.estimator(name, seed=seed, **{"threads": None} | options)


BUILDERS: dict[str, tuple[str, Callable[..., object]]] = {
    **{name: ("miest", _miest(name)) for name in miest.available()},
    "bmi-ksg": ("bmi", _bmi("KSGEnsembleFirstEstimator", neighborhoods=(5,))),
    "bmi-cca": ("bmi", _bmi("CCAMutualInformationEstimator")),
    "bmi-mine": ("bmi", _bmi("MINEEstimator", verbose=False)),
    "bmi-infonce": ("bmi", _bmi("InfoNCEEstimator", verbose=False)),
    "bmi-nwj": ("bmi", _bmi("NWJEstimator", verbose=False)),
    "bmi-dv": ("bmi", _bmi("DonskerVaradhanEstimator", verbose=False)),
    "torch-mist-infonce": ("torch-mist", peers.torch_mist("infonce")),
    "torch-mist-smile": ("torch-mist", peers.torch_mist("smile")),
    "latentmi": ("latentmi", peers.latentmi),
    "dmi-minde-c": ("diffusion-mi", peers.diffusion_mi("minde", type="c")),
    "dmi-minde-j": ("diffusion-mi", peers.diffusion_mi("minde", type="j")),
    "dmi-mmg-orthogonal": ("diffusion-mi", peers.diffusion_mi("mmg", form="orthogonal")),
    "gmm-mi": ("gmm-mi", peers.gmm_mi),  # one-dimensional x and y only
}


def library(name: str) -> str:
    return _lookup(name)[0]


def build(name: str, seed: int, **options) -> object:
    """A fresh estimator ``name`` seeded with ``seed``."""
    return _lookup(name)[1](seed, **options)


def _lookup(name: str) -> tuple[str, Callable[..., object]]:
    try:
        return BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown benchmark estimator {name!r}; known: {sorted(BUILDERS)}"
        ) from None


BUILT_IN = frozenset(BUILDERS)


def register_estimator(name: str, factory: Callable[..., object], library: str = "user") -> None:
    """Make an estimator runnable by name in suites. ``factory(seed, **options)`` returns a
    new object with ``estimate(x, y) -> float`` (nats), e.g.
    ``lambda seed, **options: MyEstimator(random_state=seed, **options)``; ``library``
    labels it in reports (anything but ``"miest"`` counts as a peer)."""
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is a built-in benchmark estimator; choose another name")
    if not callable(factory):
        raise TypeError(f"the factory of {name!r} must be callable (seed, **options) -> estimator")
    BUILDERS[name] = (library, factory)
