"""Is a dataset fit to rank estimators? Overlap, effect and outcome degeneracy, confounding strength.

An SD-SCM can be exactly right and still give data on which every estimator fails for reasons that
say nothing about the estimators: 97% treated units (no overlap), an outcome that takes one value,
effects that are zero for 95% of units, near-constant covariates, or confounding so weak that every
adjustment equals the difference in means. :func:`diagnose` measures these per dataset (from the
table alone, so it works for generated and released data), :func:`quality_problems` compares them
with thresholds (:data:`DEFAULT_THRESHOLDS`, overridable by a spec's ``quality:`` mapping), and
:data:`RECORD_FIELDS` are the few numbers every benchmark record carries so the leaderboard can
summarise them per family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sdscm_bench.dataset import SDSCMDataset

#: Propensities outside [OVERLAP_LOW, 1 - OVERLAP_LOW] count as lacking overlap (a common trimming rule).
OVERLAP_LOW = 0.05

#: Default thresholds; a spec's ``quality:`` mapping overrides any of them (None switches one off).
DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "min_treated_share": 0.10,  # fewer treated (or control, below) units leave one arm nearly empty
    "max_treated_share": 0.90,
    "min_overlap_share": 0.80,  # share of units with propensity in [0.05, 0.95]
    "min_ess_share": 0.10,  # effective sample size of the inverse-propensity weights, over n
    "min_nonzero_ite_share": 0.05,  # share of units whose true effect is not zero
    "max_outcome_share": 0.95,  # share of the most common outcome value (near-constant outcome)
    "max_value_share": 0.99,  # share of the most common value of any spec variable (near-constant variable)
}
#: Bumped when what :func:`diagnose` computes changes; stored diagnostics of another version are redone.
#: 2: a score or probability outcome's sampled value is left out of ``max_value_share``.
DIAGNOSTICS_VERSION = 2

#: Diagnostics copied into every benchmark record (prefixed ``data_``), for the leaderboard's summary.
RECORD_FIELDS: tuple[str, ...] = (
    "treated_share",
    "overlap_share",
    "ess_share",
    "sd_ite",
    "nonzero_ite_share",
    "max_outcome_share",
    "dim_bias",
)


def _quantiles(x: np.ndarray) -> dict[str, float]:
    qs = np.quantile(x, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {f"q{int(q * 100):02d}": float(v) for q, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), qs, strict=True)}


def _shares(values: np.ndarray) -> dict[str, float]:
    uniq, counts = np.unique(values, return_counts=True)
    return {
        repr(float(u)) if isinstance(u, np.floating) else str(u): float(c) / values.size
        for u, c in zip(uniq, counts, strict=True)
    }


def ipw_ess_share(t: np.ndarray, propensity: np.ndarray) -> float | None:
    """Kish's effective sample size of the inverse-propensity weights, over n; None if a weight is infinite."""
    p = np.asarray(propensity, dtype=np.float64)
    w = np.where(t == 1, 1.0 / np.where(p > 0, p, np.nan), 1.0 / np.where(p < 1, 1.0 - p, np.nan))
    if not np.all(np.isfinite(w)):
        return None
    return float(w.sum() ** 2 / np.sum(w**2) / w.size)


