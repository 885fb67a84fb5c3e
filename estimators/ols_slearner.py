"""Linear-regression S-learner (the paper's "LinReg"): OLS of y on [1, X, t].

As in the paper's code, the covariates enter as candidate indices (ordinal), so its ATEs on the
released data are the paper's. The CATE is constant, the coefficient of t, with an HC1-robust 95%
interval. Covariate columns collinear with the intercept and earlier columns are dropped first.
No per-unit intervals are declared: they would only repeat the ATE interval.
"""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators._common import drop_collinear, normal_interval, ols_robust
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class OLSSLearner(EstimatorAdapter):
    name = "ols_slearner"
    library = "numpy"
    capabilities = frozenset({"cate", "ate_interval"})
    description = "OLS of y on covariates and t (constant effect), HC1 interval"
    requires = ("scipy",)
    also_depends_on = ("scipy",)
    covariate_encoding = "ordinal"

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        n = len(t)
        D = np.column_stack([np.ones(n), drop_collinear(np.asarray(X, dtype=float)), t.astype(float)])
        beta, cov = ols_robust(D, np.asarray(y, dtype=float))
        ate = float(beta[-1])
        lo, hi = normal_interval(ate, float(np.sqrt(cov[-1, -1])))
        return EffectEstimate(
            ate=ate,
            cate=np.full(n, ate),
            ate_interval=(lo, hi),
        )
