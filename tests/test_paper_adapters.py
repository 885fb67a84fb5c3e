"""The ``paper_*`` adapters reproduce the estimation settings of the paper's code.

Checked here: each adapter builds its estimator with the library's defaults (only the seed and
single-threading differ, and what the paper's call set explicitly), encodes covariates ordinally,
carries ``bartCause::bartc``'s defaults (BART), and recovers a known ATE on a small confounded
dataset with ordinal covariates where the unadjusted difference in means does not. The generic
adapter contract (shapes, determinism, silence, metadata) is ``tests/test_estimators.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sdscm_bench.estimators import registry

PAPER_ADAPTERS = [
    "paper_rf_slearner",
    "paper_linear_dml",
    "paper_causal_forest_dml",
    "paper_linear_drlearner",
    "paper_forest_drlearner",
    "paper_bart",
]
#: Library-default constructor of each adapter's estimator, the arguments the paper's call passed
#: explicitly (``estimation.py`` of lbynum/sequence-driven-scms), and the only further parameters
#: the adapter may set.
ECONML_DEFAULTS: dict[str, tuple[str, str, dict[str, Any], set[str]]] = {
    "paper_linear_dml": ("econml.dml", "LinearDML", {"discrete_treatment": True}, {"random_state"}),
    "paper_causal_forest_dml": (
        "econml.dml",
        "CausalForestDML",
        {"discrete_treatment": True},
        {"random_state", "n_jobs"},
    ),
    "paper_linear_drlearner": ("econml.dr", "LinearDRLearner", {}, {"random_state"}),
    "paper_forest_drlearner": ("econml.dr", "ForestDRLearner", {}, {"random_state", "n_jobs"}),
}


def available(name: str) -> None:
    if name not in registry.available():
        pytest.skip(f"{name} unavailable: {registry.unavailable().get(name, 'not registered')}")


def init_params(obj: Any) -> dict[str, Any]:
    """The constructor arguments of ``obj`` as stored on it (econml estimators have no ``get_params``)."""
    import inspect

    names = [p for p in inspect.signature(type(obj).__init__).parameters if p != "self"]
    return {name: getattr(obj, name, "<not stored>") for name in names}  # e.g. deprecated arguments


def params_diff(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    assert set(a) == set(b)
    return {k for k in a if repr(a[k]) != repr(b[k])}


@pytest.mark.parametrize("name", PAPER_ADAPTERS)
def test_registered_ordinal_and_described_as_the_papers_setting(name: str) -> None:
    available(name)
    adapter = registry.get_adapter(name)
    assert adapter.covariate_encoding == "ordinal"
    assert adapter.description.startswith("paper's setting")
    assert adapter.metadata()["covariate_encoding"] == "ordinal"


def test_rf_is_scikit_learns_default_forest() -> None:
    available("paper_rf_slearner")
    from sklearn.ensemble import RandomForestRegressor

    built = registry.get_adapter("paper_rf_slearner").build(7)
    assert params_diff(built.get_params(), RandomForestRegressor().get_params()) == {"random_state", "n_jobs"}
    assert built.random_state == 7 and built.n_jobs == 1
    assert registry.get_adapter("paper_rf_slearner").capabilities == frozenset(
        {"cate"}
    )  # as the paper: no intervals


@pytest.mark.parametrize("name", sorted(ECONML_DEFAULTS))
def test_econml_estimator_is_econmls_default(name: str) -> None:
    available(name)
    import importlib

    module, cls_name, paper_args, allowed = ECONML_DEFAULTS[name]
    cls = getattr(importlib.import_module(module), cls_name)
    built = registry.get_adapter(name).build(3)
    assert type(built) is cls
    ours, default = init_params(built), init_params(cls(**paper_args))
    assert params_diff(ours, default) == allowed
    assert ours["random_state"] == 3
    if "n_jobs" in allowed:
        assert ours["n_jobs"] == 1
    # what "econml's defaults" means in econml 0.17: automatic first-stage model selection, cv=2
    nuisances = [k for k in ("model_y", "model_t", "model_regression", "model_propensity") if k in ours]
    assert nuisances and all(ours[k] == "auto" for k in nuisances)
    assert ours["cv"] == 2 and ours["discrete_outcome"] is False
    if "min_propensity" in ours:
        assert ours["min_propensity"] == 1e-6
    if "discrete_treatment" in ours:
        assert ours["discrete_treatment"] is True


def test_bart_carries_bartcs_defaults() -> None:
    available("paper_bart")
    params = registry.get_adapter("paper_bart").params
    assert params == {
        "method_trt": "bart",  # bartCause 1.0-x: method.trt = c("bart", "glm", "none")
        "p_score_as_covariate": True,
        "n_chains": 10,  # bartCause sets n.chains = 10 for both models
        "n_burn": 500,  # dbarts::bart2 defaults from here on
        "n_samples": 500,
        "n_trees": 75,
        "n_trees_trt": 75,
        "k": 2.0,
        "k_trt": 2.0,
        "power": 2.0,
        "base": 0.95,
        "sigdf": 3.0,
        "sigquant": 0.90,
        "n_cuts": 100,
    }


def test_bart_residual_variance_prior_is_dbarts() -> None:
    """The IG prior puts the least-squares residual sd at the 0.90 quantile of sigma (standardized scale)."""
    pytest.importorskip("scipy")
    from scipy.stats import invgamma

    from sdscm_bench.estimators._paper import _sigma2_prior

    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, size=(200, 3)).astype(float)
    y = X @ np.array([1.0, -0.5, 0.25]) + rng.normal(scale=0.7, size=200)
    shape, scale = _sigma2_prior(X, y, 3.0, 0.90)
    assert shape == pytest.approx(1.5)
    design = np.column_stack([np.ones(200), X])
    resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    sigest_std = np.sqrt(resid @ resid / (200 - 4)) / np.std(y)
    assert invgamma.cdf(sigest_std**2, a=shape, scale=scale) == pytest.approx(0.90, abs=1e-9)


# -- a known effect -------------------------------------------------------------------------------


def ordinal_data(n: int = 400, seed: int = 11) -> dict[str, Any]:
    """Four ordinal covariates (candidate indices 0..3), confounded treatment, tau(x) = 1 + 0.5 x0."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, size=(n, 4)).astype(float)
    e = 1 / (1 + np.exp(-(-1.5 + 0.8 * X[:, 1] + 0.4 * X[:, 2])))
    t = rng.binomial(1, e).astype(int)
    tau = 1.0 + 0.5 * X[:, 0]
    y = 0.5 + 1.0 * X[:, 1] + 0.5 * X[:, 2] - 0.3 * X[:, 3] + tau * t + rng.normal(scale=0.5, size=n)
    return {"X": X, "t": t, "y": y, "ate": float(tau.mean())}


