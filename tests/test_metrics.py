"""Metrics on tiny hand-computed cases; the expected numbers are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sdscm_bench.metrics import (
    FORMULAS,
    METRIC_KEYS,
    MalformedEstimate,
    NonFiniteEstimate,
    aggregate,
    bootstrap_ci,
    dataset_metrics,
    failed_metrics,
    r2_score,
    summarize,
)

# ite = [1, 2, 3, 6]: SATE = 3; deviations -2, -1, 0, 3 -> SS_tot = 4 + 1 + 0 + 9 = 14, sd(ite) = sqrt(14/4).
ITE = np.array([1.0, 2.0, 3.0, 6.0])
# y = [0, 1, 0, 1]: mean 0.5, sd(y) = 0.5 (ddof=0).
Y = np.array([0.0, 1.0, 0.0, 1.0])
# cate = [1, 1, 3, 3]: cate - ite = [0, -1, 0, -3] -> squares 0, 1, 0, 9 -> SS_res = 10, PEHE = sqrt(10/4).
CATE = np.array([1.0, 1.0, 3.0, 3.0])
# Intervals: [0,2] holds 1; [2,3] holds 2 (inclusive lo); [3,3] holds 3 (degenerate, inclusive);
# [0,5] misses 6 -> coverage 3/4; widths 2, 1, 0, 5 -> mean width 2.
CATE_INTERVAL = np.array([[0.0, 2.0], [2.0, 3.0], [3.0, 3.0], [0.0, 5.0]])


def full(**overrides):
    kw = dict(
        ate=2.5,
        cate=CATE,
        ate_interval=(2.0, 3.0),
        cate_interval=CATE_INTERVAL,
        ite=ITE,
        y=Y,
        fit_seconds=1.5,
    )
    kw.update(overrides)
    return dataset_metrics(**kw)


def test_hand_computed_case():
    m = full()
    assert m["sate"] == pytest.approx(3.0)
    assert m["ate"] == pytest.approx(2.5)
    assert m["ate_error"] == pytest.approx(-0.5)  # 2.5 - 3
    assert m["ate_abs_error"] == pytest.approx(0.5)
    assert m["pehe"] == pytest.approx(math.sqrt(2.5))
    assert m["cate_r2"] == pytest.approx(1 - 10 / 14)  # = 2/7
    assert m["pehe_sd_y"] == pytest.approx(math.sqrt(2.5) / 0.5)
    assert m["pehe_sd_ite"] == pytest.approx(math.sqrt(2.5) / math.sqrt(3.5))  # ddof=0: sqrt(14/4)
    assert m["cate_coverage"] == pytest.approx(0.75)
    assert m["cate_width"] == pytest.approx(2.0)
    assert m["cate_unbounded"] == 0.0
    assert m["ate_covered"] is True  # SATE 3 on the inclusive upper bound of [2, 3]
    assert m["ate_width"] == pytest.approx(1.0)
    assert m["fit_seconds"] == pytest.approx(1.5)
    assert set(METRIC_KEYS) <= set(m)


def test_ate_interval_that_misses():
    m = full(ate_interval=(2.0, 2.9))
    assert m["ate_covered"] is False
    assert m["ate_width"] == pytest.approx(0.9)


def test_cate_r2_uses_truth_as_y_true_not_the_papers_convention():
    # Ours: 1 - 10/14 = 2/7. The paper's released code: y_true = cate, mean(cate) = 2,
    # SS_tot(cate) = 1 + 1 + 1 + 1 = 4 -> 1 - 10/4 = -1.5. Same data, very different number.
    ours = full()["cate_r2"]
    papers = r2_score(CATE, ITE)
    assert ours == pytest.approx(2 / 7)
    assert papers == pytest.approx(-1.5)
    assert ours == pytest.approx(r2_score(ITE, CATE))


def test_missing_capabilities_are_none_not_nan():
    m = full(cate=None, cate_interval=None, ate_interval=None, fit_seconds=None)
    for key in (
        "pehe",
        "cate_r2",
        "pehe_sd_y",
        "pehe_sd_ite",
        "cate_coverage",
        "cate_width",
        "cate_unbounded",
    ):
        assert m[key] is None, key
    assert m["ate_covered"] is None and m["ate_width"] is None and m["fit_seconds"] is None
    assert m["ate_abs_error"] == pytest.approx(0.5)


def test_constant_true_effect_makes_r2_and_pehe_sd_ite_undefined():
    # ite = [2, 2, 2] (sd 0); cate = [1, 2, 3] -> squared errors 1, 0, 1 -> PEHE = sqrt(2/3).
    m = dataset_metrics(
        ate=2.0,
        cate=[1.0, 2.0, 3.0],
        ate_interval=None,
        cate_interval=None,
        ite=[2.0, 2.0, 2.0],
        y=[0.0, 1.0, 1.0],
        fit_seconds=None,
    )
    assert m["pehe"] == pytest.approx(math.sqrt(2 / 3))
    assert m["cate_r2"] is None and m["pehe_sd_ite"] is None
    # y = [0, 1, 1]: mean 2/3, var = (4/9 + 1/9 + 1/9)/3 = 2/9.
    assert m["pehe_sd_y"] == pytest.approx(math.sqrt(2 / 3) / math.sqrt(2 / 9))


def test_constant_outcome_makes_pehe_sd_y_undefined():
    m = full(y=np.zeros(4))
    # Only sd(y) is 0: the ITE-standardised PEHE keeps its value, sqrt(2.5) / sqrt(14/4).
    assert m["pehe_sd_y"] is None and m["pehe_sd_ite"] == pytest.approx(math.sqrt(2.5 / 3.5))


@pytest.mark.parametrize(
    "override",
    [
        {"ate": float("nan")},
        {"ate": float("inf")},
        {"cate": np.array([1.0, np.nan, 3.0, 3.0])},
        {"cate_interval": np.array([[0.0, 2.0], [2.0, np.inf], [3.0, 3.0], [0.0, 5.0]])},
        {"ate_interval": (float("nan"), 3.0)},
    ],
)
def test_non_finite_estimate_fails(override):
    with pytest.raises(NonFiniteEstimate):
        full(**override)


@pytest.mark.parametrize(
    "override",
    [
        {"ate": None},
        {"cate": np.ones(3)},
        {"cate_interval": np.ones((4, 3))},
        {"ate_interval": (3.0, 2.0)},
        {"cate_interval": np.array([[0.0, 2.0], [3.0, 2.0], [3.0, 3.0], [0.0, 5.0]])},
    ],
)
def test_malformed_estimate_fails(override):
    with pytest.raises(MalformedEstimate):
        full(**override)


INF = np.inf
# ite = [1, 2, 3, 6]: (-inf, 2] holds 1, [2, 3] holds 2, [3, 3] holds 3, [0, +inf) holds 6 -> coverage 1;
# the bounded units have widths 1 and 0 -> cate_width 0.5; 2 of 4 units unbounded -> cate_unbounded 0.5.
HALF_OPEN = np.array([[-INF, 2.0], [2.0, 3.0], [3.0, 3.0], [0.0, INF]])


def test_infinite_bounds_fail_by_default():
    with pytest.raises(NonFiniteEstimate):
        full(cate_interval=HALF_OPEN)
    with pytest.raises(NonFiniteEstimate):
        full(ate_interval=(-INF, 3.0))


def test_infinite_bounds_when_allowed():
    m = full(cate_interval=HALF_OPEN, ate_interval=(-INF, 3.0), allow_infinite_bounds=True)
    assert m["cate_coverage"] == 1.0
    assert m["cate_width"] == pytest.approx(0.5)
    assert m["cate_unbounded"] == pytest.approx(0.5)
    assert m["ate_covered"] is True and m["ate_width"] is None
    all_open = np.tile([-INF, INF], (4, 1))
    m = full(cate_interval=all_open, allow_infinite_bounds=True)
    assert m["cate_width"] is None and m["cate_unbounded"] == 1.0 and m["cate_coverage"] == 1.0


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"cate_interval": np.array([[np.nan, 2.0], [2.0, 3.0], [3.0, 3.0], [0.0, 5.0]])}, NonFiniteEstimate),
        ({"cate_interval": np.array([[INF, INF], [2.0, 3.0], [3.0, 3.0], [0.0, 5.0]])}, MalformedEstimate),
        ({"ate_interval": (-INF, -INF)}, MalformedEstimate),
        ({"cate": np.array([1.0, INF, 3.0, 3.0])}, NonFiniteEstimate),  # only bounds may be infinite
        ({"ate": INF}, NonFiniteEstimate),
    ],
)
def test_infinite_bounds_allowed_still_rejects(override, error):
    with pytest.raises(error):
        full(allow_infinite_bounds=True, **override)


def test_bad_truth_is_a_value_error_not_an_estimator_failure():
    with pytest.raises(ValueError):
        full(ite=np.array([1.0, np.nan, 3.0, 6.0]))
    with pytest.raises(ValueError):
        full(y=np.ones(3))


def test_failed_metrics_are_all_none():
    m = failed_metrics(sate=3.0, fit_seconds=2.0)
    assert m["sate"] == 3.0 and m["ate"] is None and m["fit_seconds"] == 2.0
    assert all(m[k] is None for k in METRIC_KEYS if k != "fit_seconds")


def rec(ate, sate, failed=False, **metrics):
    return {"ate": ate, "sate": sate, "failed": failed, **metrics}


RECORDS = [
    rec(1.0, 0.0, pehe=1.0, cate_r2=0.5, ate_covered=True, fit_seconds=1.0),
    rec(2.0, 3.0, pehe=2.0, cate_r2=None, ate_covered=False, fit_seconds=3.0),
    rec(5.0, 4.0, pehe=4.0, cate_r2=0.1, ate_covered=True, fit_seconds=2.0),
    rec(None, 1.0, failed=True, pehe=None),
]


def test_aggregate_hand_computed():
    agg = aggregate(RECORDS, n_boot=200)
    assert agg["n_datasets"] == 4 and agg["n_failures"] == 1
    # Errors 1, -1, 1 -> RMSE 1.
    assert agg["ate_rmse"] == pytest.approx(1.0)
    # SATE = 0, 3, 4, mean 7/3: SS_tot = 49/9 + 4/9 + 25/9 = 26/3; SS_res = 3 -> R² = 1 - 9/26.
    assert agg["ate_r2"] == pytest.approx(17 / 26)
    pehe = agg["metrics"]["pehe"]
    assert pehe["n"] == 3 and pehe["mean"] == pytest.approx(7 / 3) and pehe["median"] == pytest.approx(2.0)
    # The intervals' level and statistic are checked against analytic and scipy references below.
    r2 = agg["metrics"]["cate_r2"]
    assert r2["n"] == 2 and r2["mean"] == pytest.approx(0.3)
    assert agg["metrics"]["ate_covered"]["mean"] == pytest.approx(2 / 3)
    assert agg["metrics"]["fit_seconds"]["median"] == pytest.approx(2.0)
    empty = agg["metrics"]["cate_coverage"]
    assert empty == {"n": 0, "mean": None, "mean_ci": None, "median": None, "median_ci": None}


def test_aggregate_bootstrap_uses_its_seed():
    # A seed that is ignored would give equal intervals for different seeds.
    many = [rec(float(i % 7), 0.0, pehe=float(i * i % 11)) for i in range(30)]
    a, b = aggregate(many, seed=7), aggregate(many, seed=8)
    assert (
        a["ate_rmse_ci"] != b["ate_rmse_ci"]
        and a["metrics"]["pehe"]["mean_ci"] != b["metrics"]["pehe"]["mean_ci"]
    )
    assert (
        aggregate(many)["ate_rmse_ci"] == aggregate(many, seed=0)["ate_rmse_ci"]
    )  # documented default seed 0
    assert aggregate(many, seed=7)["ate_rmse_ci"] == a["ate_rmse_ci"]  # reproducible
    no_boot = aggregate(RECORDS, n_boot=0)
    assert no_boot["metrics"]["pehe"]["mean_ci"] is None and no_boot["ate_rmse_ci"] is None
    assert no_boot["ate_rmse"] == pytest.approx(1.0)  # the point values do not need the bootstrap


def test_aggregate_edge_cases():
    agg = aggregate([rec(1.0, 0.0)])
    assert agg["ate_rmse"] == pytest.approx(1.0) and agg["ate_r2"] is None  # one dataset: R² undefined
    assert agg["ate_rmse_ci"] == (1.0, 1.0)
    only_failed = aggregate([rec(None, 1.0, failed=True)])
    assert only_failed["n_failures"] == 1 and only_failed["ate_rmse"] is None
    assert aggregate([rec(1.0, 2.0), rec(3.0, 2.0)])["ate_r2"] is None  # equal SATEs: undefined
    with pytest.raises(ValueError):
        aggregate([rec(None, 1.0)])  # not failed but no estimate: a harness bug


def test_bootstrap_ci_percentiles():
    # All resamples of a constant are the constant.
    assert bootstrap_ci(np.full(5, 2.0), lambda a: a.mean(1)) == (2.0, 2.0)
    assert bootstrap_ci(np.array([]), lambda a: a.mean(1)) is None
    lo, hi = bootstrap_ci(np.arange(100.0), lambda a: a.mean(1), n_boot=2000, seed=1)
    # sd of the mean of 0..99 is about 28.9 / 10 = 2.89, so the 95% interval is about 49.5 ± 5.7.
    assert 42 < lo < 46 and 53 < hi < 57


def test_formulas_document_every_metric():
    for key in (*METRIC_KEYS, "sate", "ate_rmse", "ate_r2", "ddof = 0"):
        assert key in FORMULAS, key


# ---------------------------------------------------------------------------------------------------
# Data that tell the formulas apart (issue 14): RMSE vs MAE, R²'s argument order, interval levels.


def test_ate_rmse_is_not_the_mean_absolute_error_and_r2_uses_the_sate_spread():
    # SATE = 0, 1, 2; ate = 0, 3, 3 -> errors 0, 2, 1: RMSE = sqrt(5/3) ~ 1.29, MAE = 1.
    # R² with y_true = SATE: SS_tot = 1 + 0 + 1 = 2, SS_res = 5 -> 1 - 5/2 = -1.5.
    # Swapped (y_true = ate, mean 2): SS_tot = 4 + 1 + 1 = 6 -> 1 - 5/6 = 1/6.
    agg = aggregate([rec(0.0, 0.0), rec(3.0, 1.0), rec(3.0, 2.0)], n_boot=0)
    assert agg["ate_rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert agg["ate_rmse"] != pytest.approx(1.0)
    assert agg["ate_r2"] == pytest.approx(-1.5)
    assert r2_score(np.array([0.0, 3.0, 3.0]), np.array([0.0, 1.0, 2.0])) == pytest.approx(1 / 6)


def test_failed_flag_absent_means_not_failed():
    agg = aggregate([{"ate": 1.0, "sate": 0.0}, {"ate": 0.0, "sate": 2.0}], n_boot=0)
    assert agg["n_failures"] == 0 and agg["ate_rmse"] == pytest.approx(math.sqrt(5 / 2))


@pytest.mark.parametrize(
    ("interval", "covered"),
    [
        ((3.0, 4.0), True),  # SATE = 3 on the lower bound: inclusive
        ((2.0, 3.0), True),  # on the upper bound: inclusive
        ((3.0, 3.0), True),  # a degenerate interval at the SATE
        ((math.nextafter(3.0, 4.0), 4.0), False),  # just above the SATE
        ((2.0, math.nextafter(3.0, 2.0)), False),  # just below the SATE
    ],
)
def test_ate_coverage_bounds_on_both_sides(interval, covered):
    assert full(ate_interval=interval)["ate_covered"] is covered  # SATE of ITE = [1, 2, 3, 6] is exactly 3


def test_cate_coverage_is_against_the_truth_not_the_estimate():
    # Intervals [c - 0.5, c + 0.5] around CATE = [1, 1, 3, 3] hold every estimate but only the
    # truths 1 and 3 of ITE = [1, 2, 3, 6]: coverage 1/2 (against the estimate it would be 1).
    around_estimate = np.stack([CATE - 0.5, CATE + 0.5], axis=1)
    assert full(cate_interval=around_estimate)["cate_coverage"] == pytest.approx(0.5)


def test_cate_coverage_bounds_on_both_sides():
    # ITE = [1, 2, 3, 6]: 1 on a lower bound (in), 2 on an upper bound (in), 3 just below a lower
    # bound (out), 6 just above an upper bound (out) -> 1/2. Widths 4, 2, 1 - ulp, 6 - ulp.
    up, down = math.nextafter(3.0, 4.0), math.nextafter(6.0, 0.0)
    m = full(cate_interval=np.array([[1.0, 5.0], [0.0, 2.0], [up, 4.0], [0.0, down]]))
    assert m["cate_coverage"] == pytest.approx(0.5)
    assert m["cate_width"] == pytest.approx((4 + 2 + (4 - up) + down) / 4)


def test_bootstrap_ci_at_the_stated_level_is_the_binomial_quantile():
    # 50 zeros and 50 ones: the mean of a resample is exactly Binomial(100, 1/2) / 100, so the percentile
    # interval at level c is the binomial's (1 -+ c) / 2 quantiles (none falls on a jump of the CDF).
    values = np.repeat([0.0, 1.0], 50)
    for level in (0.95, 0.90):
        tail = (1 - level) / 2
        expected = stats.binom.ppf([tail, 1 - tail], 100, 0.5) / 100
        got = bootstrap_ci(values, lambda a: a.mean(1), n_boot=50_000, seed=3, confidence=level)
        assert got == pytest.approx(tuple(expected), abs=1e-12), level
    # The default level is 95%: (0.40, 0.60), not the 90% interval (0.42, 0.58).
    assert bootstrap_ci(values, lambda a: a.mean(1), n_boot=50_000, seed=3) == pytest.approx((0.40, 0.60))


def _scipy_ci(values: np.ndarray, stat, level: float = 0.95) -> tuple[float, float]:
    res = stats.bootstrap(
        (values,), stat, method="percentile", n_resamples=20_000, confidence_level=level, random_state=1
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _close(got, expected, rel_width: float = 0.02) -> bool:
    """Two bootstrap intervals agree up to Monte Carlo error: each bound within 2% of the interval's width."""
    tol = rel_width * (expected[1] - expected[0])
    return abs(got[0] - expected[0]) <= tol and abs(got[1] - expected[1]) <= tol


