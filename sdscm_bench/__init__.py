"""sdscm-bench: pytest-style benchmarks of causal effect estimators on SD-SCM data.

``sdscm_bench.run(...)`` runs the benchmark from Python (:mod:`sdscm_bench.api`); it is imported on
first use, so ``import sdscm_bench`` stays cheap (no torch, no estimator libraries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["BenchmarkResult", "BenchmarkUsageError", "run"]

if TYPE_CHECKING:
    from sdscm_bench.api import BenchmarkResult, BenchmarkUsageError, run


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sdscm_bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'sdscm_bench' has no attribute {name!r}")
