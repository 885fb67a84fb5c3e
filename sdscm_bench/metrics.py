"""Scores of one estimate against a dataset's counterfactual truth, and their summaries across datasets.

The formulas are in :data:`FORMULAS` (markdown, quoted by the README) so that the documentation and
the code are read side by side. Two conventions matter when comparing with the paper:

- ``cate_r2`` uses the truth ``ite`` as y_true. The paper's released analysis code passed the estimate
  as y_true, which normalises by the spread of the *estimate* and rewards estimators that shrink
  their CATEs less; we do not copy it (see ``tests/test_metrics.py`` for a case where they differ).
- Standard deviations use ``ddof=0`` (the population sd of the units at hand) everywhere, because the
  units of a dataset are the whole population the SATE and the PEHE are defined over.

Metrics an estimator cannot produce (no CATE, no interval) are ``None``, never NaN, so that JSON stays
valid and summaries skip them explicitly. A NaN or infinite estimate is not a number to be averaged: it
raises :class:`NonFiniteEstimate`, and the caller records the dataset as failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sdscm_bench.errors import SdscmError

FORMULAS = r"""
**Per dataset.** Units i = 1..n are those whose treatment is control or treated;
`ite_i = y_i(1) - y_i(0)` comes from the dataset's counterfactual worlds, `y` is the factual outcome,
and `sd` is the population standard deviation (ddof = 0) everywhere.

