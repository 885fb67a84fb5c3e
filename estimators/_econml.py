"""Shared code of the econml adapters (not an adapter module)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdscm_bench.estimators.base import EffectEstimate


def interval_columns(lb: Any, ub: Any) -> np.ndarray:
    """``(n, 2)`` array from econml's ``(lb, ub)`` pair of ``(n,)`` or ``(n, 1)`` arrays."""
    return np.column_stack([np.asarray(lb, dtype=float).reshape(-1), np.asarray(ub, dtype=float).reshape(-1)])


def cate_estimate(model: Any, X: np.ndarray, ate_from_model: bool = True) -> EffectEstimate:
    """Effects, per-unit and average, with econml's own 95% intervals, from a fitted CATE model.

    ``ate_from_model=True`` uses ``ate_`` / ``ate__inference()`` (the doubly robust ATE of the
    forest DML learners); otherwise the ATE is the mean CATE with ``ate_interval(X)``.
    """
    cate = np.asarray(model.effect(X), dtype=float).reshape(-1)
    cate_interval = interval_columns(*model.effect_interval(X, alpha=0.05))
    if ate_from_model:
        ate = float(np.ravel(model.ate_)[0])
        lo, hi = model.ate__inference().conf_int(alpha=0.05)
    else:
        ate = float(np.ravel(model.ate(X))[0])
        lo, hi = model.ate_interval(X, alpha=0.05)
    return EffectEstimate(
        ate=ate,
        cate=cate,
        ate_interval=(float(np.ravel(lo)[0]), float(np.ravel(hi)[0])),
        cate_interval=cate_interval,
    )
