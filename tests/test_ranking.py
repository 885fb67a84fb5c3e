"""Leaderboard verdicts: common dataset sets, paired-bootstrap CIs, tiers, rank intervals, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sdscm_bench.metrics import METRIC_KEYS
from sdscm_bench.ranking import (
    assign_tiers,
    clopper_pearson,
    common_sets,
    coverage_verdict,
    main_common_records,
    paired_bootstrap,
    rank_summary,
    ranking_tables,
)


def record(estimator, i, error, *, lm="lm", setting="s", failed=False, **kw):
    rec = {
        "estimator": estimator,
        "library": "lib",
        "library_version": "1",
        "adapter_fingerprint": "f",
        "lm": lm,
        "setting": setting,
        "family": "fam",
        "dataset": f"d{i}",
        "dataset_fingerprint": f"fp{i}",
        **dict.fromkeys(METRIC_KEYS),
        "sate": 0.1 * i,
        "ate": None if failed else 0.1 * i + error,
        "failed": failed,
        "error": "boom" if failed else None,
    }
    rec.update(kw)
    return rec


def records_with_errors(errors_by_estimator, **kw):
    return [record(e, i, err, **kw) for e, errs in errors_by_estimator.items() for i, err in enumerate(errs)]


RNG = np.random.default_rng(3)
NOISE = RNG.normal(0.0, 1.0, size=(4, 200))


def test_common_set_restricts_every_row_to_the_shared_datasets():
    # "few" has datasets 0-49 only; the others 0-199. Main table: all three on 0-49; then a further
    # table for the two with 200.
    recs = records_with_errors(
        {"big1": NOISE[0] * 0.01, "big2": NOISE[1] * 0.02, "few": NOISE[2][:50] * 0.001}
    )
    main, further = ranking_tables(recs)
    assert main.main and main.n_common == 50 and {r.estimator for r in main.rows} == {"big1", "big2", "few"}
    assert (
        not further.main
        and further.n_common == 200
        and {r.estimator for r in further.rows} == {"big1", "big2"}
    )
    big1_main = next(r for r in main.rows if r.estimator == "big1")
    assert big1_main.ate_rmse == pytest.approx(float(np.sqrt(np.mean((NOISE[0][:50] * 0.01) ** 2))), rel=1e-9)
    big1_all = next(r for r in further.rows if r.estimator == "big1")
    assert big1_all.ate_rmse == pytest.approx(float(np.sqrt(np.mean((NOISE[0] * 0.01) ** 2))), rel=1e-9)
    assert len(main_common_records(recs)) == 150


def test_common_sets_levels():
    sets = common_sets({"a": dict.fromkeys("xyz"), "b": dict.fromkeys("xy"), "c": dict.fromkeys("xyz")})
    assert sets == [(["a", "b", "c"], ["x", "y"]), (["a", "c"], ["x", "y", "z"])]
    # A larger set held by one estimator only gives no further table.
    assert common_sets({"a": dict.fromkeys("xyz"), "b": dict.fromkeys("xy")}) == [(["a", "b"], ["x", "y"])]


def test_clearly_different_estimators_get_separate_tiers_and_ties_share_one():
    errors = {
        "best": NOISE[0] * 0.001,
        "tied_with_best": NOISE[0] * 0.001 + NOISE[1] * 0.0001,  # nearly the same errors
        "much_worse": NOISE[2] * 0.01,
    }
    (table,) = ranking_tables(records_with_errors(errors))
    by = {r.estimator: r for r in table.rows}
    assert by["best"].tier == by["tied_with_best"].tier == 1
    assert by["much_worse"].tier == 2 and by["much_worse"].diff_vs_leader_ci is None  # it leads tier 2
    lo, hi = by["tied_with_best"].diff_vs_leader_ci
    assert lo <= 0.0 <= hi
    assert (
        by["much_worse"].rank == 3 and by["much_worse"].rank_ci == (3, 3) and by["much_worse"].p_best == 0.0
    )
    assert by["best"].p_best + by["tied_with_best"].p_best == pytest.approx(1.0)
    assert [r.estimator for r in table.rows][-1] == "much_worse" and table.tiers == 2


def test_tiers_are_leader_based():
    # Bootstrap distributions (rows = estimators): a is best; b overlaps a; c differs from a but
    # overlaps b. Tiers: {a, b}, then c leads tier 2.
    rng = np.random.default_rng(0)
    base = rng.normal(size=2000)
    dist = np.stack([1.0 + 0.01 * base, 1.0 + 0.01 * base + rng.normal(0, 0.02, 2000), 1.1 + 0.01 * base])
    tiers, diff_ci = assign_tiers([0, 1, 2], dist)
    assert tiers == [1, 1, 2] and diff_ci[0] is None and diff_ci[2] is None and diff_ci[1][0] < 0


def test_paired_bootstrap_resamples_datasets_jointly():
    # Two estimators with identical errors: every resample gives the same RMSE for both.
    x = NOISE[0][:30]
    point, dist = paired_bootstrap(
        [x, x.copy()], lambda *c, axis=-1: np.stack([np.sqrt(np.mean(v**2, axis=axis)) for v in c])
    )
    assert dist.shape == (2, 2000) and np.array_equal(dist[0], dist[1])
    assert point[0] == pytest.approx(np.sqrt(np.mean(x**2)))
    # The distribution is that of the RMSE over resampled datasets: its 95% percentile interval agrees
    # with a plain numpy bootstrap of the same statistic (20 000 resamples) up to Monte Carlo error.
    idx = np.random.default_rng(9).integers(0, x.size, size=(20_000, x.size))
    ref = np.quantile(np.sqrt(np.mean(x[idx] ** 2, axis=1)), [0.025, 0.975])
    got = np.quantile(dist[0], [0.025, 0.975])
    assert got == pytest.approx(ref, abs=0.05 * (ref[1] - ref[0]))


def test_paired_bootstrap_with_one_dataset_repeats_the_point():
    point, dist = paired_bootstrap([np.array([3.0]), np.array([-4.0])], _abs_mean)
    assert list(point) == [3.0, 4.0] and dist.shape == (2, 2000)
    assert (dist[0] == 3.0).all() and (dist[1] == 4.0).all()


def _abs_mean(*columns, axis=-1):
    return np.stack([np.mean(np.abs(c), axis=axis) for c in columns])


def test_identical_estimators_share_a_tier():
    # Every resample gives both the same RMSE: the CI of the difference is exactly [0, 0], which
    # includes 0 (a tie), so the second joins the leader's tier.
    dist = np.tile(np.linspace(1.0, 2.0, 2000), (2, 1))
    tiers, diff_ci = assign_tiers([0, 1], dist)
    assert tiers == [1, 1] and diff_ci == [None, (0.0, 0.0)]


def test_rank_summary():
    point = np.array([1.0, 2.0, 3.0])
    dist = np.array([[1.0, 1.0, 5.0, 1.0], [2.0, 0.5, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]])
    ranks, intervals, p_best = rank_summary(point, dist)
    assert list(ranks) == [1, 2, 3]
    assert intervals == [(1, 3), (1, 2), (2, 3)]
    assert list(p_best) == [0.5, 0.5, 0.0]


def test_coverage_verdicts_and_clopper_pearson():
    lo, hi = clopper_pearson(95, 100)
    assert lo == pytest.approx(0.8872, abs=1e-4) and hi == pytest.approx(0.9836, abs=1e-4)
    assert coverage_verdict((lo, hi)) == "calibrated"
    assert coverage_verdict(clopper_pearson(80, 100)) == "under"
    assert coverage_verdict(clopper_pearson(1000, 1000)) == "over"
    # The nominal level on either end of the interval is inside it; one ulp beyond is not.
    assert coverage_verdict((0.9, 0.95)) == "calibrated" and coverage_verdict((0.95, 0.99)) == "calibrated"
    assert coverage_verdict((0.9, math.nextafter(0.95, 0.0))) == "under"
    assert coverage_verdict((math.nextafter(0.95, 1.0), 0.99)) == "over"
    assert clopper_pearson(0, 0) is None and coverage_verdict(None) is None


def test_calibration_columns():
    recs = records_with_errors({"a": NOISE[0][:40] * 0.01})
    for j, r in enumerate(recs):
        r["ate_covered"] = j % 10 != 0  # 36 of 40
        r["cate_coverage"] = 0.5
        r["cate_width"] = 2.0
    (table,) = ranking_tables(recs)
    (row,) = table.rows
    assert row.ate_coverage == pytest.approx(0.9) and row.ate_coverage_n == 40
    assert row.ate_coverage_ci == clopper_pearson(36, 40) and row.ate_verdict == "calibrated"
    assert row.unit_coverage == pytest.approx(0.5) and row.unit_coverage_ci == pytest.approx((0.5, 0.5))
    assert row.unit_verdict == "under" and row.unit_width == 2.0


def test_cate_headline_is_the_median_and_share_below_one():
    # One huge value does not move the median; exactly 1 is not "below 1" (share 2/5, not 3/5).
    values = [0.5, 0.8, 1.0, 3.0, 1e6]
    recs = [record("a", i, 0.01, pehe_sd_ite=v, cate_r2=-v) for i, v in enumerate(values)]
    (table,) = ranking_tables(recs)
    (row,) = table.rows
    assert row.pehe_sd_ite_median == pytest.approx(1.0) and row.pehe_sd_ite_below_1 == pytest.approx(0.4)
    # The median of 5 resampled values is one of them, so the ends of its 95% interval are values of
    # the data (the resampled mean's would not be).
    lo, hi = row.pehe_sd_ite_median_ci
    assert lo in values and hi in values and lo < hi
    assert row.cate_r2_mean == pytest.approx(-np.mean(values))


def test_failures_shrink_the_scored_set_and_many_failures_unrank():
    recs = records_with_errors(
        {"a": NOISE[0][:40] * 0.01, "b": NOISE[1][:40] * 0.01, "c": NOISE[2][:40] * 0.01}
    )
    for r in recs:
        if r["estimator"] == "a" and r["dataset"] == "d3":
            r.update(failed=True, ate=None)
        if r["estimator"] == "c" and int(r["dataset"][1:]) < 10:
            r.update(failed=True, ate=None)
    (table,) = ranking_tables(recs)
    assert table.n_common == 40 and table.n_scored == 39  # a's one failure is dropped for everyone
    assert table.unranked == {"c": 10} and {r.estimator for r in table.rows} == {"a", "b"}
    assert next(r for r in table.rows if r.estimator == "a").failures == 1
