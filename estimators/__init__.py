"""Estimator adapters: one small module per causal effect estimator.

>>> from estimators import get_adapter
>>> est = get_adapter("xlearner").run(X, t, y, seed=0)   # doctest: +SKIP

See ``estimators.base`` for the interface and ``estimators.registry`` for discovery (built-in
modules of this package plus the ``sdscm_bench.estimators`` entry-point group).
"""

from estimators.base import CAPABILITIES, EffectEstimate, EstimatorAdapter
from estimators.registry import (
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
