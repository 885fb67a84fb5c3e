"""Helpers shared by the adapters: quiet single-threaded fitting, seeding, nuisance models, OLS.

Not an adapter module (the leading underscore keeps the registry from scanning it). Its source
is part of the fingerprint of every adapter that imports it.
Only numpy, scipy and scikit-learn are imported here, lazily where it matters.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

#: Loggers of the wrapped libraries and the level they are raised to while fitting: dowhy and
#: causalml log every step at INFO; forestci (imported by causalml) logs "Failed to import
#: duecredit" as an ERROR on import.
_NOISY_LOGGERS = {
    "causalml": logging.ERROR,
    "dowhy": logging.ERROR,
    "econml": logging.ERROR,
    "stochtree": logging.ERROR,
    "catenets": logging.ERROR,
    "numexpr": logging.ERROR,
    "matplotlib": logging.ERROR,
    "duecredit": logging.CRITICAL,
}

#: ``(category, message regex)`` pairs of known, harmless warnings raised while fitting:
#: scikit-learn/pandas/matplotlib API deprecations triggered inside causalml, econml and dowhy,
#: and the networkx deprecation that dowhy 0.12 triggers for every d-separation test.
_KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, ""),
    (DeprecationWarning, ""),
    (PendingDeprecationWarning, ""),
)


@contextlib.contextmanager
def fit_context(seed: int | None = None) -> Iterator[None]:
    """Run a fit quietly, single-threaded, with the global RNGs seeded (and restored after).

    * silences known warning noise (see ``_KNOWN_WARNINGS``) and the libraries' INFO logging;
    * limits BLAS/OpenMP pools to one thread and makes joblib sequential, which overrides the
      ``n_jobs=-1`` some libraries hard-code (the harness runs several processes);
    * seeds ``random``, ``numpy.random`` and, if already imported, ``torch`` for the libraries
      that draw from global state (dowhy's bootstrap, catenets), restoring them on exit.
    """
    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for category, message in _KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        stack.enter_context(threadpool_limits(limits=1))
        stack.enter_context(parallel_config(backend="sequential"))
        stack.enter_context(_quiet_loggers())
        if seed is not None:
            stack.enter_context(_seeded_globals(seed))
        yield


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    saved = []
    for name, level in _NOISY_LOGGERS.items():
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


@contextlib.contextmanager
def _seeded_globals(seed: int) -> Iterator[None]:
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch = sys.modules.get("torch")
    torch_state = torch.random.get_rng_state() if torch is not None else None
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if torch is not None and torch_state is not None:
            torch.random.set_rng_state(torch_state)


# -- nuisance models ------------------------------------------------------------------------------

#: Default outcome learner for the meta-learners: gradient-boosted trees, small and fast.
HGB_PARAMS: dict[str, Any] = {
    "kind": "hist_gradient_boosting",
    "max_iter": 150,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
}

#: Default random forest for the forest-based learners.
RF_PARAMS: dict[str, Any] = {
    "kind": "random_forest",
    "n_estimators": 200,
    "min_samples_leaf": 5,
    "max_features": 1.0,
}

#: Default propensity model: L2-regularised logistic regression, clipped to [0.01, 0.99].
PROPENSITY_PARAMS: dict[str, Any] = {"kind": "logistic", "C": 1.0, "clip": [0.01, 0.99]}


def make_regressor(spec: dict[str, Any], seed: int) -> Any:
    """Build a scikit-learn regressor from a JSON spec ``{"kind": ..., **params}``."""
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, RidgeCV

    params = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    if kind == "hist_gradient_boosting":
        return HistGradientBoostingRegressor(random_state=seed, **params)
    if kind == "gradient_boosting":
        return GradientBoostingRegressor(random_state=seed, **params)
    if kind == "random_forest":
        return RandomForestRegressor(random_state=seed, n_jobs=1, **params)
    if kind == "ridge_cv":
        return RidgeCV(**params)
    if kind == "linear":
        return LinearRegression(**params)
    raise ValueError(f"unknown regressor kind {kind!r}")


def make_classifier(spec: dict[str, Any], seed: int) -> Any:
    """Build a scikit-learn classifier from a JSON spec (``clip`` is ignored here)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    params = {k: v for k, v in spec.items() if k not in ("kind", "clip")}
    kind = spec["kind"]
    if kind == "logistic":
        return LogisticRegression(max_iter=2000, random_state=seed, **params)
    if kind == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=seed, **params)
    if kind == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=1, **params)
    raise ValueError(f"unknown classifier kind {kind!r}")


def propensity_scores(
    X: np.ndarray, t: np.ndarray, seed: int, spec: dict[str, Any] = PROPENSITY_PARAMS
) -> np.ndarray:
    """In-sample propensity scores ``P(t=1 | X)`` from ``spec``, clipped to ``spec["clip"]``."""
    model = make_classifier(spec, seed).fit(X, t)
    lo, hi = spec.get("clip", (0.01, 0.99))
    return np.clip(model.predict_proba(X)[:, 1], lo, hi)


def drop_collinear(X: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """The columns of ``X`` that are linearly independent of an intercept and of the columns
    before them (first ones kept), e.g. one level of every full one-hot block. The column span of
    ``[1, X]`` is unchanged, so linear fits predict the same, but their coefficients and standard
    errors become identified."""
    D = np.column_stack([np.ones(len(X)), X])
    r = np.abs(np.diag(np.linalg.qr(D, mode="r")))
    keep = r[1:] > rtol * max(r.max(), 1.0) * max(D.shape)
    return X[:, keep]


# -- OLS ------------------------------------------------------------------------------------------


def ols_robust(D: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS of ``y`` on ``D`` (add the intercept yourself) with HC1 robust covariance.

    Uses the pseudo-inverse, so collinear designs (full one-hot blocks next to an intercept) are
    fine: coefficients of estimable contrasts, such as that of a treatment column not in the span
    of the covariates, and their standard errors are unique. Returns ``(beta, cov)``.
    """
    n, _ = D.shape
    gram_inv = np.linalg.pinv(D.T @ D)
    beta = gram_inv @ (D.T @ y)
    resid = y - D @ beta
    rank = np.linalg.matrix_rank(D)
    meat = (D * resid[:, None] ** 2).T @ D
    cov = gram_inv @ meat @ gram_inv * (n / max(n - rank, 1))
    return beta, cov


def normal_interval(estimate: Any, se: Any, level: float = 0.95) -> tuple[Any, Any]:
    """``estimate -/+ z * se`` (scalars or arrays) for a two-sided normal interval at ``level``."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    return (estimate - z * se, estimate + z * se)
