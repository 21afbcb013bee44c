"""``miest.pointwise(model, ...)``: point-wise MI for any model kind that registers support.

A fitted ``miest`` estimator answers directly (``model.pointwise(x, y)``). Other kinds
are served by handlers: ``(accepts, handler)`` pairs that installed packages declare in
the entry-point group ``miest.pointwise`` (``t2i`` declares diffusers pipelines in its
``pyproject.toml``), or that code registers with ``register_pointwise``. ``miest``
imports none of them itself: a handler is loaded the first time a model needs one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points

import numpy as np

from miest.interface import MIEstimator

GROUP = "miest.pointwise"
Handler = tuple[Callable[[object], bool], Callable[..., np.ndarray]]

_REGISTERED: list[Handler] = []


def register_pointwise(
    accepts: Callable[[object], bool], handler: Callable[..., np.ndarray]
) -> None:
    """Route ``pointwise(model, ...)`` to ``handler(model, ...)`` whenever ``accepts(model)``
    (checked before the installed packages' handlers, the latest registration first)."""
    _REGISTERED.append((accepts, handler))


@cache
def installed_handlers() -> tuple[Handler, ...]:
    """The ``(accepts, handler)`` pairs declared in the ``miest.pointwise`` entry-point group."""
    return tuple(entry.load() for entry in entry_points(group=GROUP))


def pointwise(model, *args, **kwargs) -> np.ndarray:
    """Per-sample MI in nats from ``model``: a fitted estimator or a registered model kind."""
    if isinstance(model, MIEstimator):
        return model.pointwise(*args, **kwargs)
    for accepts, handler in [*reversed(_REGISTERED), *installed_handlers()]:
        if accepts(model):
            return handler(model, *args, **kwargs)
    raise TypeError(
        f"no point-wise MI handler for {type(model).__name__}; pass a fitted miest estimator, "
        "or a diffusers pipeline (needs the 't2i' extra)"
    )
