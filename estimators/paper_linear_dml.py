"""econml LinearDML in the paper's configuration (the paper's "LinearDML").

Reproduces ``predict_linear_dml`` of the paper's ``estimation.py`` (``lbynum/sequence-driven-scms``,
read at commit 2002f65519021dcf2c86c58836931c2923faa14b):
``LinearDML(discrete_treatment=True, discrete_outcome=False)``, fitted as ``fit(Y=y, T=t, X=x,
W=None)`` on the candidate indices of the covariates (ordinal), every other argument econml's default.
In econml 0.17 that is ``model_y='auto'`` and ``model_t='auto'`` (each first stage picks, by
cross-validated score, between a ``RandomForest`` and ``LassoCV`` / ``LogisticRegressionCV``),
``cv=2`` cross-fitting, ``fit_cate_intercept=True``, no featurizer. Effects as the paper read them:
``effect(X)`` / ``effect_interval(X)`` and ``ate(X)`` / ``ate_interval(X)`` (95%). Only
``random_state`` (the seed; the paper left it unset) is set. Beside it, ``linear_dml`` is the
benchmark's tuned configuration on one-hot covariates.
"""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators._econml import cate_estimate
from sdscm_bench.estimators._paper import quiet_model_selection
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class PaperLinearDMLAdapter(EstimatorAdapter):
    name = "paper_linear_dml"
    library = "econml"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = (
        "paper's setting: econml LinearDML with econml's defaults ('auto' first stages), ordinal covariates"
    )
    requires = ("econml", "sklearn")
    covariate_encoding = "ordinal"

    def build(self, seed: int) -> object:
        """The unfitted estimator: the paper's call, seeded."""
        from econml.dml import LinearDML

        return LinearDML(discrete_treatment=True, discrete_outcome=False, random_state=seed)

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        with fit_context(seed), quiet_model_selection():
            model = self.build(seed)
            model.fit(y, t, X=X, W=None)
            return cate_estimate(model, X, ate_from_model=False)
