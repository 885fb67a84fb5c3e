"""catenets TNet (``catenets.models.torch.TLearner``): one neural network per arm. Optional."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sdscm_bench.estimators._catenets import fit_catenet
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class CATENetsTNet(EstimatorAdapter):
    name = "catenets_tnet"
    library = "catenets"
    capabilities = frozenset({"cate"})
    description = "catenets TNet (torch TLearner with MLP outcome heads); optional extra"
    requires = ("catenets", "torch")
    also_depends_on = ("numpy", "torch")
    # batch_norm=False: with catenets' default batch norm the fits on small one-hot data are
    # erratic (TARNet CATEs with sd 5 around a true effect of 1.5 on the test data).
    default_params: ClassVar[dict[str, Any]] = {
        "n_iter": 1000,
        "batch_size": 100,
        "lr": 0.001,
        "batch_norm": False,
    }

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        return fit_catenet("TLearner", X, t, y, seed, self.params)
