"""Verdicts for the leaderboard: rankings on one common dataset set, with paired-bootstrap uncertainty.

A ranking only means something if every estimator in it was scored on the same datasets, and an
"A beats B" only if the paired difference is larger than the dataset-to-dataset noise. So:

- **Common sets.** A table ranks the estimators on the datasets where every one of them has a record
  (:func:`ranking_tables`). Estimators with results on more datasets get a further table over their
  own common set, never a row in the same table.
- **Paired bootstrap.** Datasets are resampled with replacement, the same resample for every
  estimator (``scipy.stats.bootstrap`` with ``paired=True``), and every per-estimator statistic is
  recomputed on each resample. Percentile 95% intervals come from that joint bootstrap distribution,
  and so do the rank intervals, the probability of being best and the paired differences behind the
  tiers.
- **Tiers.** Estimators sorted by ATE RMSE; the best opens tier 1 and every estimator whose paired
  95% CI of ``RMSE(estimator) - RMSE(leader)`` includes 0 joins it; the best estimator left opens the
  next tier, and so on. Estimators in one tier are ties at this n.
- **CATE headline.** Median PEHE / sd(ITE) over datasets (robust to datasets whose true effects
  barely vary, which drive mean CATE R² to -1000s) and the share of datasets where it is below 1,
  i.e. where the estimator beats predicting the true SATE for every unit.
- **Calibration.** ATE coverage is a binomial count over datasets: Clopper-Pearson 95% interval.
  Unit (CATE) coverage is a mean of per-dataset coverages: units of one dataset share the fitted
  model and are not independent trials, so its 95% interval resamples datasets (a cluster bootstrap)
  instead of treating every unit as a coin flip. Verdict at the nominal level: ``calibrated`` when the
  interval contains it, ``under`` / ``over`` when the interval lies below / above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from sdscm_bench.metrics import r2_score

NOMINAL_COVERAGE = 0.95
CONFIDENCE = 0.95
N_RESAMPLES = 2000
SEED = 0
#: An estimator that failed on more than this share of a table's common datasets is listed, not ranked.
MAX_FAILURE_SHARE = 0.05

Interval = tuple[float, float]

#: One ranking (or set of rankings, one per common dataset set) per value of these record fields.
TABLE_KEY: tuple[str, ...] = ("family", "variant", "lm", "setting")


def _variant(text: str) -> str | None:
    """group_records stringifies a missing variant as "None": the base family."""
    return None if text == "None" else text


@dataclass
class RankedRow:
    """One estimator's verdicts within one ranking table (all numbers over the table's datasets)."""

    estimator: str
    libraries: str
    tier: int
    ate_rmse: float
    ate_rmse_ci: Interval
    rank: int
    rank_ci: tuple[int, int]
    p_best: float
    diff_vs_leader_ci: Interval | None  # paired CI of RMSE(this) - RMSE(tier leader); None for a leader
    ate_r2: float | None
    pehe_sd_ite_median: float | None = None
    pehe_sd_ite_median_ci: Interval | None = None
    pehe_sd_ite_below_1: float | None = None
    ate_coverage: float | None = None
    ate_coverage_ci: Interval | None = None
    ate_coverage_n: int = 0
    ate_verdict: str | None = None
    unit_coverage: float | None = None
    unit_coverage_ci: Interval | None = None
    unit_verdict: str | None = None
    unit_width: float | None = None
    median_fit_seconds: float | None = None
    failures: int = 0
    cate_r2_mean: float | None = None  # kept for the record; not a ranking column


@dataclass
class RankingTable:
    """Estimators ranked on one common dataset set of one family × LM × setting."""

    family: str
    lm: str
    setting: str
    n_common: int  # datasets where every estimator of the table has a record
    n_scored: int  # of those, datasets where every ranked estimator succeeded
    n_cate: int  # of those, datasets where every CATE estimator has PEHE / sd(ITE)
    rows: list[RankedRow]
    unranked: dict[str, int] = field(default_factory=dict)  # estimator -> failures on the common set
    main: bool = True  # False: a further table over a larger set that only some estimators have
    variant: str | None = None  # the family's generation variant (None: the base family)
    #: estimator -> number of adapter fingerprints among its records here (only those with more than one):
    #: part of its rows came from another version of its code, hyperparameters or libraries.
    mixed_versions: dict[str, int] = field(default_factory=dict)

    @property
    def tiers(self) -> int:
        return max((r.tier for r in self.rows), default=0)


def group_records(
    records: Iterable[Mapping[str, Any]], *fields: str
) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    """Records grouped by the string values of ``fields``, groups in sorted order."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(str(rec.get(f)) for f in fields), []).append(rec)
    return dict(sorted(groups.items()))


