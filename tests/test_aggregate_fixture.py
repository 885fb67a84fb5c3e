"""The aggregate formulas on a committed fixture of synthetic records, checked without ``../shared``.

``tests/fixtures/synthetic_records.json`` is written by ``tests/fixtures/make_synthetic_records.py``
(seeded; see its docstring for what each estimator exercises). Every expected number here is computed
from the raw records with numpy / scipy and the formulas of the documentation (metrics.FORMULAS, the
ranking module's docstring, the leaderboard legend), never by the code under test. Bootstrap intervals
are compared with ``scipy.stats.bootstrap`` (percentile method, 95%): exactly where the code documents
that it uses it with a seed (the ranking), up to Monte Carlo error where it resamples on its own
(``metrics.aggregate``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sdscm_bench.leaderboard import render_markdown
from sdscm_bench.metrics import METRIC_KEYS, aggregate
from sdscm_bench.ranking import ranking_tables

FIXTURES = Path(__file__).parent / "fixtures"
RECORDS: list[dict[str, Any]] = json.loads((FIXTURES / "synthetic_records.json").read_text())["records"]
ESTIMATORS = sorted({r["estimator"] for r in RECORDS})
LEVEL = 0.95
B = 2000


# ---------------------------------------------------------------------------------------------------
# Independent reference formulas


def rmse(e: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(e) ** 2, axis=axis))


def r2(truth: np.ndarray, estimate: np.ndarray) -> float | None:
    """1 - SS_res / SS_tot, SS_tot the spread of the truth; None when the truth is constant or n < 2."""
    truth, estimate = np.asarray(truth, float), np.asarray(estimate, float)
    ss_tot = float(np.sum((truth - truth.mean()) ** 2))
    if truth.size < 2 or ss_tot == 0:
        return None
    return 1.0 - float(np.sum((truth - estimate) ** 2)) / ss_tot


def scipy_ci(columns: Sequence[np.ndarray], stat: Callable, seed: int) -> np.ndarray:
    """(k, 2) percentile intervals of a paired bootstrap over datasets, one row per column."""
    res = stats.bootstrap(
        tuple(columns), stat, paired=True, vectorized=True, method="percentile",
        n_resamples=B, confidence_level=LEVEL, random_state=seed,
    )  # fmt: skip
    return np.asarray(res.bootstrap_distribution).reshape(len(columns), -1)


def quantiles(dist: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(dist, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(lo), float(hi)


def close(got: Sequence[float] | None, expected: Sequence[float], rel_width: float = 0.05) -> bool:
    """Two bootstrap intervals agree up to Monte Carlo error (B = 2000 each): within 5% of the width."""
    assert got is not None
    tol = max(rel_width * (expected[1] - expected[0]), 1e-12)
    return abs(got[0] - expected[0]) <= tol and abs(got[1] - expected[1]) <= tol


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact binomial interval from the beta quantiles (not scipy.stats.binomtest, which the code uses)."""
    a = (1 - LEVEL) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def verdict(ci: tuple[float, float]) -> str:
    return "under" if ci[1] < 0.95 else "over" if ci[0] > 0.95 else "calibrated"


