"""The few numbers that summarise one estimator's records: JUnit properties of a benchmark item and the
rows of :meth:`sdscm_bench.api.BenchmarkResult.summary`, so that CI dashboards and notebooks read the
same values as the terminal summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The headline fields, in the order they are reported.
FIELDS: tuple[str, ...] = (
    "estimator",
    "lm",
    "variant",
    "setting",
    "datasets",
    "failures",
    "reused",
    "ate_rmse",
    "pehe_mean",
    "pehe_sd_ite_median",
    "ate_coverage",
    "fit_seconds",
    "adapter_fingerprint",
    "library_version",
)


def _one(records: Sequence[Mapping[str, Any]], key: str) -> Any:
    """The value every record shares (None when they differ or none has it)."""
    values = {str(r.get(key)) for r in records if r.get(key) is not None}
    if len(values) != 1:
        return None
    return next(r[key] for r in records if r.get(key) is not None)


def headline(records: Sequence[Mapping[str, Any]], reused: int = 0) -> dict[str, Any]:
    """One estimator × LM × setting's headline: counts, ATE RMSE, mean PEHE, median PEHE / sd(ITE),
    ATE coverage (share of datasets whose interval covers the SATE), total fit seconds and identity.

    Failed datasets count in ``failures`` and are left out of every number; a metric no dataset has
    is None. ``fit_seconds`` sums the stored fit times, reused results included.
    """
    from sdscm_bench.metrics import aggregate

    agg = aggregate(records, n_boot=0)
    metrics = agg["metrics"]
    ok = [r for r in records if not r.get("failed")]
    seconds = [float(r["fit_seconds"]) for r in ok if r.get("fit_seconds") is not None]
    out = {
        "estimator": _one(records, "estimator"),
        "lm": _one(records, "lm"),
        "variant": _one(records, "variant"),
        "setting": _one(records, "setting"),
        "datasets": agg["n_datasets"],
        "failures": agg["n_failures"],
        "reused": reused,
        "ate_rmse": agg["ate_rmse"],
        "pehe_mean": metrics["pehe"]["mean"],
        "pehe_sd_ite_median": metrics["pehe_sd_ite"]["median"],
        "ate_coverage": metrics["ate_covered"]["mean"],
        "fit_seconds": sum(seconds) if seconds else None,
        "adapter_fingerprint": _one(records, "adapter_fingerprint"),
        "library_version": _one(records, "library_version"),
    }
    return {k: out[k] for k in FIELDS}
