"""Posterior summaries shared by the stochtree adapters (not an adapter module)."""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators.base import EffectEstimate


def posterior_estimate(tau_draws: np.ndarray, level: float = 0.95) -> EffectEstimate:
    """Effects from posterior draws of the per-unit effects, shape ``(n, n_draws)``.

    CATE = posterior mean per unit; ATE = posterior mean of the sample-average effect; the
    intervals are equal-tailed posterior credible intervals.
    """
    tau_draws = np.asarray(tau_draws, dtype=float)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    ate_draws = tau_draws.mean(axis=0)
    lo, hi = np.percentile(ate_draws, q)
    return EffectEstimate(
        ate=float(ate_draws.mean()),
        cate=tau_draws.mean(axis=1),
        ate_interval=(float(lo), float(hi)),
        cate_interval=np.percentile(tau_draws, q, axis=1).T,
    )
