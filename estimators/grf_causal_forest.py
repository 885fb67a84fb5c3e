"""econml's generalized random forest (econml.grf.CausalForest) with grf-style local centering.

As in the R grf package's ``causal_forest``, y and t are first centred with cross-fitted
``m(x) = E[y | x]`` and ``e(x) = P(t = 1 | x)`` and the forest solves the local moment
equation on the residuals; without centering it would be confounded (``center=False``).
Per-unit intervals come from the forest's bootstrap-of-little-bags variance.
"""

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
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class GRFCausalForest(EstimatorAdapter):
    name = "grf_causal_forest"
    library = "econml"
    capabilities = frozenset({"cate", "cate_interval"})
    description = "econml.grf.CausalForest on locally centred y and t (like R grf)"
    requires = ("econml", "sklearn")
    default_params: ClassVar[dict[str, Any]] = {
        "center": True,
        "model_y": HGB_PARAMS,
        "model_t": PROPENSITY_PARAMS,
        "cv": 5,
        "n_estimators": 200,
        "min_samples_leaf": 5,
        "max_samples": 0.45,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        with fit_context(seed):
            from econml.grf import CausalForest
            from sklearn.model_selection import StratifiedKFold, cross_val_predict

            y_res, t_res = np.asarray(y, dtype=float), t.astype(float)
            if p["center"]:
                folds = StratifiedKFold(p["cv"], shuffle=True, random_state=seed)
                m_hat = cross_val_predict(make_regressor(p["model_y"], seed), X, y, cv=folds.split(X, t))
                e_hat = cross_val_predict(
                    make_classifier(p["model_t"], seed), X, t, cv=folds.split(X, t), method="predict_proba"
                )[:, 1]
                e_hat = np.clip(e_hat, *p["model_t"]["clip"])
                y_res, t_res = y_res - m_hat, t_res - e_hat
            forest = CausalForest(
                n_estimators=p["n_estimators"],
                min_samples_leaf=p["min_samples_leaf"],
                max_samples=p["max_samples"],
                n_jobs=1,
                random_state=seed,
            )
            forest.fit(X, t_res, y_res)
            cate, lb, ub = forest.predict(X, interval=True, alpha=0.05)
        cate = np.asarray(cate, dtype=float).reshape(-1)
        interval = np.column_stack([np.asarray(lb).reshape(-1), np.asarray(ub).reshape(-1)])
        return EffectEstimate(ate=float(cate.mean()), cate=cate, cate_interval=interval)
