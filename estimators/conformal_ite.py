"""Weighted split-conformal intervals for individual treatment effects (Lei & Candès 2021).

On a training half: outcome models ``mu1`` (treated) and ``mu0`` (controls) and a propensity
model ``e``. On the calibration half, the absolute residuals of the treated units calibrate
``Y(1)`` and those of the controls calibrate ``Y(0)``; as the treated units' covariates follow
``P(X | T=1)`` and not the population's, each calibration residual is weighted by the likelihood
ratio ``dP(X) / dP(X | T=1) ∝ 1 / e(x)`` (``1 / (1 - e(x))`` for ``Y(0)``) together with the
test point's own weight, giving weighted conformal quantiles ``q1(x)``, ``q0(x)`` at level
``1 - alpha / 2`` each. The ITE interval is the "naive" Bonferroni combination
``[L1 - U0, U1 - L0]`` of the two counterfactual intervals, with coverage >= ``1 - alpha``.

Where a test point's weight is too large for the calibration mass, the quantile is infinite and
so is the interval (lack of overlap), as the method prescribes. Point CATE = ``mu1 - mu0``; ATE =
mean CATE; no ATE interval.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._common import (
    PROPENSITY_PARAMS,
    RF_PARAMS,
    fit_context,
    make_classifier,
    make_regressor,
)
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


def weighted_conformal_quantile(
    scores: np.ndarray, score_weights: np.ndarray, test_weights: np.ndarray, level: float
) -> np.ndarray:
    """Per-test-point ``level`` quantile of ``sum_i p_i delta_{V_i} + p_test delta_{+inf}``,
    ``p_i = w_i / (sum_j w_j + w_test)``, ``p_test = w_test / (sum_j w_j + w_test)``."""
    order = np.argsort(scores, kind="stable")
    v, w = scores[order], score_weights[order]
    cum = np.cumsum(w)
    thresh = level * (cum[-1] + test_weights)
    k = np.searchsorted(cum, thresh * (1 - 1e-12), side="left")
    out = np.full(len(test_weights), np.inf)
    finite = k < len(v)
    out[finite] = v[k[finite]]
    return out


@register
class ConformalITE(EstimatorAdapter):
    name = "conformal_ite"
    library = "scikit-learn"
    capabilities = frozenset({"cate", "cate_interval"})
    description = "Weighted split-conformal ITE intervals (Lei & Candes 2021, naive Bonferroni)"
    requires = ("sklearn",)
    default_params: ClassVar[dict[str, Any]] = {
        "outcome_model": RF_PARAMS,
        "propensity": PROPENSITY_PARAMS,
        "train_fraction": 0.5,
        "alpha": 0.05,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        p = self.params
        y = np.asarray(y, dtype=float)
        with fit_context(seed):
            from sklearn.model_selection import train_test_split

            idx_train, idx_cal = train_test_split(
                np.arange(len(t)), train_size=p["train_fraction"], stratify=t, random_state=seed
            )
            tr1, tr0 = idx_train[t[idx_train] == 1], idx_train[t[idx_train] == 0]
            mu1 = make_regressor(p["outcome_model"], seed).fit(X[tr1], y[tr1])
            mu0 = make_regressor(p["outcome_model"], seed).fit(X[tr0], y[tr0])
            prop = make_classifier(p["propensity"], seed).fit(X[idx_train], t[idx_train])

            e = np.clip(prop.predict_proba(X)[:, 1], *p["propensity"]["clip"])
            m1, m0 = mu1.predict(X), mu0.predict(X)

        level = 1 - p["alpha"] / 2  # per counterfactual; Bonferroni gives 1 - alpha for the ITE
        cal1, cal0 = idx_cal[t[idx_cal] == 1], idx_cal[t[idx_cal] == 0]
        q1 = weighted_conformal_quantile(np.abs(y[cal1] - m1[cal1]), 1 / e[cal1], 1 / e, level)
        q0 = weighted_conformal_quantile(np.abs(y[cal0] - m0[cal0]), 1 / (1 - e[cal0]), 1 / (1 - e), level)
        cate = m1 - m0
        interval = np.column_stack([(m1 - q1) - (m0 + q0), (m1 + q1) - (m0 - q0)])
        return EffectEstimate(ate=float(cate.mean()), cate=cate, cate_interval=interval)
