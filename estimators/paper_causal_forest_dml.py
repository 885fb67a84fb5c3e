"""econml CausalForestDML in the paper's configuration (the paper's "CausalForestDML").

Reproduces ``predict_causalforest_dml`` of the paper's ``estimation.py``
(``lbynum/sequence-driven-scms``, read at commit 2002f65519021dcf2c86c58836931c2923faa14b):
``CausalForestDML(discrete_treatment=True, discrete_outcome=False, n_jobs=None)``, fitted as
``fit(Y=y, T=t, X=x, W=None)`` on the candidate indices of the covariates (ordinal), every other
argument econml's default. In econml 0.17 that is ``model_y='auto'``, ``model_t='auto'`` (forest vs.
``LassoCV`` / ``LogisticRegressionCV``, picked by cross-validated score), ``cv=2``, 100 trees,
``min_samples_leaf=5``, ``max_samples=0.45``, honest forest, ``criterion='mse'``. Effects as the paper
read them: ``effect(X)`` / ``effect_interval(X)`` and the mean-CATE ``ate(X)`` / ``ate_interval(X)``
(95%; not the doubly robust ``ate_`` that ``causal_forest_dml`` reports). Only ``random_state`` (the
seed; the paper left it unset) and ``n_jobs=1`` (the paper's ``n_jobs=None`` is one job too) are set.
Beside it, ``causal_forest_dml`` is the benchmark's tuned configuration on one-hot covariates.
"""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators._econml import cate_estimate
from sdscm_bench.estimators._paper import quiet_model_selection
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class PaperCausalForestDMLAdapter(EstimatorAdapter):
    name = "paper_causal_forest_dml"
    library = "econml"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = "paper's setting: econml CausalForestDML with econml's defaults ('auto' first stages), ordinal covariates"
    requires = ("econml", "sklearn")
    covariate_encoding = "ordinal"

    def build(self, seed: int) -> object:
        """The unfitted estimator: the paper's call, seeded and single-threaded."""
        from econml.dml import CausalForestDML

        return CausalForestDML(discrete_treatment=True, discrete_outcome=False, n_jobs=1, random_state=seed)

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        with fit_context(seed), quiet_model_selection():
            model = self.build(seed)
            model.fit(y, t, X=X, W=None)
            return cate_estimate(model, X, ate_from_model=False)
