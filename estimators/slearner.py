"""causalml S-learner (BaseSRegressor) with a gradient-boosting outcome model."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._causalml import quiet_import_meta, run_meta_learner
from sdscm_bench.estimators._common import HGB_PARAMS, fit_context, make_regressor
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class SLearner(EstimatorAdapter):
    name = "slearner"
    library = "causalml"
    capabilities = frozenset({"cate", "ate_interval"})
    description = "causalml BaseSRegressor, HistGradientBoosting outcome model"
    requires = ("causalml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {"learner": HGB_PARAMS}

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        meta = quiet_import_meta()
        with fit_context(seed):
            learner = meta.BaseSRegressor(learner=make_regressor(self.params["learner"], seed))
            return run_meta_learner(learner, X, t, y, seed)
