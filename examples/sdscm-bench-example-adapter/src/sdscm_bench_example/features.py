"""Covariate expansion used by the example adapter.

A helper module of the adapter's own package: sdscm-bench's adapter fingerprint hashes the source
of every module of this package that the adapter imports, so editing this file makes the benchmark
refit the adapter instead of reusing stored results.
"""

from __future__ import annotations

import numpy as np


def expand(X: np.ndarray, interactions: bool) -> np.ndarray:
    """The non-constant columns of ``X`` and, with ``interactions``, their pairwise products.

    The harness one-hot encodes categorical covariates, so products of indicators let a linear
    outcome model express effects that differ between categories of two variables.
    """
    X = np.asarray(X, dtype=float)
    X = X[:, X.std(axis=0) > 0]
    if not interactions or X.shape[1] < 2:
        return X
    rows, cols = np.triu_indices(X.shape[1], k=1)
    products = X[:, rows] * X[:, cols]
    products = products[:, products.std(axis=0) > 0]
    return np.hstack([X, products])
