"""econml ForestDRLearner: doubly robust pseudo-outcomes fitted by an honest regression forest."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._common import (
    HGB_PARAMS,
    PROPENSITY_PARAMS,
    fit_context,
    make_classifier,
    make_regressor,
)
from sdscm_bench.estimators._econml import cate_estimate
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class ForestDRLearnerAdapter(EstimatorAdapter):
    name = "forest_drlearner"
    library = "econml"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = "econml ForestDRLearner (HistGradientBoosting outcome, logistic propensity)"
    requires = ("econml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {
        "model_regression": HGB_PARAMS,
        "model_propensity": PROPENSITY_PARAMS,
        "cv": 3,
        "n_estimators": 200,
        "min_samples_leaf": 5,
        "max_samples": 0.45,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        with fit_context(seed):
            from econml.dr import ForestDRLearner

            model = ForestDRLearner(
                model_regression=make_regressor(p["model_regression"], seed),
                model_propensity=make_classifier(p["model_propensity"], seed),
                min_propensity=p["model_propensity"]["clip"][0],
                cv=p["cv"],
                n_estimators=p["n_estimators"],
                min_samples_leaf=p["min_samples_leaf"],
                max_samples=p["max_samples"],
                n_jobs=1,
                random_state=seed,
            )
            model.fit(y, t, X=X)
            return cate_estimate(model, X, ate_from_model=False)
