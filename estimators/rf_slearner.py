"""Random-forest S-learner (the paper's "RF"): one forest f on [X, t]; CATE = f(X, 1) - f(X, 0)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._common import RF_PARAMS, fit_context, make_regressor
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class RFSLearner(EstimatorAdapter):
    name = "rf_slearner"
    library = "scikit-learn"
    capabilities = frozenset({"cate"})
    description = "RandomForestRegressor S-learner on [X, t]"
    requires = ("sklearn",)
    default_params: ClassVar[dict[str, Any]] = {"model": RF_PARAMS}

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        with fit_context():
            model = make_regressor(self.params["model"], seed)
            model.fit(np.column_stack([X, t]), y)
            ones, zeros = np.ones(len(t)), np.zeros(len(t))
            cate = model.predict(np.column_stack([X, ones])) - model.predict(np.column_stack([X, zeros]))
        return EffectEstimate(ate=float(cate.mean()), cate=cate)
