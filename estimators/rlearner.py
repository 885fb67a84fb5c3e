"""causalml R-learner (BaseRRegressor, Nie & Wager) with an explicit logistic propensity model.

causalml 0.18's analytic ATE standard error for the R-learner divides by n where it should divide
by sqrt(n), so its ATE interval is about sqrt(n) times too narrow. By default the interval is
reported as causalml returns it (``ate_interval="causalml"``); ``ate_interval="corrected"``
widens it by sqrt(n).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._causalml import quiet_import_meta, run_meta_learner
from sdscm_bench.estimators._common import HGB_PARAMS, PROPENSITY_PARAMS, fit_context, make_regressor
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class RLearner(EstimatorAdapter):
    name = "rlearner"
    library = "causalml"
    capabilities = frozenset({"cate", "ate_interval"})
    description = "causalml BaseRRegressor, HistGradientBoosting learners, logistic propensity"
    requires = ("causalml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {
        "learner": HGB_PARAMS,
        "propensity": PROPENSITY_PARAMS,
        "n_fold": 5,
        "ate_interval": "causalml",
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        meta = quiet_import_meta()
        with fit_context(seed):
            learner = meta.BaseRRegressor(
                learner=make_regressor(self.params["learner"], seed),
                n_fold=self.params["n_fold"],
                random_state=seed,
            )
            learner.cv_n_jobs = 1  # BaseRRegressor hard-codes cross-fitting with n_jobs=-1
            est = run_meta_learner(learner, X, t, y, seed, propensity=self.params["propensity"])
        if self.params["ate_interval"] == "corrected" and est.ate_interval is not None:
            lo, hi = est.ate_interval
            half = (hi - lo) / 2 * np.sqrt(len(t))
            est.ate_interval = (float(est.ate - half), float(est.ate + half))
        return est