def diagnose(ds: SDSCMDataset) -> dict[str, Any]:
    """Diagnostics of one dataset (units whose treatment is control or treated).

    Keys: ``n_units``, ``treated_share``, ``propensity`` (min, max, quantiles), ``overlap_share``,
    ``ess_share``, ``sate``, ``sd_ite``, ``nonzero_ite_share``, ``ite`` (quantiles), ``outcome``
    (value shares when y takes at most 10 values, else quantiles), ``max_outcome_share``,
    ``value_shares`` ({variable: {candidate: share}}), ``max_value_share`` ({variable: share}),
    ``dim`` (difference in means), ``dim_bias`` (dim - SATE) and ``dim_bias_over_sd_y``.
    """
    rows = ds.table["t"].to_numpy() >= 0
    t, y, ite = ds.t, ds.y, ds.ite
    n = int(t.size)
    out: dict[str, Any] = {"version": DIAGNOSTICS_VERSION, "n_units": n}
    if n == 0:
        return out
    out["treated_share"] = float(t.mean())
    if "propensity" in ds.table:
        p = ds.table["propensity"].to_numpy(dtype=np.float64)[rows]
        out["propensity"] = {"min": float(p.min()), "max": float(p.max()), **_quantiles(p)}
        out["overlap_share"] = float(np.mean((p >= OVERLAP_LOW) & (p <= 1.0 - OVERLAP_LOW)))
        out["ess_share"] = ipw_ess_share(t, p)
    else:
        out["propensity"] = out["overlap_share"] = out["ess_share"] = None
    out["sate"] = float(ite.mean())
    out["sd_ite"] = float(ite.std(ddof=0))
    out["nonzero_ite_share"] = float(np.mean(np.abs(ite) > 1e-12))
    out["ite"] = _quantiles(ite)
    y_shares = _shares(y)
    out["outcome"] = y_shares if len(y_shares) <= 10 else _quantiles(y)
    out["max_outcome_share"] = max(y_shares.values())
    value_shares = {}
    for var in ds.family.variables:
        if var.name in ds.table:
            codes = ds.table[var.name].to_numpy()[rows]
            counts = np.bincount(codes.astype(np.int64), minlength=len(var.candidates)) / n
            value_shares[var.name] = {c: float(s) for c, s in zip(var.candidates, counts, strict=False)}
    out["value_shares"] = value_shares
    # A score or probability outcome is read off the outcome's log-likelihoods, never its sampled
    # value, so a near-constant sampled outcome does not make y degenerate (max_outcome_share does).
    outcome = ds.family.outcome
    unused = {outcome.variable} if outcome.definition != "category" else set()
    out["max_value_share"] = {v: max(s.values()) for v, s in value_shares.items() if v not in unused}
    if 0 < t.sum() < n:
        dim = float(y[t == 1].mean() - y[t == 0].mean())
        sd_y = float(y.std(ddof=0))
        out["dim"], out["dim_bias"] = dim, dim - out["sate"]
        out["dim_bias_over_sd_y"] = (dim - out["sate"]) / sd_y if sd_y > 0 else None
    else:
        out["dim"] = out["dim_bias"] = out["dim_bias_over_sd_y"] = None
    return out


def thresholds_for(family: Any) -> dict[str, float | None]:
    """The defaults, overridden by the family's ``quality:`` mapping where the spec gives one."""
    return {**DEFAULT_THRESHOLDS, **(getattr(family, "quality", None) or {})}


def quality_problems(diag: Mapping[str, Any], thresholds: Mapping[str, float | None]) -> list[str]:
    """One sentence per violated threshold, each with the number and the threshold (empty: fit to rank)."""
    return [message for _, message in violations(diag, thresholds)]


def violations(diag: Mapping[str, Any], thresholds: Mapping[str, float | None]) -> list[tuple[str, str]]:
    """(threshold key, sentence) per violated threshold, for callers that count them by key."""
    problems: list[tuple[str, str]] = []

    def check(value: float | None, key: str, what: str, why: str) -> None:
        limit = thresholds.get(key)
        if value is None or limit is None:
            return
        bad = value < limit if key.startswith("min_") else value > limit
        if bad:
            side = "below" if key.startswith("min_") else "above"
            problems.append((key, f"{what} {value:.3g} {side} {key} {limit:g} ({why})"))

    share = diag.get("treated_share")
    check(share, "min_treated_share", "treated share", "few treated units: no overlap")
    check(share, "max_treated_share", "treated share", "few control units: no overlap")
    check(diag.get("overlap_share"), "min_overlap_share", "share of units with propensity in [0.05, 0.95]",
          "weak overlap: estimators must extrapolate")  # fmt: skip
    check(diag.get("ess_share"), "min_ess_share", "IPW effective sample size / n", "extreme weights")
    check(diag.get("nonzero_ite_share"), "min_nonzero_ite_share", "share of units with a nonzero ITE",
          "near-degenerate effects")  # fmt: skip
    check(diag.get("max_outcome_share"), "max_outcome_share", "share of the most common outcome value",
          "near-constant outcome")  # fmt: skip
    for var, top in (diag.get("max_value_share") or {}).items():
        check(
            top,
            "max_value_share",
            f"variable {var!r}: share of its most common value",
            "near-constant variable",
        )
    return problems


def record_fields(diag: Mapping[str, Any]) -> dict[str, float | None]:
    """The ``data_*`` fields a benchmark record carries (see :data:`RECORD_FIELDS`)."""
    return {f"data_{k}": diag.get(k) for k in RECORD_FIELDS}


def dataset_diagnostics(ds: SDSCMDataset) -> dict[str, Any]:
    """The dataset's diagnostics: stored in its metadata at generation, else computed now and kept there.

    Stored diagnostics of another :data:`DIAGNOSTICS_VERSION` (older code) are recomputed, so a cached
    dataset never reports what the current checks would not.
    """
    diag = ds.meta.get("diagnostics")
    if not isinstance(diag, dict) or diag.get("version") != DIAGNOSTICS_VERSION:
        diag = diagnose(ds)
        ds.meta["diagnostics"] = diag
    return diag