def of(estimator: str, datasets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    recs = [r for r in RECORDS if r["estimator"] == estimator]
    if datasets is not None:
        by_fp = {r["dataset_fingerprint"]: r for r in recs}
        recs = [by_fp[d] for d in datasets]
    return recs


def col(recs: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([float(r[key]) for r in recs if r.get(key) is not None])


# ---------------------------------------------------------------------------------------------------


def test_fixture_is_what_the_documented_script_writes():
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_records", FIXTURES / "make_synthetic_records.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert json.loads(json.dumps(script.make())) == RECORDS
    assert tuple(script.METRIC_KEYS) == METRIC_KEYS  # the script's copy of the schema is current


def test_fixture_tells_the_formulas_apart():
    # Otherwise the checks below could not see RMSE vs MAE or the order of R²'s arguments.
    for est in ("ols", "forest", "dim"):
        ok = [r for r in of(est) if not r["failed"]]
        err, sate, ate = col(ok, "ate") - col(ok, "sate"), col(ok, "sate"), col(ok, "ate")
        assert rmse(err) > np.mean(np.abs(err)) * 1.01
        assert abs(r2(sate, ate) - r2(ate, sate)) > 1e-6  # far above the 1e-12 of the checks below


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_metrics_aggregate_matches_the_formulas(estimator):
    recs = of(estimator)
    ok = [r for r in recs if not r["failed"]]
    agg = aggregate(recs)
    assert agg["n_datasets"] == len(recs) and agg["n_failures"] == len(recs) - len(ok)
    err = col(ok, "ate") - col(ok, "sate")
    assert agg["ate_rmse"] == pytest.approx(float(rmse(err)), rel=1e-12)
    assert agg["ate_r2"] == pytest.approx(r2(col(ok, "sate"), col(ok, "ate")), rel=1e-12)
    assert close(agg["ate_rmse_ci"], quantiles(scipy_ci([err], rmse, seed=1)[0]))
    for key in METRIC_KEYS:
        values = col(ok, key)
        s = agg["metrics"][key]
        assert s["n"] == values.size, key
        if values.size == 0:
            assert s["mean"] is None and s["median"] is None and s["mean_ci"] is None, key
            continue
        assert s["mean"] == pytest.approx(float(np.mean(values)), rel=1e-12), key
        assert s["median"] == pytest.approx(float(np.median(values)), rel=1e-12), key
        if np.ptp(values) == 0:
            assert s["mean_ci"] == s["median_ci"] == (values[0], values[0]), key
        else:
            assert close(s["mean_ci"], quantiles(scipy_ci([values], np.mean, seed=1)[0])), key


def test_ate_coverage_mean_is_the_covered_share():
    ok = [r for r in of("ols") if not r["failed"]]
    covered = [bool(r["ate_covered"]) for r in ok]
    assert 0 < sum(covered) < len(covered)  # both kinds present, so the share is informative
    assert aggregate(ok, n_boot=0)["metrics"]["ate_covered"]["mean"] == pytest.approx(sum(covered) / len(ok))


# ---------------------------------------------------------------------------------------------------
# Ranking tables, from the documented rules


def expected_tables() -> list[dict[str, Any]]:
    """The tables the ranking module's docstring describes, computed from the records here."""
    datasets = {e: {r["dataset_fingerprint"] for r in of(e)} for e in ESTIMATORS}
    everyone = sorted(set.intersection(*datasets.values()))
    with_all = [e for e in ESTIMATORS if len(datasets[e]) == max(map(len, datasets.values()))]
    out = []
    for main, members, common in (
        (True, ESTIMATORS, everyone),
        (False, with_all, sorted(set.intersection(*(datasets[e] for e in with_all)))),
    ):
        failures = {e: sum(r["failed"] for r in of(e, common)) for e in members}
        ranked = [e for e in members if failures[e] / len(common) <= 0.05]
        scored = [d for d in common if not any(r["failed"] for e in ranked for r in of(e, [d]))]
        out.append(
            {
                "main": main,
                "members": members,
                "common": common,
                "failures": failures,
                "ranked": ranked,
                "unranked": {e: n for e, n in failures.items() if e not in ranked},
                "scored": scored,
            }
        )
    return out


def test_the_fixture_has_a_main_and_a_further_table_with_the_failure_boundary_on_both_sides():
    main, further = expected_tables()
    assert len(main["common"]) == 12 and len(further["common"]) == 20
    # dim fails once: 1 of 12 (8%) in the main table is too many, 1 of 20 (exactly 5%) is not.
    assert "dim" in main["unranked"] and "dim" in further["ranked"] and further["failures"]["dim"] == 1


def test_ranking_tables_match_the_documented_rules():
    tables = ranking_tables(RECORDS)
    assert len(tables) == 2
    for table, exp in zip(tables, expected_tables(), strict=True):
        assert (table.family, table.lm, table.setting, table.variant) == ("fam", "lm-a", "confounder", None)
        assert table.main is exp["main"] and table.n_common == len(exp["common"])
        assert table.n_scored == len(exp["scored"]) and table.unranked == exp["unranked"]
        ranked, scored = exp["ranked"], exp["scored"]
        errors = [col(of(e, scored), "ate") - col(of(e, scored), "sate") for e in ranked]
        point = np.asarray([float(rmse(x)) for x in errors])

        def stat(*cols, axis=-1):
            return np.stack([rmse(c, axis=axis) for c in cols])

        dist = scipy_ci(errors, stat, seed=0)  # the documented paired bootstrap: seed 0, 2000 resamples
        ranks = np.argsort(np.argsort(point)) + 1  # no ties in the fixture
        boot_ranks = np.argsort(np.argsort(dist, axis=0), axis=0) + 1
        tiers = reference_tiers(point, dist)
        rows = {r.estimator: r for r in table.rows}
        assert sorted(rows) == sorted(ranked)
        assert [r.estimator for r in table.rows] == [ranked[i] for i in np.lexsort((point, tiers))]
        for i, e in enumerate(ranked):
            row = rows[e]
            recs = of(e, scored)
            assert row.ate_rmse == pytest.approx(point[i], rel=1e-12)
            assert row.ate_rmse_ci == pytest.approx(quantiles(dist[i]), rel=1e-12)
            assert row.rank == ranks[i] and row.tier == tiers[i]
            lo = np.quantile(boot_ranks[i], 0.025, method="lower")  # ranks are whole numbers
            hi = np.quantile(boot_ranks[i], 0.975, method="higher")
            assert row.rank_ci == (int(lo), int(hi))
            assert row.p_best == pytest.approx(float(np.mean(boot_ranks[i] == 1)))
            assert row.ate_r2 == pytest.approx(r2(col(recs, "sate"), col(recs, "ate")), rel=1e-12)
            assert row.median_fit_seconds == pytest.approx(float(np.median(col(recs, "fit_seconds"))))
            assert row.failures == exp["failures"][e]
            libs = {f"{r['library']}@{r['library_version']}" for r in recs}
            assert row.libraries == ", ".join(sorted(libs))
            r2s = col(recs, "cate_r2")
            assert row.cate_r2_mean == (pytest.approx(float(np.mean(r2s))) if r2s.size else None)
        assert table.tiers == max(tiers)


def reference_tiers(point: np.ndarray, dist: np.ndarray) -> list[int]:
    """Leader-based tiers: the best unassigned opens a tier; others join if their diff CI includes 0."""
    tier = [0] * len(point)
    current = 0
    for leader in np.argsort(point, kind="stable"):
        if tier[leader]:
            continue
        current += 1
        tier[leader] = current
        for other in np.argsort(point, kind="stable"):
            if not tier[other] and quantiles(dist[other] - dist[leader])[0] <= 0:
                tier[other] = current
    return tier


def test_cate_headline_and_calibration_match_the_formulas():
    for table, exp in zip(ranking_tables(RECORDS), expected_tables(), strict=True):
        scored = exp["scored"]
        cate_est = [e for e in exp["ranked"] if col(of(e, scored), "pehe_sd_ite").size]
        cate_ds = [d for d in scored if all(of(e, [d])[0]["pehe_sd_ite"] is not None for e in cate_est)]
        assert table.n_cate == len(cate_ds) and 0 < len(cate_ds) < len(scored)  # ds03: sd(ITE) = 0
        cols = [col(of(e, cate_ds), "pehe_sd_ite") for e in cate_est]

        def med(*c, axis=-1):
            return np.stack([np.median(x, axis=axis) for x in c])

        med_dist = scipy_ci(cols, med, seed=0)
        rows = {r.estimator: r for r in table.rows}
        for i, e in enumerate(cate_est):
            assert rows[e].pehe_sd_ite_median == pytest.approx(float(np.median(cols[i])))
            assert rows[e].pehe_sd_ite_median_ci == pytest.approx(quantiles(med_dist[i]))
            assert rows[e].pehe_sd_ite_below_1 == pytest.approx(float(np.mean(cols[i] < 1)))
        for e, row in rows.items():
            if e not in cate_est:
                assert row.pehe_sd_ite_median is None and row.pehe_sd_ite_below_1 is None
            recs = of(e, scored)
            covered = [bool(r["ate_covered"]) for r in recs if r["ate_covered"] is not None]
            if not covered:
                assert row.ate_coverage is None and row.ate_verdict is None and row.unit_coverage is None
                continue
            k, n = sum(covered), len(covered)
            assert row.ate_coverage == pytest.approx(k / n) and row.ate_coverage_n == n
            assert row.ate_coverage_ci == pytest.approx(clopper_pearson(k, n), rel=1e-9)
            assert row.ate_verdict == verdict(clopper_pearson(k, n))
            unit = col(recs, "cate_coverage")
            unit_ci = quantiles(scipy_ci([unit], lambda x, axis=-1: np.mean(x, axis=axis)[None], seed=0)[0])
            assert row.unit_coverage == pytest.approx(float(np.mean(unit)))
            assert row.unit_coverage_ci == pytest.approx(unit_ci)
            assert row.unit_verdict == verdict(unit_ci)
            assert row.unit_width == pytest.approx(float(np.mean(col(recs, "cate_width"))))


# ---------------------------------------------------------------------------------------------------
# The rendered leaderboard


def fmt(x: float | None) -> str:
    """The legend's number format: 3 significant digits, whole numbers from 1000 up, a dash for none."""
    if x is None:
        return "–"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def table_cells(md: str, heading: str) -> list[list[str]]:
    block = md.split(heading, 1)[1].split("\n## ", 1)[0].split("Interval calibration")[0]
    rows = [line for line in block.splitlines() if line.startswith("|")][2:]  # header and rule
    return [[c.strip() for c in row.split("|")[1:-1]] for row in rows]


def test_leaderboard_cells_match_the_formulas():
    md = render_markdown(RECORDS, {"command": "fixture"})
    _, further = expected_tables()
    heading = "## family `fam` · LM `lm-a` · setting `confounder` · 20 datasets"
    assert heading in md
    cells = {c[1]: c for c in table_cells(md, heading)}
    scored = further["scored"]
    assert sorted(cells) == sorted(further["ranked"])
    for e, c in cells.items():
        recs = of(e, scored)
        err = col(recs, "ate") - col(recs, "sate")
        assert c[3].startswith(fmt(float(rmse(err))) + " ["), (e, c[3])
        assert c[7] == fmt(r2(col(recs, "sate"), col(recs, "ate"))), e
        assert c[10] == fmt(float(np.median(col(recs, "fit_seconds")))), e
        assert c[11] == str(further["failures"][e]), e
        ratios = col(recs, "pehe_sd_ite")  # None only on ds03 (sd(ITE) = 0), for every CATE estimator
        if ratios.size:
            assert c[9] == f"{100 * np.mean(ratios < 1):.0f}%", e
        else:
            assert c[8] == c[9] == "–", e
    intro = md.split(heading, 1)[1].split("|", 1)[0]
    assert f"n = {len(further['common'])} datasets" in intro
    assert f"statistics over the {len(scored)} datasets" in intro
    assert "`flaky` (2 failures)" in intro
