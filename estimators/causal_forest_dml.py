"""econml CausalForestDML: a generalized random forest on double-ML residuals (doubly robust ATE)."""

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
class CausalForestDMLAdapter(EstimatorAdapter):
    name = "causal_forest_dml"
    library = "econml"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = "econml CausalForestDML (HistGradientBoosting outcome, logistic treatment model)"
    requires = ("econml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {
        "model_y": HGB_PARAMS,
        "model_t": PROPENSITY_PARAMS,
        "cv": 3,
        "n_estimators": 200,
        "min_samples_leaf": 5,
        "max_samples": 0.45,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        with fit_context(seed):
            from econml.dml import CausalForestDML

            model = CausalForestDML(
                model_y=make_regressor(p["model_y"], seed),
                model_t=make_classifier(p["model_t"], seed),
                discrete_treatment=True,
                cv=p["cv"],
                n_estimators=p["n_estimators"],
                min_samples_leaf=p["min_samples_leaf"],
                max_samples=p["max_samples"],
                n_jobs=1,
                random_state=seed,
            )
            model.fit(y, t, X=X)
            return cate_estimate(model, X, ate_from_model=True)
