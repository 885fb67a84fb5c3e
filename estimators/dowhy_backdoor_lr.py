"""dowhy backdoor.linear_regression: OLS of y on t and all covariates, via dowhy's CausalModel."""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators._dowhy import dowhy_ate
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class DoWhyBackdoorLR(EstimatorAdapter):
    name = "dowhy_backdoor_lr"
    library = "dowhy"
    capabilities = frozenset({"ate_interval"})
    description = "dowhy backdoor.linear_regression, statsmodels confidence interval"
    requires = ("dowhy", "statsmodels", "networkx", "pandas")
    also_depends_on = ("numpy", "statsmodels", "pandas", "networkx")

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        with fit_context(seed):
            return dowhy_ate(X, t, y, "backdoor.linear_regression")