def common_sets(by_estimator: Mapping[str, Mapping[str, Any]]) -> list[tuple[list[str], list[str]]]:
    """(estimators, datasets) for each table of one family × LM × setting, largest estimator set first.

    ``by_estimator`` maps estimator -> {dataset fingerprint: record}. The first table holds every
    estimator on the intersection of their datasets. Each larger dataset count that at least two
    estimators share gives one more table: those estimators on the intersection of their datasets.
    """
    sizes = sorted({len(d) for d in by_estimator.values()})
    out: list[tuple[list[str], list[str]]] = []
    seen: set[frozenset[str]] = set()
    for size in sizes:
        members = sorted(e for e, d in by_estimator.items() if len(d) >= size)
        if out and len(members) < 2:
            continue
        common = set.intersection(*(set(by_estimator[e]) for e in members))
        key = frozenset(common)
        if not common or key in seen:
            continue
        seen.add(key)
        out.append((members, sorted(common)))
    return out


def _rmse(*errors: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.stack([np.sqrt(np.mean(e**2, axis=axis)) for e in errors])


def _median(*values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.stack([np.median(v, axis=axis) for v in values])


def _mean(*values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.stack([np.mean(v, axis=axis) for v in values])


def paired_bootstrap(
    columns: Sequence[np.ndarray], statistic: Any, *, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Point statistics and the (k, B) joint bootstrap distribution, resampling datasets (rows) jointly.

    With a single dataset there is nothing to resample: the distribution is the point value repeated.
    """
    point = np.asarray(statistic(*columns, axis=-1), dtype=np.float64)
    if len(columns[0]) < 2:
        return point, np.repeat(point[:, None], N_RESAMPLES, axis=1)
    res = stats.bootstrap(
        tuple(columns), statistic, paired=True, vectorized=True, method="percentile",
        n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE, random_state=seed, batch=200,
    )  # fmt: skip
    return point, np.asarray(res.bootstrap_distribution, dtype=np.float64).reshape(len(point), -1)


def _interval(dist: np.ndarray) -> Interval:
    alpha = (1.0 - CONFIDENCE) / 2.0
    lo, hi = np.quantile(dist, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def rank_summary(point: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray]:
    """Point ranks (1 = lowest value), 95% rank intervals and P(rank 1) over the bootstrap resamples."""
    point_rank = stats.rankdata(point, method="min").astype(int)
    ranks = stats.rankdata(dist, method="min", axis=0).astype(int)  # (k, B)
    alpha = (1.0 - CONFIDENCE) / 2.0
    lo = np.quantile(ranks, alpha, axis=1, method="lower")
    hi = np.quantile(ranks, 1.0 - alpha, axis=1, method="higher")
    p_best = np.mean(ranks == 1, axis=1)
    return point_rank, [(int(a), int(b)) for a, b in zip(lo, hi, strict=True)], p_best


def assign_tiers(order: Sequence[int], dist: np.ndarray) -> tuple[list[int], list[Interval | None]]:
    """Tier of each estimator (indices into ``dist`` rows, best first in ``order``) and its CI vs the leader.

    The best unassigned estimator leads a tier; every unassigned estimator whose paired 95% CI of
    (its statistic - the leader's) includes 0 joins it.
    """
    tier = [0] * dist.shape[0]
    diff_ci: list[Interval | None] = [None] * dist.shape[0]
    current = 0
    for leader in order:
        if tier[leader]:
            continue
        current += 1
        tier[leader] = current
        for other in order:
            if tier[other]:
                continue
            lo, hi = _interval(dist[other] - dist[leader])
            if lo <= 0.0:
                tier[other] = current
                diff_ci[other] = (lo, hi)
    return tier, diff_ci


def coverage_verdict(ci: Interval | None, nominal: float = NOMINAL_COVERAGE) -> str | None:
    """``calibrated`` when the CI contains the nominal level, else ``under`` or ``over``."""
    if ci is None:
        return None
    if ci[1] < nominal:
        return "under"
    if ci[0] > nominal:
        return "over"
    return "calibrated"


def clopper_pearson(k: int, n: int) -> Interval | None:
    if n == 0:
        return None
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def _values(recs: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.asarray([float(r[key]) for r in recs], dtype=np.float64)


def _rank_one(
    family: str, lm: str, setting: str, by_estimator: Mapping[str, Mapping[str, Mapping[str, Any]]],
    estimators: Sequence[str], datasets: Sequence[str], main: bool, variant: str | None = None,
) -> RankingTable:  # fmt: skip
    failures = {e: sum(1 for d in datasets if by_estimator[e][d].get("failed")) for e in estimators}
    limit = MAX_FAILURE_SHARE * len(datasets)
    ranked = [e for e in estimators if failures[e] <= limit]
    unranked = {e: failures[e] for e in estimators if failures[e] > limit}
    scored = [d for d in datasets if all(not by_estimator[e][d].get("failed") for e in ranked)]
    table = RankingTable(family, lm, setting, len(datasets), len(scored), 0, [], unranked, main, variant)
    for e in estimators:
        versions = {str(by_estimator[e][d].get("adapter_fingerprint")) for d in datasets}
        if len(versions) > 1:
            table.mixed_versions[e] = len(versions)
    if not ranked or not scored:
        table.unranked.update({e: failures[e] for e in ranked})
        return table
    recs = {e: [by_estimator[e][d] for d in scored] for e in ranked}

    errors = [_values(recs[e], "ate") - _values(recs[e], "sate") for e in ranked]
    rmse, dist = paired_bootstrap(errors, _rmse)
    order = list(np.argsort(rmse, kind="stable"))
    point_rank, rank_ci, p_best = rank_summary(rmse, dist)
    tiers, diff_ci = assign_tiers(order, dist)

    rows: dict[str, RankedRow] = {}
    for i, e in enumerate(ranked):
        sate, ate = _values(recs[e], "sate"), _values(recs[e], "ate")
        r2s = [float(r["cate_r2"]) for r in recs[e] if r.get("cate_r2") is not None]
        fits = [float(r["fit_seconds"]) for r in recs[e] if r.get("fit_seconds") is not None]
        libs = sorted({f"{r.get('library')}@{r.get('library_version')}" for r in recs[e]})
        rows[e] = RankedRow(
            estimator=e,
            libraries=", ".join(libs),
            tier=tiers[i],
            ate_rmse=float(rmse[i]),
            ate_rmse_ci=_interval(dist[i]),
            rank=int(point_rank[i]),
            rank_ci=rank_ci[i],
            p_best=float(p_best[i]),
            diff_vs_leader_ci=diff_ci[i],
            ate_r2=r2_score(sate, ate) if len(sate) >= 2 else None,  # the SATE is y_true
            median_fit_seconds=float(np.median(fits)) if fits else None,
            failures=failures[e],
            cate_r2_mean=float(np.mean(r2s)) if r2s else None,
        )
        _calibration(rows[e], recs[e])

    cate_estimators = [e for e in ranked if any(r.get("pehe_sd_ite") is not None for r in recs[e])]
    if cate_estimators:
        cate_idx = [
            j
            for j in range(len(scored))
            if all(recs[e][j].get("pehe_sd_ite") is not None for e in cate_estimators)
        ]
        table.n_cate = len(cate_idx)
        if cate_idx:
            cols = [np.asarray([float(recs[e][j]["pehe_sd_ite"]) for j in cate_idx]) for e in cate_estimators]
            med, med_dist = paired_bootstrap(cols, _median)
            for i, e in enumerate(cate_estimators):
                rows[e].pehe_sd_ite_median = float(med[i])
                rows[e].pehe_sd_ite_median_ci = _interval(med_dist[i])
                rows[e].pehe_sd_ite_below_1 = float(np.mean(cols[i] < 1.0))
    table.rows = sorted(rows.values(), key=lambda r: (r.tier, r.ate_rmse, r.estimator))
    return table


def _calibration(row: RankedRow, recs: Sequence[Mapping[str, Any]]) -> None:
    covered = [bool(r["ate_covered"]) for r in recs if r.get("ate_covered") is not None]
    if covered:
        k, n = sum(covered), len(covered)
        row.ate_coverage, row.ate_coverage_n = k / n, n
        row.ate_coverage_ci = clopper_pearson(k, n)
        row.ate_verdict = coverage_verdict(row.ate_coverage_ci)
    unit = np.asarray([float(r["cate_coverage"]) for r in recs if r.get("cate_coverage") is not None])
    if unit.size:
        point, dist = paired_bootstrap([unit], _mean)
        row.unit_coverage = float(point[0])
        row.unit_coverage_ci = _interval(dist[0])
        row.unit_verdict = coverage_verdict(row.unit_coverage_ci)
    widths = [float(r["cate_width"]) for r in recs if r.get("cate_width") is not None]
    row.unit_width = float(np.mean(widths)) if widths else None


def ranking_tables(records: Iterable[Mapping[str, Any]]) -> list[RankingTable]:
    """Every ranking table: per family × LM × setting, one per common dataset set (see :func:`common_sets`)."""
    out: list[RankingTable] = []
    for (family, variant, lm, setting), recs in group_records(records, *TABLE_KEY).items():
        by_estimator: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in recs:
            by_estimator.setdefault(str(r["estimator"]), {})[str(r["dataset_fingerprint"])] = r
        for i, (estimators, datasets) in enumerate(common_sets(by_estimator)):
            out.append(
                _rank_one(family, lm, setting, by_estimator, estimators, datasets, i == 0, _variant(variant))
            )
    return out


def main_common_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of every main table: all estimators of a family × LM × setting on their common datasets."""
    out: list[Mapping[str, Any]] = []
    for recs in group_records(records, *TABLE_KEY).values():
        by_estimator: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in recs:
            by_estimator.setdefault(str(r["estimator"]), {})[str(r["dataset_fingerprint"])] = r
        sets = common_sets(by_estimator)
        if sets:
            estimators, datasets = sets[0]
            out += [by_estimator[e][d] for e in estimators for d in datasets]
    return out
