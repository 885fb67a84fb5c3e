"""An sdscm-bench estimator adapter living outside sdscm-bench.

``RidgeTLearner`` fits one ridge regression of the outcome per treatment arm and takes the
difference of their predictions as the CATE. It uses scikit-learn only, so it runs wherever the
core sdscm-bench install does. Registered in ``pyproject.toml`` under the entry-point group
``sdscm_bench.estimators``; ``pytest --estimator=example_ridge_tlearner`` then benchmarks it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench_example.features import expand


class RidgeTLearner(EstimatorAdapter):
    """T-learner with ridge outcome models on the covariates and their pairwise products."""

    name = "example_ridge_tlearner"
    library = "scikit-learn"
    capabilities = frozenset({"cate"})
    description = "T-learner, ridge outcome models with pairwise interactions (example plug-in)"
    requires = ("sklearn",)
    also_depends_on = ("numpy",)
    default_params: ClassVar[dict[str, Any]] = {"alpha": 1.0, "interactions": True}

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        # Heavy imports inside estimate(): discovering adapters must stay fast.
        from sklearn.linear_model import Ridge

        Z = expand(X, self.params["interactions"])
        predictions = []
        for arm in (0, 1):
            model = Ridge(alpha=self.params["alpha"]).fit(Z[t == arm], y[t == arm])
            predictions.append(model.predict(Z))
        cate = predictions[1] - predictions[0]  # ridge is deterministic: ``seed`` has nothing to seed
        return EffectEstimate(ate=float(cate.mean()), cate=cate)
