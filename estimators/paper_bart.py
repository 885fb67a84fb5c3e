"""BART in the paper's configuration: ``bartCause::bartc`` defaults, as closely as stochtree allows.

The paper (``lbynum/sequence-driven-scms``, ``benchmark.ipynb``, read at commit
2002f65519021dcf2c86c58836931c2923faa14b) called, from R through rpy2,
``bartCause::bartc(response=Ytrain, treatment=Ttrain, confounders=Xtrain, keepTrees=FALSE)`` with the
covariates as candidate indices (ordinal) and ``set.seed(1)`` once before the loop over datasets, and
kept: ATE = ``mean(extract(fit, type='sate'))``; CATE = the mean of ``extract(fit, type='icate')``
per unit with the interval ``mean -/+ qnorm(0.975) * sd`` over the draws (and ITE intervals from
``type='ite'``, which the benchmark's contract has no slot for). No ATE interval was used.

``bartc``'s defaults in bartCause 1.0-x (``vdorie/bartCause``: ``R/bartc.R``, ``R/treatmentFit.R``,
``R/responseFit.R``, ``R/generics.R``): ``method.trt = "bart"`` (a probit BART of the treatment on
the covariates; the propensity score is the posterior mean of ``Phi(f(x))``; bartCause 0.x defaulted
to ``"none"``, and ``"glm"`` is a logistic regression), ``p.scoreAsCovariate = TRUE`` (the score is
added to the response model's covariates), ``method.rsp = "bart"`` (BART of ``y`` on ``[X, t, ps]``,
effects from ``mu(x, 1) - mu(x, 0)``), ``estimand = "ate"``, no common-support rule. Both models are
``dbarts::bart2`` with its defaults except ``n.chains = 10`` (set by bartCause): 75 trees, 500 burn-in
and 500 kept draws per chain (5,000 draws), no thinning, ``base = 0.95``, ``power = 2``, ``k = 2``,
``sigdf = 3``, ``sigquant = 0.90`` with ``sigest`` the least-squares residual sd, 100 cut points.

This adapter fits the same two models with stochtree (``_paper.bartc_estimate``): 10 chains of 500
burn-in + 500 kept MCMC draws each from single-node trees (no grow-from-root warm start), 75 trees
per model, ``alpha = 0.95``, ``beta = 2``, no depth limit, the leaf prior fixed at dbarts' calibration
(sd ``range(y) / (2 k sqrt(m))`` for the response, ``3 / (k sqrt(m))`` on the probit scale for the
treatment), dbarts' inverse-chi-squared residual-variance prior (``sigdf = 3`` and ``sigest`` at the
0.90 quantile, on stochtree's standardized scale), and reports what the paper kept, plus an ATE
interval as bartCause's ``summary`` gives it (``mean -/+ z * sd`` of the SATE draws).

Differences from ``bartCause::bartc`` (none can be removed with stochtree 0.4.5):

* **Sampler moves**: dbarts proposes birth/death, swap and change moves; stochtree's MCMC only
  grows and prunes, so chains mix differently (same prior, same posterior in the limit).
* **Outcome scale**: dbarts maps ``y`` to ``[-0.5, 0.5]`` (prior mean of ``f`` at the mid-range of
  ``y``) and starts ``sigma`` at ``sigest``; stochtree standardizes ``y`` to mean 0 and sd 1 (prior
  mean of ``f`` at the mean of ``y``) and starts ``sigma^2`` at the variance of ``y``. The leaf and
  residual-variance priors above are translated to stochtree's scale; the centring is not.
* **Minimum leaf size**: stochtree refuses splits that leave fewer than ``min_samples_leaf = 5``
  training units in a leaf (its default, kept); dbarts has no such control (``dbartsControl``
  exposes none), a split needs only an available cut point.
* **Cut points**: dbarts splits on a grid of 100 evenly spaced cut points per covariate
  (``n.cuts = 100``, ``useQuantiles = FALSE``); stochtree's ``cutpoint_grid_size = 100`` applies only
  to its grow-from-root sampler, while its MCMC grow move draws the split value uniformly between the
  smallest and largest value of the covariate in the leaf (``VarSplitRange`` in stochtree's
  ``tree_sampler.h``). On the released ordinal covariates (a few candidate indices each) both induce
  the same partitions.
* **Treatment-model k**: recent dbarts' ``bart2`` uses ``k = NULL``, which, as far as we could tell
  from the dbarts documentation (not confirmed from source here), means a ``chi(1.25, Inf)``
  hyperprior on ``k`` for a binary response; stochtree has no hyperprior on ``k``, so ``k = 2`` is
  fixed for the treatment model (dbarts' ``bart()`` default). The probit offset is stochtree's
  ``qnorm(mean(t))``; dbarts' may differ.
* **Chains**: stochtree runs the 10 chains one after another in one process and one random-number
  stream, restarting each from single-node trees and the initial residual variance; dbarts runs
  them as independent samplers (in threads). Same in distribution.
* **Random numbers**: different generators; results match bartCause in distribution only. The paper
  seeded R once for all datasets; here each fit is seeded by the benchmark's ``seed`` (the treatment
  model with ``seed``, the response model with ``seed + 1``, the counterfactual noise of the SATE
  draws with ``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators._paper import BARTC_DEFAULTS, bartc_estimate
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class PaperBARTAdapter(EstimatorAdapter):
    name = "paper_bart"
    library = "stochtree"
    capabilities = frozenset({"cate", "ate_interval", "cate_interval"})
    description = (
        "paper's setting: bartCause::bartc defaults (probit-BART propensity score as a covariate, "
        "75 trees, 10 chains x 500 draws) in stochtree, ordinal covariates"
    )
    requires = ("stochtree", "scipy")
    also_depends_on = ("numpy", "scipy", "scikit-learn")
    covariate_encoding = "ordinal"
    default_params: ClassVar[dict[str, Any]] = dict(BARTC_DEFAULTS)

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        with fit_context(seed):
            return bartc_estimate(X, t, y, seed, self.params)
