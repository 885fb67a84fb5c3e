"""dowhy backdoor.propensity_score_weighting: inverse propensity weighting, bootstrap interval.

dowhy fits a logistic propensity model and clips scores to [0.05, 0.95]; its interval is a
bootstrap over ``num_simulations`` resamples drawn from the (seeded) global numpy RNG.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators._dowhy import dowhy_ate
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class DoWhyPSWeighting(EstimatorAdapter):
    name = "dowhy_ps_weighting"
    library = "dowhy"
    capabilities = frozenset({"ate_interval"})
    description = "dowhy backdoor.propensity_score_weighting (IPW), bootstrap interval"
    requires = ("dowhy", "sklearn", "networkx", "pandas")
    also_depends_on = ("numpy", "scikit-learn", "pandas", "networkx")
    default_params: ClassVar[dict[str, Any]] = {
        "weighting_scheme": "ips_weight",
        "min_ps_score": 0.05,
        "max_ps_score": 0.95,
        "num_simulations": 100,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        with fit_context(seed):
            return dowhy_ate(
                X,
                t,
                y,
                "backdoor.propensity_score_weighting",
                method_params={
                    "weighting_scheme": p["weighting_scheme"],
                    "min_ps_score": p["min_ps_score"],
                    "max_ps_score": p["max_ps_score"],
                    "num_simulations": p["num_simulations"],
                },
                confidence_intervals="bootstrap",
            )
