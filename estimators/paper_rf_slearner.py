"""Random-forest S-learner in the paper's configuration (the paper's "RF").

Reproduces ``predict_random_forest`` of the paper's ``estimation.py`` (``lbynum/sequence-driven-scms``,
read at commit 2002f65519021dcf2c86c58836931c2923faa14b): ``RandomForestRegressor()`` with
scikit-learn's defaults (100 trees, ``max_features=1.0``, ``min_samples_leaf=1``, bootstrap) fitted
on ``[X, t]`` with the covariates as candidate indices (ordinal); CATE = ``f(X, 1) - f(X, 0)``, ATE =
the mean CATE, no intervals. Only ``random_state`` (the seed; the paper left it unset) and
``n_jobs=1`` are set. Beside it, ``rf_slearner`` is the benchmark's tuned forest on one-hot covariates.
"""

from __future__ import annotations

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class PaperRFSLearner(EstimatorAdapter):
    name = "paper_rf_slearner"
    library = "scikit-learn"
    capabilities = frozenset({"cate"})
    description = (
        "paper's setting: RandomForestRegressor S-learner, scikit-learn defaults, ordinal covariates"
    )
    requires = ("sklearn",)
    covariate_encoding = "ordinal"

    def build(self, seed: int) -> object:
        """The unfitted forest: scikit-learn's defaults, seeded, single-threaded."""
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(random_state=seed, n_jobs=1)

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        with fit_context(seed):
            model = self.build(seed)
            model.fit(np.column_stack([X, t]), y)
            ones, zeros = np.ones(len(t)), np.zeros(len(t))
            cate = model.predict(np.column_stack([X, ones])) - model.predict(np.column_stack([X, zeros]))
        return EffectEstimate(ate=float(cate.mean()), cate=cate)
