"""Verdicts across tables: do rankings carry over between data sources, and how do two configurations of
one method compare (the SD-SCM paper's estimation settings beside this project's tuned adapters)?

Both follow the rules of :mod:`sdscm_bench.ranking`: statistics over a common dataset set, failed
datasets left out, 95% percentile bootstrap intervals (``scipy.stats.bootstrap``), ties named as ties.

- **Rank agreement.** Kendall's tau between the ATE RMSE rankings of two sources (family × variant × LM)
  in one setting, over the estimators both rank. The two sources hold different datasets, so the CI
  resamples each source's datasets independently (``paired=False``) and recomputes both RMSE vectors
  and tau on every resample: a tau whose CI reaches 0 does not show that the rankings carry over.
- **Configuration pairs.** An adapter named ``paper_<name>`` is the paper's configuration of the method
  that ``<name>`` configures our way. Per table they are compared on the datasets where both succeeded:
  ATE RMSE of each, the paired bootstrap CI of the difference (a tie when it includes 0) and ATE R².
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from sdscm_bench.metrics import r2_score
from sdscm_bench.ranking import (
    CONFIDENCE,
    MAX_FAILURE_SHARE,
    N_RESAMPLES,
    SEED,
    TABLE_KEY,
    Interval,
    _interval,
    _rmse,
    _variant,
    group_records,
    main_common_records,
    paired_bootstrap,
)

#: ``paper_<name>`` pairs with ``<name>``: the paper's estimation settings beside ours.
PAPER_CONFIG_PREFIX = "paper_"
#: Fewer shared estimators than this give no meaningful rank correlation.
MIN_SHARED_ESTIMATORS = 3


def source_name(family: str, variant: str | None, lm: str) -> str:
    return family + (f" [{variant}]" if variant else "") + f" · {lm}"


@dataclass
class Agreement:
    """Kendall's tau between two sources' rankings in one setting, with its bootstrap CI."""

    setting: str
    source_a: str
    source_b: str
    estimators: int
    n_a: int  # datasets of source A's main table where every estimator succeeded
    n_b: int
    tau: float
    tau_ci: Interval | None


def _source_errors(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], tuple[list[str], np.ndarray]]:
    """(setting, source) -> (estimators, ATE error matrix estimators × datasets) of each main table's
    ranking: its ranked estimators (those that failed on at most 5% of its common datasets, the rule of
    :mod:`sdscm_bench.ranking`) on the datasets where every one of them succeeded. A source whose table
    ranks nobody has no ranking to compare (an unranked estimator's failures would otherwise shrink the
    source to the few datasets where everything succeeded)."""
    out: dict[tuple[str, str], tuple[list[str], np.ndarray]] = {}
    for (family, variant, lm, setting), recs in group_records(
        main_common_records(records), *TABLE_KEY
    ).items():
        by_dataset: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in recs:
            by_dataset.setdefault(str(r["dataset_fingerprint"]), {})[str(r["estimator"])] = r
        everyone = sorted({str(r["estimator"]) for r in recs})
        limit = MAX_FAILURE_SHARE * len(by_dataset)
        estimators = [
            e for e in everyone if sum(bool(row[e].get("failed")) for row in by_dataset.values()) <= limit
        ]
        if not estimators:
            continue
        ok = [d for d, row in sorted(by_dataset.items()) if all(not row[e].get("failed") for e in estimators)]
        if not ok:
            continue
        errors = np.asarray(
            [
                [float(by_dataset[d][e]["ate"]) - float(by_dataset[d][e]["sate"]) for d in ok]
                for e in estimators
            ]
        )
        out[(setting, source_name(family, _variant(variant), lm))] = (estimators, errors)
    return out


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the last axes of ``x`` and ``y``, batched over the leading axes.

    The same number as ``scipy.stats.kendalltau`` (tests check it, ties included), computed for 2,000
    bootstrap resamples at once: scipy's per-call overhead made one pair of sources take seconds. NaN
    where either side has no untied pair.
    """
    iu = np.triu_indices(x.shape[-1], k=1)
    sx = np.sign(x[..., :, None] - x[..., None, :])[..., iu[0], iu[1]]
    sy = np.sign(y[..., :, None] - y[..., None, :])[..., iu[0], iu[1]]
    denom = np.sqrt(np.sum(sx**2, axis=-1) * np.sum(sy**2, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, np.sum(sx * sy, axis=-1) / np.where(denom > 0, denom, 1.0), np.nan)


def _rmse_rankings_tau(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tau between the RMSE vectors of two error matrices (estimators × datasets; leading axes batch)."""
    return kendall_tau_b(np.sqrt(np.mean(a**2, axis=-1)), np.sqrt(np.mean(b**2, axis=-1)))


def _tau_interval(ea: np.ndarray, eb: np.ndarray, seed: int) -> Interval | None:
    """Percentile CI of tau, resampling the datasets (columns) of each source independently.

    ``scipy.stats.bootstrap`` resamples the dataset indices of both sources; the statistic looks up the
    resampled columns, so each resample recomputes every estimator's RMSE on the same resampled datasets.
    """

    def statistic(ia: np.ndarray, ib: np.ndarray, axis: int = -1) -> np.ndarray:
        ia, ib = np.atleast_2d(ia).astype(int), np.atleast_2d(ib).astype(int)  # (batch, n)
        # ea[:, ia] is (k, batch, n): move the batch axis first, estimators next, datasets last.
        return _rmse_rankings_tau(np.moveaxis(ea[:, ia], 1, 0), np.moveaxis(eb[:, ib], 1, 0))

    res = stats.bootstrap(
        (np.arange(ea.shape[1]), np.arange(eb.shape[1])), statistic, paired=False, vectorized=True,
        method="percentile", n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE, random_state=seed, batch=200,
    )  # fmt: skip
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    dist = dist[np.isfinite(dist)]  # a resample where one source ties every estimator has no tau
    return _interval(dist) if dist.size else None


def ranking_agreement(records: Iterable[Mapping[str, Any]], *, seed: int = SEED) -> list[Agreement]:
    """Every pair of sources that share a setting and at least three estimators (see the module doc)."""
    sources = _source_errors(records)
    out: list[Agreement] = []
    keys = sorted(sources)
    for i, (setting, a) in enumerate(keys):
        for setting_b, b in keys[i + 1 :]:
            if setting_b != setting:
                continue
            est_a, err_a = sources[(setting, a)]
            est_b, err_b = sources[(setting, b)]
            shared = sorted(set(est_a) & set(est_b))
            if len(shared) < MIN_SHARED_ESTIMATORS:
                continue
            ea = err_a[[est_a.index(e) for e in shared]]
            eb = err_b[[est_b.index(e) for e in shared]]
            tau = float(_rmse_rankings_tau(ea, eb))
            enough = ea.shape[1] >= 2 and eb.shape[1] >= 2 and np.isfinite(tau)
            ci = _tau_interval(ea, eb, seed) if enough else None
            out.append(Agreement(setting, a, b, len(shared), ea.shape[1], eb.shape[1], tau, ci))
    return out


@dataclass
class ConfigPair:
    """The paper's configuration of a method beside ours, on the datasets where both succeeded."""

    source: str
    setting: str
    paper: str
    ours: str
    n: int
    failures_paper: int
    failures_ours: int
    rmse_paper: float | None = None
    rmse_ours: float | None = None
    diff_ci: Interval | None = None  # RMSE(paper) - RMSE(ours)
    r2_paper: float | None = None
    r2_ours: float | None = None

    @property
    def verdict(self) -> str:
        if self.diff_ci is None:
            return "–"
        lo, hi = self.diff_ci
        if lo <= 0.0 <= hi:
            return "tie"
        return "paper's better" if hi < 0.0 else "ours better"


def configuration_pairs(
    records: Iterable[Mapping[str, Any]], prefix: str = PAPER_CONFIG_PREFIX, *, seed: int = SEED
) -> list[ConfigPair]:
    """Every ``<prefix><name>`` / ``<name>`` pair per table (family × variant × LM × setting)."""
    out: list[ConfigPair] = []
    for (family, variant, lm, setting), recs in group_records(records, *TABLE_KEY).items():
        by_estimator: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in recs:
            by_estimator.setdefault(str(r["estimator"]), {})[str(r["dataset_fingerprint"])] = r
        for paper in sorted(by_estimator):
            ours = paper[len(prefix) :]
            if not paper.startswith(prefix) or ours not in by_estimator:
                continue
            common = sorted(set(by_estimator[paper]) & set(by_estimator[ours]))
            fails = [sum(bool(by_estimator[e][d].get("failed")) for d in common) for e in (paper, ours)]
            ok = [
                d
                for d in common
                if not by_estimator[paper][d].get("failed") and not by_estimator[ours][d].get("failed")
            ]
            pair = ConfigPair(
                source_name(family, _variant(variant), lm), setting, paper, ours, len(ok), *fails
            )
            if ok:
                sate = [np.asarray([float(by_estimator[e][d]["sate"]) for d in ok]) for e in (paper, ours)]
                ate = [np.asarray([float(by_estimator[e][d]["ate"]) for d in ok]) for e in (paper, ours)]
                point, dist = paired_bootstrap([ate[0] - sate[0], ate[1] - sate[1]], _rmse, seed=seed)
                pair.rmse_paper, pair.rmse_ours = float(point[0]), float(point[1])
                pair.diff_ci = _interval(dist[0] - dist[1])
                if len(ok) >= 2:
                    pair.r2_paper, pair.r2_ours = r2_score(sate[0], ate[0]), r2_score(sate[1], ate[1])
            out.append(pair)
    return out


def pairs_by_method(pairs: Sequence[ConfigPair]) -> dict[str, list[ConfigPair]]:
    """The pairs grouped by our adapter's name, for one table per method."""
    grouped: dict[str, list[ConfigPair]] = {}
    for p in pairs:
        grouped.setdefault(p.ours, []).append(p)
    return dict(sorted(grouped.items()))
