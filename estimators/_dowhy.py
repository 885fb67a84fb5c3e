"""Shared code of the dowhy adapters (not an adapter module)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdscm_bench.estimators._common import drop_collinear
from sdscm_bench.estimators.base import EffectEstimate


def dowhy_ate(
    X: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    method_name: str,
    method_params: dict[str, Any] | None = None,
    confidence_intervals: bool | str = True,
) -> EffectEstimate:
    """Backdoor-adjusted ATE by dowhy (all covariates as common causes) with its 95% interval.

    Call inside ``fit_context(seed)``: dowhy's bootstrap draws from the global numpy RNG.
    """
    import networkx as nx
    import pandas as pd
    from dowhy import CausalModel

    X = drop_collinear(X)  # dowhy's statsmodels OLS warns on rank-deficient one-hot designs
    covariates = [f"x{j}" for j in range(X.shape[1])]
    data = pd.DataFrame(X, columns=covariates)
    data["t"] = t.astype(bool)
    data["y"] = np.asarray(y, dtype=float)
    # An explicit DAG (every covariate a common cause) identified with "maximal-adjustment": dowhy
    # 0.12's default identification also searches for a minimal backdoor set, from the smallest
    # subsets of the covariates up, which takes tens of seconds at 30 covariates.
    graph = nx.DiGraph([("t", "y")] + [(c, "t") for c in covariates] + [(c, "y") for c in covariates])
    model = CausalModel(data=data, treatment="t", outcome="y", graph=graph)
    estimand = model.identify_effect(proceed_when_unidentifiable=True, method_name="maximal-adjustment")
    estimate = model.estimate_effect(
        estimand,
        method_name=method_name,
        control_value=False,
        treatment_value=True,
        target_units="ate",
        confidence_intervals=confidence_intervals,
        method_params=method_params or {},
    )
    lo, hi = np.ravel(np.asarray(estimate.get_confidence_intervals(), dtype=float))[:2]
    return EffectEstimate(ate=float(estimate.value), ate_interval=(float(lo), float(hi)))
