"""BART S-learner (stochtree BARTModel on [X, t]); effects from posterior draws of f(x,1)-f(x,0)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._bayes import posterior_estimate
from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class BARTSLearner(EstimatorAdapter):
    name = "bart"
    library = "stochtree"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = "stochtree BART S-learner, posterior credible intervals"
    requires = ("stochtree",)
    also_depends_on = ("numpy",)
    default_params: ClassVar[dict[str, Any]] = {
        "num_gfr": 10,
        "num_burnin": 0,
        "num_mcmc": 200,
        "num_trees": 100,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        with fit_context(seed):
            from stochtree import BARTModel

            n = len(t)
            model = BARTModel()
            model.sample(
                X_train=np.column_stack([X, t]).astype(float),
                y_train=np.asarray(y, dtype=float),
                num_gfr=p["num_gfr"],
                num_burnin=p["num_burnin"],
                num_mcmc=p["num_mcmc"],
                general_params={"random_seed": int(seed), "num_threads": 1},
                mean_forest_params={"num_trees": p["num_trees"]},
            )
            f1 = model.predict(np.column_stack([X, np.ones(n)]), type="posterior", terms="y_hat")
            f0 = model.predict(np.column_stack([X, np.zeros(n)]), type="posterior", terms="y_hat")
        return posterior_estimate(np.asarray(f1) - np.asarray(f0))