DATA = ordinal_data()
#: ATE tolerance; the confounding bias of the difference in means is about 1.1 (asserted below).
ATE_TOL = 0.3
#: Shorter MCMC for the BART fit here (the default 10 x 1,000 iterations take minutes); the
#: default configuration itself is checked above and fitted by tests/test_estimators.py.
QUICK_BART = {"n_chains": 2, "n_burn": 200, "n_samples": 200}


def test_difference_in_means_is_biased_here() -> None:
    d = DATA
    naive = d["y"][d["t"] == 1].mean() - d["y"][d["t"] == 0].mean()
    assert abs(naive - d["ate"]) > 3 * ATE_TOL


@pytest.mark.parametrize("name", PAPER_ADAPTERS)
def test_recovers_a_known_ate(name: str) -> None:
    available(name)
    params = QUICK_BART if name == "paper_bart" else {}
    est = registry.get_adapter(name, **params).run(DATA["X"], DATA["t"], DATA["y"], seed=0)
    assert abs(est.ate - DATA["ate"]) < ATE_TOL, f"{name}: ATE {est.ate:.3f}, true {DATA['ate']:.3f}"
    if est.ate_interval is not None:
        lo, hi = est.ate_interval
        assert lo < DATA["ate"] < hi or abs(est.ate - DATA["ate"]) < 0.1


@pytest.mark.parametrize("method_trt", ["glm", "none"])
def test_bart_other_treatment_models(method_trt: str) -> None:
    available("paper_bart")
    adapter = registry.get_adapter("paper_bart", method_trt=method_trt, n_chains=1, n_burn=150, n_samples=150)
    est = adapter.run(DATA["X"], DATA["t"], DATA["y"], seed=0)
    assert abs(est.ate - DATA["ate"]) < ATE_TOL


def test_bart_rejects_an_unknown_treatment_model() -> None:
    available("paper_bart")
    with pytest.raises(ValueError, match="method_trt"):
        registry.get_adapter("paper_bart", method_trt="probit", n_chains=1, n_burn=1, n_samples=2).run(
            DATA["X"], DATA["t"], DATA["y"], seed=0
        )