# Skewed data: the mean's and the median's bootstrap intervals are far apart.
SKEWED = np.random.default_rng(5).exponential(1.0, 41)


def test_summarize_intervals_match_scipy_bootstrap_of_the_right_statistic():
    s = summarize(SKEWED, n_boot=20_000)
    assert s["mean"] == pytest.approx(float(np.mean(SKEWED))) and s["median"] == pytest.approx(
        np.median(SKEWED)
    )
    mean95, median95 = _scipy_ci(SKEWED, np.mean), _scipy_ci(SKEWED, np.median)
    assert _close(s["mean_ci"], mean95), (s["mean_ci"], mean95)
    assert _close(s["median_ci"], median95), (s["median_ci"], median95)
    # The references tell the alternatives apart: the median's CI is not the mean's, 95% is not 90%.
    assert not _close(mean95, median95) and not _close(median95, mean95)
    assert not _close(s["mean_ci"], _scipy_ci(SKEWED, np.mean, 0.90))


def test_aggregate_intervals_match_scipy_bootstrap_at_95_percent():
    # Defaults: B = 2000 and 95%. ATE errors = SKEWED - 0.5 (both signs); PEHE = SKEWED.
    records = [rec(float(e) - 0.5, 0.0, pehe=float(e), ate_error=float(e) - 0.5) for e in SKEWED]
    agg = aggregate(records)
    errors = SKEWED - 0.5

    def rmse(a, axis=-1):
        return np.sqrt(np.mean(a**2, axis=axis))

    assert agg["ate_rmse"] == pytest.approx(float(rmse(errors)))
    for got, ref in (
        (agg["ate_rmse_ci"], _scipy_ci(errors, rmse)),
        (agg["metrics"]["pehe"]["mean_ci"], _scipy_ci(SKEWED, np.mean)),
        (agg["metrics"]["pehe"]["median_ci"], _scipy_ci(SKEWED, np.median)),
        (agg["metrics"]["ate_error"]["mean_ci"], _scipy_ci(errors, np.mean)),
    ):
        assert _close(got, ref, rel_width=0.05), (got, ref)  # B = 2000: looser than with 20 000
    assert not _close(agg["ate_rmse_ci"], _scipy_ci(errors, rmse, 0.90), rel_width=0.05)


