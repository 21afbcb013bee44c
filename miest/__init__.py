"""miest: neural mutual information estimators, in nats.

>>> import miest
>>> est = miest.estimator("rfmi", seed=0)
>>> mi = est.estimate(x, y)            # x (n, dx), y (n, dy)
>>> values = est.pointwise()           # (n_test,) point-wise MI per held-out pair
"""

from miest.interface import EstimateResult, MIEstimator, MIWarning
from miest.pointwise import pointwise, register_pointwise
from miest.registry import ESTIMATORS, available, estimator

__all__ = [
    "ESTIMATORS",
    "EstimateResult",
    "MIEstimator",
    "MIWarning",
    "available",
    "estimator",
    "pointwise",
    "register_pointwise",
]
__version__ = "0.1.0"
