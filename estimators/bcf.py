"""Bayesian causal forest (stochtree BCFModel, Hahn, Murray & Carvalho 2020).

The propensity covariate is a regularised logistic model (clipped to [0.01, 0.99]) rather than
stochtree's default internal BART propensity fit, which costs as much as the BCF fit itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._bayes import posterior_estimate
from sdscm_bench.estimators._common import PROPENSITY_PARAMS, fit_context, propensity_scores
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class BCF(EstimatorAdapter):
    name = "bcf"
    library = "stochtree"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = "stochtree BCFModel, logistic propensity covariate, posterior credible intervals"
    requires = ("stochtree", "sklearn")
    also_depends_on = ("numpy", "scikit-learn")
    default_params: ClassVar[dict[str, Any]] = {
        "num_gfr": 10,
        "num_burnin": 0,
        "num_mcmc": 200,
        "prognostic_trees": 100,
        "treatment_effect_trees": 50,
        "propensity": PROPENSITY_PARAMS,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        with fit_context(seed):
            from stochtree import BCFModel

            e_hat = propensity_scores(X, t, seed, p["propensity"])
            model = BCFModel()
            model.sample(
                X_train=np.asarray(X, dtype=float),
                Z_train=t.astype(float),
                y_train=np.asarray(y, dtype=float),
                propensity_train=e_hat,
                num_gfr=p["num_gfr"],
                num_burnin=p["num_burnin"],
                num_mcmc=p["num_mcmc"],
                general_params={"random_seed": int(seed), "num_threads": 1},
                prognostic_forest_params={"num_trees": p["prognostic_trees"]},
                treatment_effect_forest_params={"num_trees": p["treatment_effect_trees"]},
            )
            tau = model.predict(X, t.astype(float), propensity=e_hat, type="posterior", terms="cate")
        return posterior_estimate(np.asarray(tau).reshape(len(t), -1))
