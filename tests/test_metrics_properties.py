"""Property-based checks of the metrics' invariants (shift, scale, permutation of units, degenerate inputs).

Values are small integers (as floats) and scales are powers of two, so shifted and scaled inputs are
exact in floating point: a coverage at an interval's bound flips only if the code is wrong. The runs
are derandomised (the same examples every time) and write no example database.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdscm_bench.metrics import aggregate, bootstrap_ci, dataset_metrics, summarize

PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None)

SCALE_FREE = ("cate_r2", "pehe_sd_ite", "pehe_sd_y", "cate_coverage", "ate_covered", "cate_unbounded")
SHIFT_FREE = (*SCALE_FREE, "ate_error", "ate_abs_error", "pehe", "cate_width", "ate_width")


@st.composite
def problems(draw: st.DrawFn, min_units: int = 1) -> dict:
    """Truth, outcome and a full estimate (ATE, CATE, both intervals) on n units, integer-valued."""
    n = draw(st.integers(min_units, 12))
    ints = st.lists(st.integers(-50, 50), min_size=n, max_size=n)
    widths = st.lists(st.integers(0, 20), min_size=n, max_size=n)
    ite, y, cate = (np.asarray(draw(ints), dtype=np.float64) for _ in range(3))
    lo = cate - np.asarray(draw(widths), dtype=np.float64)
    hi = cate + np.asarray(draw(widths), dtype=np.float64)
    ate_lo = float(draw(st.integers(-50, 50)))
    return {
        "ate": float(draw(st.integers(-50, 50))),
        "cate": cate,
        "ate_interval": (ate_lo, ate_lo + draw(st.integers(0, 40))),
        "cate_interval": np.stack([lo, hi], axis=1),
        "ite": ite,
        "y": y,
        "fit_seconds": None,
    }


def transformed(p: dict, a: float, c: float) -> dict:
    """Every effect and bound mapped by x -> a * x + c (a < 0 swaps the bounds); y scaled by |a|."""
    lo, hi = p["cate_interval"][:, 0] * a + c, p["cate_interval"][:, 1] * a + c
    alo, ahi = p["ate_interval"][0] * a + c, p["ate_interval"][1] * a + c
    return {
        **p,
        "ate": p["ate"] * a + c,
        "cate": p["cate"] * a + c,
        "ite": p["ite"] * a + c,
        "y": p["y"] * abs(a),
        "cate_interval": np.stack([np.minimum(lo, hi), np.maximum(lo, hi)], axis=1),
        "ate_interval": (min(alo, ahi), max(alo, ahi)),
    }


def assert_same(m1: dict, m2: dict, keys: tuple[str, ...], factor: float = 1.0) -> None:
    for key in keys:
        if m1[key] is None or isinstance(m1[key], bool):
            assert m2[key] == m1[key], key
        else:
            assert m2[key] == pytest.approx(m1[key] * factor, rel=1e-9, abs=1e-9), key


@PROPS
@given(problems(), st.integers(-100, 100))
def test_shift_of_every_effect_changes_no_error_metric(p: dict, c: int) -> None:
    m, shifted = dataset_metrics(**p), dataset_metrics(**transformed(p, 1.0, float(c)))
    assert_same(m, shifted, SHIFT_FREE)
    assert shifted["sate"] == pytest.approx(m["sate"] + c)


@PROPS
@given(problems(), st.sampled_from([0.25, 0.5, 2.0, 8.0, -0.5, -4.0]))
def test_scale_multiplies_errors_and_leaves_standardised_metrics(p: dict, a: float) -> None:
    m, scaled = dataset_metrics(**p), dataset_metrics(**transformed(p, a, 0.0))
    assert_same(m, scaled, SCALE_FREE)
    assert_same(m, scaled, ("ate_error",), factor=a)
    assert_same(m, scaled, ("ate_abs_error", "pehe", "cate_width", "ate_width"), factor=abs(a))


@PROPS
@given(problems(), st.randoms(use_true_random=False))
def test_permuting_units_changes_nothing(p: dict, rnd) -> None:
    order = list(range(p["ite"].size))
    rnd.shuffle(order)
    perm = {
        **p,
        **{k: p[k][order] for k in ("cate", "ite", "y")},
        "cate_interval": p["cate_interval"][order],
    }
    m, permuted = dataset_metrics(**p), dataset_metrics(**perm)
    assert_same(m, permuted, (*SHIFT_FREE, "sate"))


@PROPS
@given(problems())
def test_perfect_estimate_and_degenerate_truth(p: dict) -> None:
    ite = p["ite"]
    exact = {**p, "ate": float(ite.mean()), "cate": ite, "cate_interval": np.stack([ite, ite], axis=1)}
    m = dataset_metrics(**exact)
    assert m["pehe"] == 0.0 and m["ate_abs_error"] == pytest.approx(0.0, abs=1e-12)
    assert m["cate_coverage"] == 1.0 and m["cate_width"] == 0.0
    assert m["cate_r2"] == (None if np.ptp(ite) == 0 else 1.0)
    const = dataset_metrics(**{**p, "ite": np.full_like(ite, ite[0])})  # a constant true effect
    assert const["cate_r2"] is None and const["pehe_sd_ite"] is None
    assert const["pehe"] == pytest.approx(float(np.sqrt(np.mean((p["cate"] - ite[0]) ** 2))))
    assert (const["pehe_sd_y"] is None) == (np.ptp(p["y"]) == 0)


@PROPS
@given(problems(min_units=2))
def test_pehe_is_at_least_the_ate_error_of_the_mean_cate(p: dict) -> None:
    # Jensen: sqrt(mean(e²)) >= |mean(e)|, so the CATE's PEHE bounds the error of its own average.
    m = dataset_metrics(**{**p, "ate": float(np.mean(p["cate"]))})
    assert m["pehe"] >= m["ate_abs_error"] - 1e-9


# ---------------------------------------------------------------------------------------------------
# Across datasets

pairs = st.lists(st.tuples(st.integers(-30, 30), st.integers(-30, 30)), min_size=1, max_size=15)


def records(pairs_: list[tuple[int, int]], a: float = 1.0, c: float = 0.0) -> list[dict]:
    return [{"ate": a * ate + c, "sate": a * sate + c, "pehe": abs(a) * abs(ate)} for ate, sate in pairs_]


@PROPS
@given(pairs)
def test_ate_rmse_bounds_the_mean_absolute_error(pairs_: list[tuple[int, int]]) -> None:
    err = np.asarray([ate - sate for ate, sate in pairs_], dtype=np.float64)
    agg = aggregate(records(pairs_), n_boot=0)
    assert agg["ate_rmse"] == pytest.approx(math.sqrt(float(np.mean(err**2))))
    mae = float(np.mean(np.abs(err)))
    assert agg["ate_rmse"] >= mae - 1e-9
    if len(set(np.abs(err))) > 1:  # unequal |errors|: strictly larger than the MAE
        assert agg["ate_rmse"] > mae + 1e-12


@PROPS
@given(pairs, st.sampled_from([0.5, 2.0, -4.0]), st.integers(-50, 50), st.randoms(use_true_random=False))
def test_aggregate_point_values_under_scale_shift_and_permutation(pairs_, a, c, rnd) -> None:
    base = aggregate(records(pairs_), n_boot=0)
    moved = aggregate(records(pairs_, a, float(c)), n_boot=0)
    assert moved["ate_rmse"] == pytest.approx(abs(a) * base["ate_rmse"], abs=1e-9)
    assert (moved["ate_r2"] is None) == (base["ate_r2"] is None)
    if base["ate_r2"] is not None:
        assert moved["ate_r2"] == pytest.approx(base["ate_r2"], rel=1e-9, abs=1e-9)
    shuffled = list(pairs_)
    rnd.shuffle(shuffled)
    perm = aggregate(records(shuffled), n_boot=0)
    assert perm["ate_rmse"] == pytest.approx(base["ate_rmse"]) and perm["n_datasets"] == len(pairs_)
    assert perm["metrics"]["pehe"]["mean"] == pytest.approx(base["metrics"]["pehe"]["mean"])
    assert perm["metrics"]["pehe"]["median"] == base["metrics"]["pehe"]["median"]


values = st.lists(st.integers(-100, 100), min_size=1, max_size=20).map(lambda v: np.asarray(v, dtype=float))


@PROPS
@given(values, st.integers(-100, 100), st.sampled_from([0.5, 2.0, 4.0]))
def test_bootstrap_interval_is_shift_and_scale_equivariant(v: np.ndarray, c: int, a: float) -> None:
    s, moved = summarize(v, n_boot=200), summarize(v * a + c, n_boot=200)
    for key in ("mean_ci", "median_ci"):
        lo, hi = s[key]
        assert min(v) <= lo <= hi <= max(v), key  # the mean and median of resamples stay in the range
        assert moved[key] == pytest.approx((lo * a + c, hi * a + c), abs=1e-9), key


@PROPS
@given(values, st.integers(0, 1000))
def test_a_higher_level_gives_a_wider_interval(v: np.ndarray, seed: int) -> None:
    # The same resamples (same seed): the 95% interval contains the 90% one, which contains the 50% one.
    def mean(a: np.ndarray) -> np.ndarray:
        return a.mean(1)

    ci50, ci90, ci95 = (bootstrap_ci(v, mean, n_boot=300, seed=seed, confidence=c) for c in (0.5, 0.9, 0.95))
    assert ci95[0] <= ci90[0] <= ci50[0] <= ci50[1] <= ci90[1] <= ci95[1]
    if np.ptp(v) == 0:
        assert ci95 == (v[0], v[0])  # a constant: every resample is the constant
