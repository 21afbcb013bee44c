"""``miest.pointwise(model, ...)``: point-wise MI for any model kind that registers support.

A fitted ``miest`` estimator answers directly (``model.pointwise(x, y)``). Other kinds
(for example diffusers pipelines, registered by the ``t2i`` package) register a
handler, so ``miest`` keeps no hard dependency on them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from miest.interface import MIEstimator

_HANDLERS: list[tuple[Callable[[object], bool], Callable[..., np.ndarray]]] = []


def register_pointwise(
    accepts: Callable[[object], bool], handler: Callable[..., np.ndarray]
) -> None:
    """Route ``pointwise(model, ...)`` to ``handler(model, ...)`` whenever ``accepts(model)``."""
    _HANDLERS.append((accepts, handler))


def pointwise(model, *args, **kwargs) -> np.ndarray:
    """Per-sample MI in nats from ``model``: a fitted estimator or a registered model kind."""
    if isinstance(model, MIEstimator):
        return model.pointwise(*args, **kwargs)
    if not _HANDLERS:
        _register_optional_packages()
    for accepts, handler in reversed(_HANDLERS):
        if accepts(model):
            return handler(model, *args, **kwargs)
    raise TypeError(
        f"no point-wise MI handler for {type(model).__name__}; pass a fitted miest estimator, "
        "or a diffusers pipeline (needs the 't2i' extra)"
    )


def _register_optional_packages() -> None:
    """Import ``t2i`` (which registers diffusers pipelines) when it is installed."""
    try:
        import t2i  # noqa: F401
    except ImportError:
        pass
