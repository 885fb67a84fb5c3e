"""causalml X-learner (BaseXRegressor) with an explicit regularised-logistic propensity model."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._causalml import quiet_import_meta, run_meta_learner
from sdscm_bench.estimators._common import HGB_PARAMS, PROPENSITY_PARAMS, fit_context, make_regressor
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class XLearner(EstimatorAdapter):
    name = "xlearner"
    library = "causalml"
    capabilities = frozenset({"cate", "ate_interval"})
    description = "causalml BaseXRegressor, HistGradientBoosting learners, logistic propensity"
    requires = ("causalml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {"learner": HGB_PARAMS, "propensity": PROPENSITY_PARAMS}

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        meta = quiet_import_meta()
        with fit_context(seed):
            learner = meta.BaseXRegressor(learner=make_regressor(self.params["learner"], seed))
            return run_meta_learner(learner, X, t, y, seed, propensity=self.params["propensity"])
