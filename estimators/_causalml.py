"""Shared fitting code of the causalml meta-learner adapters (not an adapter module)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdscm_bench.estimators._common import fit_context, propensity_scores
from sdscm_bench.estimators.base import EffectEstimate


def run_meta_learner(
    learner: Any,
    X: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    seed: int,
    propensity: dict[str, Any] | None = None,
) -> EffectEstimate:
    """Fit a causalml ``Base*Regressor`` and return its CATEs and its own ATE interval.

    ``propensity`` is the spec of the propensity model (see ``sdscm_bench.estimators._common``) for the
    learners that use one; it is passed explicitly as ``p=`` because causalml's default
    propensity model clips to [0.001, 0.999] and makes DR/X/R estimates erratic.
    """
    p = propensity_scores(X, t, seed, propensity) if propensity is not None else None
    kwargs: dict[str, Any] = {"p": p} if p is not None else {}
    if "seed" in _params(learner.estimate_ate):
        kwargs["seed"] = seed
    # estimate_ate fits the learner and returns causalml's analytic (ate, lb, ub).
    ate, lb, ub = learner.estimate_ate(X, treatment=t, y=y, **kwargs)
    cate = learner.predict(X, p=p) if p is not None else learner.predict(X)
    cate = np.asarray(cate, dtype=float).reshape(len(t), -1)[:, 0]
    return EffectEstimate(
        ate=float(np.ravel(ate)[0]),
        cate=cate,
        ate_interval=(float(np.ravel(lb)[0]), float(np.ravel(ub)[0])),
    )


def _params(fn: Any) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


def quiet_import_meta() -> Any:
    """Import ``causalml.inference.meta`` without its import-time noise."""
    with fit_context():
        import causalml.inference.meta as meta
    return meta