def test_summarize_empty_and_counts():
    assert summarize([]) == {"n": 0, "mean": None, "mean_ci": None, "median": None, "median_ci": None}
    s = summarize([3.0, 1.0, 2.0, 10.0], n_boot=0)
    assert s == {"n": 4, "mean": 4.0, "mean_ci": None, "median": 2.5, "median_ci": None}


def test_documented_defaults_b_2000_seed_0_level_95():
    # FORMULAS: "B = 2000 resamples ... a fixed seed (0) by default; the 95% interval".
    v = SKEWED[:15]
    explicit = {"n_boot": 2000, "seed": 0, "confidence": 0.95}
    assert bootstrap_ci(v, lambda a: a.mean(1)) == bootstrap_ci(v, lambda a: a.mean(1), **explicit)
    assert summarize(v) == summarize(v, **explicit)
    records = [rec(float(x), 0.5, pehe=float(x)) for x in v]
    assert aggregate(records) == aggregate(records, **explicit)
    # ... and each of the three changes the intervals (so the equalities above are not vacuous).
    for change in ({"n_boot": 2001}, {"seed": 1}, {"confidence": 0.9}):
        assert summarize(v, **{**explicit, **change})["mean_ci"] != summarize(v)["mean_ci"], change


def test_bootstrap_resamples_every_value():
    # Two values: resample means 0, 5, 10 with probabilities 1/4, 1/2, 1/4 -> the 95% interval is (0, 10).
    assert bootstrap_ci(np.array([10.0, 0.0]), lambda a: a.mean(1), n_boot=1000) == (0.0, 10.0)
    assert bootstrap_ci(np.array([0.0, 10.0]), lambda a: a.mean(1), n_boot=1000) == (0.0, 10.0)
    # One resample is still an interval (of a single statistic), not "no interval".
    lo, hi = bootstrap_ci(np.array([1.0, 2.0, 4.0]), lambda a: a.mean(1), n_boot=1)
    assert lo == hi and 1.0 <= lo <= 4.0