- `sate` = mean(ite)
- `ate_error` = ate_hat - SATE; `ate_abs_error` = |ate_hat - SATE|
- `pehe` = sqrt(mean_i((cate_hat_i - ite_i)^2))
- `cate_r2` = 1 - sum_i((ite_i - cate_hat_i)^2) / sum_i((ite_i - mean(ite))^2), with y_true = ite
  (the paper's released code used the estimate as y_true; we do not)
- `pehe_sd_y` = pehe / sd(y); `pehe_sd_ite` = pehe / sd(ite) (the leaderboard's "standardized PEHE")
- `cate_coverage` = fraction of units with lo_i <= ite_i <= hi_i (inclusive); `cate_width` = mean(hi_i - lo_i)
- `cate_unbounded` = fraction of units whose CATE interval has an infinite bound (0 unless infinite
  bounds are allowed, see below; `cate_width` then averages the bounded units only)
- `ate_covered` = (lo <= SATE <= hi) (inclusive); `ate_width` = hi - lo
- `fit_seconds` = wall-clock seconds of fit + predict, as measured by the harness

`None` (never NaN) marks what is missing or undefined: the CATE metrics without a CATE, the coverage
and width metrics without the matching interval, `cate_r2` and `pehe_sd_ite` when sd(ite) = 0 (a
constant true effect), `pehe_sd_y` when sd(y) = 0, `fit_seconds` when not measured. A NaN or infinite
ate, CATE or interval bound, or an interval with lo > hi, fails the dataset: no numbers are recorded.
With `allow_infinite_bounds=True` an interval may have lo = -inf or hi = +inf (it then covers on that
side; an unbounded ATE interval has `ate_width` None); NaN still fails.

**Across datasets.** d = 1..D are the datasets that did not fail; `n_datasets` counts all attempted
datasets and `n_failures` the failed ones, which are excluded from every number below.

- `ate_rmse` = sqrt(mean_d((ate_hat_d - SATE_d)^2))
- `ate_r2` = 1 - sum_d((SATE_d - ate_hat_d)^2) / sum_d((SATE_d - mean_d(SATE_d))^2);
  `None` if D < 2 or all SATE_d are equal
- for each per-dataset metric: mean and median over the datasets where it is not `None`
  (`ate_covered` counts as 0/1, so its mean is the fraction of datasets whose ATE interval covers the SATE)
- intervals: percentile bootstrap over datasets, B = 2000 resamples of the D values with replacement and
  a fixed seed (0) by default; the 95% interval is the 2.5th and 97.5th percentiles of the resampled
  statistic
"""

#: Per-dataset metrics, in the order they are documented and summarised.
METRIC_KEYS: tuple[str, ...] = (
    "ate_error",
    "ate_abs_error",
    "pehe",
    "cate_r2",
    "pehe_sd_y",
    "pehe_sd_ite",
    "cate_coverage",
    "cate_width",
    "cate_unbounded",
    "ate_covered",
    "ate_width",
    "fit_seconds",
)

Interval = tuple[float, float]


class EstimateError(SdscmError):
    """An estimate cannot be scored; the harness records the dataset as failed with this message."""


class NonFiniteEstimate(EstimateError):
    """The estimate contains NaN or infinity: averaging it would poison every summary."""


class MalformedEstimate(EstimateError):
    """The estimate has the wrong shape, is missing, or has an interval with lo > hi."""


def _finite_array(name: str, value: Any, shape: tuple[int, ...], *, allow_inf: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MalformedEstimate(f"{name} is not numeric: {exc}") from exc
    if arr.shape != shape:
        raise MalformedEstimate(f"{name} has shape {arr.shape}, expected {shape}")
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        what = "NaN" if allow_inf else "non-finite value(s) (NaN or inf)"
        raise NonFiniteEstimate(f"{name} has {int(bad.sum())} {what}")
    return arr


def _check_bounds(name: str, lo: np.ndarray, hi: np.ndarray) -> None:
    inverted = lo > hi
    if inverted.any():
        raise MalformedEstimate(f"{name} has lo > hi in {int(inverted.sum())} place(s)")
    # Only the open side of an interval may be infinite: lo = +inf or hi = -inf bounds nothing.
    wrong_side = (lo == np.inf) | (hi == -np.inf)
    if wrong_side.any():
        raise MalformedEstimate(f"{name} has lo = +inf or hi = -inf in {int(wrong_side.sum())} place(s)")


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Coefficient of determination of y_pred for y_true; None when y_true is constant (undefined).

    Argument order matters: the denominator is the spread of ``y_true``.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        return None
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / ss_tot


def dataset_metrics(
    *,
    ate: float,
    cate: np.ndarray | None,
    ate_interval: Sequence[float] | None,
    cate_interval: np.ndarray | None,
    ite: np.ndarray,
    y: np.ndarray,
    fit_seconds: float | None,
    allow_infinite_bounds: bool = False,
) -> dict[str, float | bool | None]:
    """Score one estimate on one dataset (formulas in :data:`FORMULAS`).

    By default an infinite interval bound fails the dataset. ``allow_infinite_bounds=True`` accepts
    -inf lower / +inf upper bounds (methods such as weighted conformal intervals give them for units
    they cannot bound): they count in coverage, ``cate_width`` averages the bounded units only and
    ``cate_unbounded`` reports the fraction that were not; an unbounded ATE interval has ``ate_width``
    None. NaN always fails.

    Returns ``sate``, ``ate`` and every key of :data:`METRIC_KEYS`. Raises :class:`NonFiniteEstimate`
    or :class:`MalformedEstimate` for an estimate that must be recorded as a failure, and ValueError
    for bad ground truth (a data bug, not an estimator failure).
    """
    ite = np.asarray(ite, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if ite.ndim != 1 or ite.size == 0:
        raise ValueError(f"ite must be a non-empty 1-d array, got shape {ite.shape}")
    if y.shape != ite.shape:
        raise ValueError(f"y has shape {y.shape} but ite has shape {ite.shape}")
    if not (np.isfinite(ite).all() and np.isfinite(y).all()):
        raise ValueError("ground truth ite or y contains NaN or inf")
    n = ite.size

    if ate is None:
        raise MalformedEstimate("ate is missing")
    ate_hat = float(_finite_array("ate", ate, ()))
    sate = float(ite.mean())
    sd_y = float(y.std(ddof=0))
    sd_ite = float(ite.std(ddof=0))

    out: dict[str, float | bool | None] = {"ate": ate_hat, "sate": sate}
    out["ate_error"] = ate_hat - sate
    out["ate_abs_error"] = abs(ate_hat - sate)

    # Validate everything before computing, so a bad interval fails even when the CATE is fine.
    cate_hat = None if cate is None else _finite_array("cate", cate, (n,))
    inf_ok = {"allow_inf": allow_infinite_bounds}
    ci = None if cate_interval is None else _finite_array("cate_interval", cate_interval, (n, 2), **inf_ok)
    ai = None if ate_interval is None else _finite_array("ate_interval", ate_interval, (2,), **inf_ok)
    if ci is not None:
        _check_bounds("cate_interval", ci[:, 0], ci[:, 1])
    if ai is not None:
        _check_bounds("ate_interval", ai[:1], ai[1:])

    if cate_hat is None:
        out.update(pehe=None, cate_r2=None, pehe_sd_y=None, pehe_sd_ite=None)
    else:
        pehe = float(np.sqrt(np.mean((cate_hat - ite) ** 2)))
        out["pehe"] = pehe
        out["cate_r2"] = r2_score(ite, cate_hat)  # y_true = truth; None if sd(ite) = 0
        out["pehe_sd_y"] = pehe / sd_y if sd_y > 0 else None
        out["pehe_sd_ite"] = pehe / sd_ite if sd_ite > 0 else None

    if ci is None:
        out.update(cate_coverage=None, cate_width=None, cate_unbounded=None)
    else:
        lo, hi = ci[:, 0], ci[:, 1]
        bounded = np.isfinite(lo) & np.isfinite(hi)
        out["cate_coverage"] = float(np.mean((lo <= ite) & (ite <= hi)))
        out["cate_width"] = float(np.mean(hi[bounded] - lo[bounded])) if bounded.any() else None
        out["cate_unbounded"] = float(np.mean(~bounded))

    if ai is None:
        out.update(ate_covered=None, ate_width=None)
    else:
        out["ate_covered"] = bool(ai[0] <= sate <= ai[1])
        out["ate_width"] = float(ai[1] - ai[0]) if np.isfinite(ai).all() else None

    out["fit_seconds"] = None if fit_seconds is None else float(fit_seconds)
    return out


def failed_metrics(
    *, sate: float | None = None, fit_seconds: float | None = None
) -> dict[str, float | bool | None]:
    """The metric fields of a failed dataset: all None, so a failed row never looks like a score.

    The SATE is truth, not a score, so the caller may keep it for reference.
    """
    out: dict[str, float | bool | None] = {"ate": None, "sate": sate}
    out.update(dict.fromkeys(METRIC_KEYS))
    out["fit_seconds"] = fit_seconds
    return out


def bootstrap_ci(
    values: np.ndarray,
    stat: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval | None:
    """Percentile bootstrap interval of ``stat`` over resampled datasets.

    ``stat`` maps an (n_boot, k) array of resamples to n_boot statistics (e.g. ``lambda a: a.mean(1)``),
    so all resamples are computed at once. None when there are no values or n_boot is 0.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or n_boot <= 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    stats = stat(values[idx])
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _mean_rows(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=1)


def _median_rows(a: np.ndarray) -> np.ndarray:
    return np.median(a, axis=1)


def _rmse_rows(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(a**2, axis=1))


def summarize(
    values: Iterable[float], *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """Mean and median of one metric over datasets, each with a percentile bootstrap interval."""
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": None, "mean_ci": None, "median": None, "median_ci": None}
    kw = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "mean_ci": bootstrap_ci(v, _mean_rows, **kw),
        "median": float(np.median(v)),
        "median_ci": bootstrap_ci(v, _median_rows, **kw),
    }


def aggregate(
    records: Iterable[Mapping[str, Any]],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Summaries of one estimator's records across datasets (formulas in :data:`FORMULAS`).

    Records with a truthy ``failed`` are counted in ``n_failures`` and excluded from every number.
    Returns ``n_datasets`` (all records), ``n_failures``, ``ate_rmse`` (+ ``ate_rmse_ci``), ``ate_r2``
    and ``metrics``: {metric: {n, mean, mean_ci, median, median_ci}} for each of :data:`METRIC_KEYS`.
    Pass ``n_boot=0`` to skip the bootstrap (intervals are then None).
    """
    records = list(records)
    ok = [r for r in records if not r.get("failed", False)]
    kw = {"n_boot": n_boot, "seed": seed, "confidence": confidence}

    for r in ok:
        for key in ("ate", "sate"):
            if r.get(key) is None:
                raise ValueError(f"record for dataset {r.get('dataset')!r} is not failed but has no {key!r}")
    ate_hat = np.asarray([float(r["ate"]) for r in ok], dtype=np.float64)
    sate = np.asarray([float(r["sate"]) for r in ok], dtype=np.float64)
    err = ate_hat - sate

    out: dict[str, Any] = {"n_datasets": len(records), "n_failures": len(records) - len(ok)}
    if ok:
        out["ate_rmse"] = float(np.sqrt(np.mean(err**2)))
        out["ate_rmse_ci"] = bootstrap_ci(err, _rmse_rows, **kw)
    else:
        out["ate_rmse"] = out["ate_rmse_ci"] = None
    out["ate_r2"] = r2_score(sate, ate_hat) if len(ok) >= 2 else None

    out["metrics"] = {m: summarize((r[m] for r in ok if r.get(m) is not None), **kw) for m in METRIC_KEYS}
    return out
