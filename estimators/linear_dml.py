"""econml LinearDML: double ML with a CATE linear in the covariates."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._common import (
    HGB_PARAMS,
    PROPENSITY_PARAMS,
    drop_collinear,
    fit_context,
    make_classifier,
    make_regressor,
)
from sdscm_bench.estimators._econml import cate_estimate
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class LinearDMLAdapter(EstimatorAdapter):
    name = "linear_dml"
    library = "econml"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = "econml LinearDML (HistGradientBoosting outcome, logistic treatment model)"
    requires = ("econml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {
        "model_y": HGB_PARAMS,
        "model_t": PROPENSITY_PARAMS,
        "cv": 3,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        X = drop_collinear(X)  # identified final-stage coefficients (full one-hot blocks)
        with fit_context(seed):
            from econml.dml import LinearDML

            model = LinearDML(
                model_y=make_regressor(p["model_y"], seed),
                model_t=make_classifier(p["model_t"], seed),
                discrete_treatment=True,
                cv=p["cv"],
                random_state=seed,
            )
            model.fit(y, t, X=X)
            return cate_estimate(model, X, ate_from_model=False)