def test_ate_r2_is_defined_from_two_datasets():
    # SATE 0, 2 (SS_tot 2); ate 0.5, 2 (SS_res 0.25) -> R² = 1 - 0.25 / 2 = 0.875.
    assert aggregate([rec(0.5, 0.0), rec(2.0, 2.0)], n_boot=0)["ate_r2"] == pytest.approx(0.875)


def test_unbounded_upper_ate_bound_when_allowed():
    m = full(ate_interval=(1.0, INF), allow_infinite_bounds=True)
    assert m["ate_covered"] is True and m["ate_width"] is None
    m = full(ate_interval=(-INF, INF), allow_infinite_bounds=True)
    assert m["ate_covered"] is True and m["ate_width"] is None


def test_error_messages_say_what_is_wrong():
    with pytest.raises(NonFiniteEstimate, match=r"cate has 1 non-finite value\(s\) \(NaN or inf\)"):
        full(cate=np.array([1.0, np.inf, 3.0, 3.0]))
    with pytest.raises(NonFiniteEstimate, match=r"cate_interval has 2 NaN$"):
        full(
            cate_interval=np.array([[np.nan, 2.0], [2.0, np.nan], [3.0, 3.0], [0.0, 5.0]]),
            allow_infinite_bounds=True,
        )
    with pytest.raises(MalformedEstimate, match=r"cate has shape \(3,\), expected \(4,\)"):
        full(cate=np.ones(3))
    with pytest.raises(MalformedEstimate, match="ate_interval has lo > hi in 1 place"):
        full(ate_interval=(3.0, 2.0))


