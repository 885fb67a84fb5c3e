"""Estimator adapters: one small module per causal effect estimator.

>>> from sdscm_bench.estimators import get_adapter
>>> est = get_adapter("xlearner").run(X, t, y, seed=0)   # doctest: +SKIP

See ``sdscm_bench.estimators.base`` for the interface and ``sdscm_bench.estimators.registry`` for discovery (built-in
modules of this package plus the ``sdscm_bench.estimators`` entry-point group).
"""

from sdscm_bench.estimators.base import CAPABILITIES, EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import (
    EstimatorUnavailableError,
    UnknownEstimatorError,
    available,
    describe,
    get_adapter,
    register,
    unavailable,
)

__all__ = [
    "CAPABILITIES",
    "EffectEstimate",
    "EstimatorAdapter",
    "EstimatorUnavailableError",
    "UnknownEstimatorError",
    "available",
    "describe",
    "get_adapter",
    "register",
    "unavailable",
]
