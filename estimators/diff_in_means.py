"""Difference in means (the paper's "T-only OLS"): OLS of y on t alone, ignoring covariates.

Deliberately unadjusted: it is the confounding-bias baseline. ATE = coefficient of t with an
HC1-robust 95% interval; the CATE is that constant for every unit.
No per-unit intervals are declared: they would only repeat the ATE interval.
"""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators._common import normal_interval, ols_robust
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class DiffInMeans(EstimatorAdapter):
    name = "diff_in_means"
    library = "numpy"
    capabilities = frozenset({"cate", "ate_interval"})
    description = "Unadjusted difference in means (OLS of y on t), HC1 interval"
    requires = ("scipy",)
    also_depends_on = ("scipy",)

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        D = np.column_stack([np.ones(len(t)), t.astype(float)])
        beta, cov = ols_robust(D, np.asarray(y, dtype=float))
        ate = float(beta[1])
        lo, hi = normal_interval(ate, float(np.sqrt(cov[1, 1])))
        n = len(t)
        return EffectEstimate(
            ate=ate,
            cate=np.full(n, ate),
            ate_interval=(lo, hi),
        )
