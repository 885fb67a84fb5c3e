"""Shared code of the ``paper_*`` adapters (not an adapter module).

The ``paper_*`` adapters reproduce the estimation settings of the code released with Bynum & Cho
(2024), "Language Models as Causal Effect Generators": repository ``lbynum/sequence-driven-scms``,
files ``estimation.py`` (the Python estimators: scikit-learn and econml with their defaults, on the
candidate indices of the covariates, no ``W``) and ``benchmark.ipynb`` (``bartCause::bartc`` with
its defaults, called from R through rpy2). The source read was the repository's commit
``2002f65519021dcf2c86c58836931c2923faa14b``; the released data are those of commit
``45662a62288a19b0cf1430df58a87ff8f636fd35``.

Only the seed and single-threading are set beyond the libraries' defaults (single-threading does
not change results). Its source is part of the fingerprint of every adapter that imports it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from sdscm_bench.estimators.base import EffectEstimate

#: Where the paper's estimation code is (cited by the adapters).
PAPER_REPO = "lbynum/sequence-driven-scms"
PAPER_COMMIT_READ = "2002f65519021dcf2c86c58836931c2923faa14b"


@contextlib.contextmanager
def quiet_model_selection() -> Iterator[None]:
    """Silence the convergence warnings of econml's automatic first-stage model selection.

    With ``model_y='auto'`` / ``model_t='auto'`` econml cross-validates ``LassoCV`` /
    ``LogisticRegressionCV`` against a random forest; the linear candidates may not converge on
    ordinal covariates and warn (scikit-learn's ``ConvergenceWarning``). The fit is what the
    library does by default either way; the adapters must be quiet.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        yield


# -- BART as bartCause::bartc does it ---------------------------------------------------------------

#: ``bartCause::bartc`` defaults (bartCause 1.0-x, ``R/bartc.R``, ``R/treatmentFit.R``,
#: ``R/responseFit.R``): ``method.rsp = "bart"``, ``method.trt = "bart"``, ``estimand = "ate"``,
#: ``p.scoreAsCovariate = TRUE``, ``commonSup.rule = "none"``; both models are ``dbarts::bart2``
#: with its defaults except ``n.chains = 10`` (set by bartCause): 75 trees, 500 burn-in and 500 kept
#: draws per chain, thinning 1, tree prior ``base = 0.95``, ``power = 2``, ``k = 2`` (continuous
#: response), residual-variance prior ``sigdf = 3``, ``sigquant = 0.90`` around the least-squares
#: estimate, 100 cut points per covariate.
BARTC_DEFAULTS: dict[str, Any] = {
    "method_trt": "bart",
    "p_score_as_covariate": True,
    "n_chains": 10,
    "n_burn": 500,
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


def _sigma2_prior(D: np.ndarray, y: np.ndarray, sigdf: float, sigquant: float) -> tuple[float, float]:
    """dbarts' residual-variance prior ``sigma^2 ~ sigdf * lambda / chi^2_sigdf`` as the
    ``IG(shape, scale)`` of stochtree, on stochtree's standardized outcome scale.

    As dbarts: ``sigest`` is the residual standard deviation of the least-squares fit of ``y`` on
    ``[1, D]`` (``sd(y)`` when there are more columns than units), and ``lambda`` puts ``sigest`` at
    the ``sigquant`` quantile of the prior of ``sigma``.
    """
    from scipy.stats import chi2

    n = len(y)
    sd = float(np.std(y))  # stochtree's scale (ddof 0)
    design = np.column_stack([np.ones(n), D])
    if design.shape[1] < n:
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        resid = y - design @ beta
        rank = np.linalg.matrix_rank(design)
        sigest = float(np.sqrt(np.sum(resid**2) / max(n - rank, 1)))
    else:
        sigest = float(np.std(y, ddof=1))
    sigest_std = sigest / sd if sd > 0 else 1.0
    lam = sigest_std**2 * float(chi2.ppf(1.0 - sigquant, sigdf)) / sigdf
    return sigdf / 2.0, sigdf * lam / 2.0


def _sample_bart(
    X: np.ndarray, y: np.ndarray, *, binary: bool, n_trees: int, k: float, p: dict[str, Any], seed: int
) -> Any:
    """One ``dbarts::bart2`` fit with bartCause's settings, as closely as stochtree allows."""
    from stochtree import BARTModel, OutcomeModel

    general: dict[str, Any] = {
        "random_seed": int(seed),
        "num_threads": 1,
        "num_chains": int(p["n_chains"]),
        "keep_every": 1,
        "cutpoint_grid_size": int(p["n_cuts"]),
    }
    forest: dict[str, Any] = {
        "num_trees": int(n_trees),
        "alpha": float(p["base"]),
        "beta": float(p["power"]),
        "max_depth": -1,  # dbarts has no depth limit
        "sample_sigma2_leaf": False,  # dbarts' leaf prior is fixed, calibrated by k
    }
    if binary:
        general["outcome_model"] = OutcomeModel(outcome="binary", link="probit")
        general["sample_sigma2_global"] = False  # fixed at 1 under a probit link
        # dbarts: f(x) on the probit scale, leaf sd 3 / (k sqrt(m)), so +-3 is k prior sd away.
        forest["sigma2_leaf_init"] = (3.0 / (k * math.sqrt(n_trees))) ** 2
    else:
        sd = float(np.std(y))
        spread = (float(np.max(y)) - float(np.min(y))) / sd if sd > 0 else 1.0
        # dbarts rescales y to [-0.5, 0.5]; leaf sd 0.5 / (k sqrt(m)) there, i.e. range / (2 k sqrt(m)).
        forest["sigma2_leaf_init"] = (spread / (2.0 * k * math.sqrt(n_trees))) ** 2
        shape, scale = _sigma2_prior(X, y, float(p["sigdf"]), float(p["sigquant"]))
        general.update({"sigma2_global_shape": shape, "sigma2_global_scale": scale})
    model = BARTModel()
    model.sample(
        X_train=np.ascontiguousarray(X, dtype=float),
        y_train=np.asarray(y, dtype=float),
        num_gfr=0,  # dbarts starts every chain from single-node trees, no grow-from-root warm start
        num_burnin=int(p["n_burn"]),
        num_mcmc=int(p["n_samples"]),
        general_params=general,
        mean_forest_params=forest,
    )
    return model


def bartc_estimate(
    X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int, p: dict[str, Any], level: float = 0.95
) -> EffectEstimate:
    """``bartCause::bartc`` with its defaults, and what the paper's code extracted from it.

    1. treatment model (``method.trt = "bart"``): probit BART of ``t`` on ``X``; the propensity
       score is the posterior mean of ``Phi(f(x))`` (``"glm"``: a logistic regression; ``"none"``);
    2. response model (``method.rsp = "bart"``): BART of ``y`` on ``[X, t, ps]``;
    3. as ``benchmark.ipynb``: ATE = posterior mean of ``extract(fit, type = "sate")``, whose draws
       average ``y_i - y_cf`` over the treated and ``y_cf - y_i`` over the controls, ``y_cf`` a
       posterior-predictive draw of the counterfactual (``mu_cf + N(0, sigma^2)``); CATE =
       posterior mean of ``extract(fit, type = "icate")`` (``mu_1 - mu_0``) with the interval
       ``mean -/+ z * sd`` over the draws. The ATE interval, which the paper did not use, is
       bartCause's ``summary`` one (``ci.style = "norm"``): ``mean -/+ z * sd`` of the SATE draws.
    """
    from scipy.stats import norm

    n = len(t)
    X = np.asarray(X, dtype=float)
    method_trt = p["method_trt"]
    ps = None
    if method_trt == "bart":
        trt_model = _sample_bart(
            X, t.astype(float), binary=True, n_trees=p["n_trees_trt"], k=p["k_trt"], p=p, seed=seed
        )
        prob = trt_model.predict(X, type="posterior", terms="y_hat", scale="probability")
        ps = np.asarray(prob, dtype=float).reshape(n, -1).mean(axis=1)
    elif method_trt == "glm":
        from sklearn.linear_model import LogisticRegression

        # R's glm(family = binomial): unpenalized logistic regression on the covariates
        glm = LogisticRegression(C=np.inf, max_iter=10_000).fit(X, t)
        ps = glm.predict_proba(X)[:, 1]
    elif method_trt != "none":
        raise ValueError(f"method_trt must be 'bart', 'glm' or 'none', not {method_trt!r}")

    cols = [X, t.astype(float)[:, None]]
    if ps is not None and p["p_score_as_covariate"]:
        cols.append(ps[:, None])
    D = np.column_stack(cols)
    j_t = X.shape[1]
    rsp_model = _sample_bart(D, y, binary=False, n_trees=p["n_trees"], k=p["k"], p=p, seed=seed + 1)
    D1, D0 = D.copy(), D.copy()
    D1[:, j_t], D0[:, j_t] = 1.0, 0.0
    mu1 = np.asarray(rsp_model.predict(D1, type="posterior", terms="y_hat"), dtype=float).reshape(n, -1)
    mu0 = np.asarray(rsp_model.predict(D0, type="posterior", terms="y_hat"), dtype=float).reshape(n, -1)
    sigma = np.sqrt(np.asarray(rsp_model.global_var_samples, dtype=float).reshape(-1))

    icate = mu1 - mu0  # (n, draws)
    treated = t.astype(bool)[:, None]
    mu_cf = np.where(treated, mu0, mu1)
    rng = np.random.default_rng(seed)
    y_cf = mu_cf + rng.normal(size=mu_cf.shape) * sigma[None, :]
    sate_draws = np.where(treated, y[:, None] - y_cf, y_cf - y[:, None]).mean(axis=0)

    z = float(norm.ppf(0.5 + level / 2))
    cate = icate.mean(axis=1)
    cate_sd = icate.std(axis=1, ddof=1)
    ate = float(sate_draws.mean())
    ate_sd = float(sate_draws.std(ddof=1))
    return EffectEstimate(
        ate=ate,
        cate=cate,
        ate_interval=(ate - z * ate_sd, ate + z * ate_sd),
        cate_interval=np.column_stack([cate - z * cate_sd, cate + z * cate_sd]),
    )
