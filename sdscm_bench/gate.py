"""Regression gate: fail a run whose estimators got worse than a saved baseline, like pytest-benchmark's
``--benchmark-compare-fail``.

Comparisons are paired: a new record is compared only with the baseline record of the same estimator,
LM, setting and dataset fingerprint, so a run over a subset of datasets is judged on that subset and a
changed dataset (new fingerprint) is never compared with an old one. For each gated metric and each
(estimator, LM, setting), the paired mean difference ``mean(new - baseline)`` over the datasets where
both runs have the metric is a regression when it is worse than the baseline mean by more than::

    allowed = abs_tol + rel_tol * |mean of the baseline values|

(the same shape as ``numpy.isclose``). Default tolerances, :data:`DEFAULT_TOLERANCES`:

| metric | better | abs_tol | rel_tol |
|---|---|---|---|
| ``ate_abs_error`` | lower | 0.01 | 10% |
| ``pehe`` | lower | 0.01 | 10% |
| ``cate_r2`` | higher | 0.05 | 0 |

Why these: error metrics are in outcome units, which differ between families (log-probability scores,
probabilities, 0/1 categories), so the relative 10% carries the scale and the absolute 0.01 (one
percentage point on probability outcomes) stops near-zero baselines from flagging noise. R² is
unitless and often near 0, where a relative tolerance means nothing, so it gets a flat 0.05. Seeded
estimators reproduce their numbers far more closely than this; the gate is for real regressions, not
for library-version jitter.

Besides metrics, a dataset that succeeded in the baseline and fails now is a regression, and so is a
metric the baseline had and the new run lacks (a lost capability, e.g. no more CATE intervals).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sdscm_bench.errors import SdscmError
from sdscm_bench.results_file import ResultsFileError, read_results, record_key


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: ``abs_tol + rel_tol * |baseline mean|``."""

    better: Literal["lower", "higher"]
    abs_tol: float
    rel_tol: float = 0.0

    def allowed(self, baseline: float) -> float:
        return self.abs_tol + self.rel_tol * abs(baseline)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "ate_abs_error": Tolerance("lower", abs_tol=0.01, rel_tol=0.10),
    "pehe": Tolerance("lower", abs_tol=0.01, rel_tol=0.10),
    "cate_r2": Tolerance("higher", abs_tol=0.05, rel_tol=0.0),
}


class BaselineError(SdscmError):
    """The baseline results file is missing or malformed."""


@dataclass(frozen=True)
class Regression:
    """One thing that got worse, for one estimator on one LM × setting."""

    estimator: str
    lm: str
    setting: str
    metric: str  # a gated metric, "failed" (new failures) or "missing:<metric>" (lost capability)
    baseline: float | None
    new: float | None
    delta: float | None  # paired mean difference new - baseline
    allowed: float | None
    n_paired: int
    message: str


def load_baseline(path: str | Path) -> list[dict[str, Any]]:
    """Records of a results file written by :mod:`sdscm_bench.leaderboard`, with an error naming the file."""
    path = Path(path)
    if not path.exists():
        raise BaselineError(
            f"{path}: baseline results file not found; run the benchmark once to write it, "
            "or point the gate at an existing results JSON"
        )
    try:
        return read_results(path)["records"]
    except ResultsFileError as exc:
        raise BaselineError(f"baseline is malformed: {exc}") from exc


def pair_records(
    baseline_records: Iterable[Mapping[str, Any]], new_records: Iterable[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(baseline, new) pairs with the same estimator, LM, setting and dataset fingerprint.

    An empty list means there is nothing to compare; the caller should warn rather than pass silently.
    """
    base = {record_key(r): r for r in baseline_records}
    return [(base[k], r) for r in new_records if (k := record_key(r)) in base]


def _where(estimator: str, lm: str, setting: str) -> str:
    return f"{estimator} (LM {lm}, setting {setting})"


def compare(
    baseline_records: Iterable[Mapping[str, Any]],
    new_records: Iterable[Mapping[str, Any]],
    tolerances: Mapping[str, Tolerance] | None = None,
) -> list[Regression]:
    """Regressions of the new run against the baseline, over paired datasets only (see module doc).

    ``tolerances`` maps each gated metric to its :class:`Tolerance`; None gates the defaults.
    """
    tolerances = DEFAULT_TOLERANCES if tolerances is None else tolerances
    groups: dict[tuple[str, str, str], list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for b, n in pair_records(baseline_records, new_records):
        groups.setdefault((str(n["estimator"]), str(n["lm"]), str(n["setting"])), []).append((b, n))

    out: list[Regression] = []
    for (est, lm, setting), pairs in sorted(groups.items()):
        where = _where(est, lm, setting)
        newly_failed = [n for b, n in pairs if not b.get("failed") and n.get("failed")]
        if newly_failed:
            names = ", ".join(str(n.get("dataset")) for n in newly_failed[:5])
            more = f" and {len(newly_failed) - 5} more" if len(newly_failed) > 5 else ""
            errors = {str(n.get("error")) for n in newly_failed}
            first_error = sorted(errors)[0]
            message = (
                f"{where}: failed on {len(newly_failed)} of {len(pairs)} paired datasets that succeeded "
                f"in the baseline ({names}{more}); error: {first_error}"
            )
            out.append(Regression(est, lm, setting, "failed", None, None, None, None, len(pairs), message))
        both_ok = [(b, n) for b, n in pairs if not b.get("failed") and not n.get("failed")]
        for metric, tol in tolerances.items():
            lost = [n for b, n in both_ok if b.get(metric) is not None and n.get(metric) is None]
            if lost:
                message = (
                    f"{where}: {metric} is missing on {len(lost)} of {len(both_ok)} paired datasets "
                    "where the baseline had it"
                )
                out.append(
                    Regression(
                        est, lm, setting, f"missing:{metric}", None, None, None, None, len(both_ok), message
                    )
                )
            vals = [
                (float(b[metric]), float(n[metric]))
                for b, n in both_ok
                if b.get(metric) is not None and n.get(metric) is not None
            ]
            if not vals:
                continue
            bv, nv = np.asarray(vals).T
            base_mean, new_mean = float(bv.mean()), float(nv.mean())
            delta = float(np.mean(nv - bv))
            worse_by = delta if tol.better == "lower" else -delta
            allowed = tol.allowed(base_mean)
            if worse_by > allowed:
                n_worse = int(np.sum(nv > bv) if tol.better == "lower" else np.sum(nv < bv))
                message = (
                    f"{where}: mean {metric} went from {base_mean:.4g} to {new_mean:.4g} "
                    f"({delta:+.4g}; {tol.better} is better, allowed {allowed:.4g}) "
                    f"over {len(vals)} paired datasets ({n_worse} worse)"
                )
                out.append(
                    Regression(
                        est, lm, setting, metric, base_mean, new_mean, delta, allowed, len(vals), message
                    )
                )
    return out
