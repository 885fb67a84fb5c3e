"""Shared code of the optional catenets adapters (not an adapter module).

catenets is an optional extra (``pip install 'sdscm-bench[catenets]'``); it is imported only
when one of these adapters runs, and the registry lists them as unavailable without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdscm_bench.estimators._common import fit_context
from sdscm_bench.estimators.base import EffectEstimate


def fit_catenet(
    model_name: str, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int, params: dict[str, Any]
) -> EffectEstimate:
    """Fit ``catenets.models.torch.<model_name>`` on CPU and return its CATEs."""
    with fit_context(seed):
        import torch
        from catenets.models import torch as catenets_torch

        torch.manual_seed(seed)  # torch may have been imported just now, after fit_context seeded
        n_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model = getattr(catenets_torch, model_name)(
                n_unit_in=X.shape[1], binary_y=False, seed=seed, **params
            )
            model.fit(X.astype(np.float32), np.asarray(y, dtype=np.float32), t.astype(np.float32))
            with torch.no_grad():
                cate = model.predict(X.astype(np.float32))
        finally:
            torch.set_num_threads(n_threads)
    cate = np.asarray(cate.detach().cpu().numpy() if hasattr(cate, "detach") else cate, dtype=float)
    cate = cate.reshape(-1)
    return EffectEstimate(ate=float(cate.mean()), cate=cate)