@pytest.mark.parametrize("ite", [np.array([]), np.ones((2, 2))])
def test_truth_must_be_a_non_empty_vector(ite):
    with pytest.raises(ValueError, match="ite must be a non-empty 1-d array"):
        dataset_metrics(
            ate=1.0, cate=None, ate_interval=None, cate_interval=None, ite=ite, y=ite, fit_seconds=None
        )


def test_small_but_nonzero_spreads_standardise():
    # ite = [0, 1]: sd 0.5; y = [0, 2]: sd 1; cate = [0, 0]: PEHE = sqrt(1/2). Spreads at or below 1
    # are spreads, not "undefined": pehe_sd_ite = sqrt(1/2) / 0.5, pehe_sd_y = sqrt(1/2) / 1.
    m = dataset_metrics(
        ate=0.0, cate=[0.0, 0.0], ate_interval=None, cate_interval=None, ite=[0.0, 1.0], y=[0.0, 2.0],
        fit_seconds=None,
    )  # fmt: skip
    assert m["pehe_sd_ite"] == pytest.approx(math.sqrt(0.5) / 0.5)
    assert m["pehe_sd_y"] == pytest.approx(math.sqrt(0.5))
    assert m["cate_r2"] == pytest.approx(1 - 1 / 0.5)  # SS_res 1, SS_tot 0.5
