"""The regression gate: paired comparisons against a baseline results file."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from scipy import stats

from sdscm_bench.gate import (
    DEFAULT_RULES,
    BaselineError,
    GateRule,
    Stratum,
    compare,
    load_baseline,
    min_paired,
    pair_records,
    regressions,
    wilcoxon_greater,
)
from sdscm_bench.metrics import METRIC_KEYS
from sdscm_bench.results_file import merge_results


def record(estimator="A", dataset="d1", lm="lm1", setting="s1", failed=False, **metrics):
    rec = {
        "estimator": estimator,
        "library": "lib",
        "library_version": "1.0",
        "adapter_fingerprint": "f",
        "lm": lm,
        "setting": setting,
        "family": "fam",
        "dataset": dataset,
        "dataset_fingerprint": f"fp-{dataset}",
        **dict.fromkeys(METRIC_KEYS),
        "ate": None if failed else 1.0,
        "sate": 1.0,
        "failed": failed,
        "error": "RuntimeError: boom" if failed else None,
    }
    if not failed:
        rec.update(ate_error=0.10, ate_abs_error=0.10, pehe=0.50, cate_r2=0.60)
    rec.update(metrics)
    return rec


def with_errors(errors, pehe=None, estimator="A", lm="lm1", setting="s1"):
    """Records with these ATE errors (and PEHEs) on datasets d0, d1, ..."""
    pehe = [0.5] * len(errors) if pehe is None else pehe
    return [
        record(estimator, f"d{i}", lm, setting, ate_error=e, ate_abs_error=abs(e), pehe=p)
        for i, (e, p) in enumerate(zip(errors, pehe, strict=True))
    ]


RNG = np.random.default_rng(7)
BASE_ERRORS = RNG.normal(0.0, 0.003, size=12)  # typical released-data ATE errors
BASE = with_errors(BASE_ERRORS, pehe=list(RNG.uniform(0.01, 0.02, size=12)))


def by_metric(verdicts):
    return {v.metric: v for v in verdicts}


def test_unchanged_run_passes_with_p_1():
    verdicts = compare(BASE, [dict(r) for r in BASE])
    assert regressions(verdicts) == []
    ate = by_metric(verdicts)["ATE RMSE"]
    assert ate.p_value == 1.0 and ate.ratio == pytest.approx(1.0) and ate.decided and ate.n_paired == 12


def test_biased_estimate_is_caught_with_a_message_naming_metric_values_and_test():
    # Every ATE shifted by 3x the typical error: a regression by both the ratio and the paired test.
    new = with_errors(BASE_ERRORS + 0.009, pehe=[r["pehe"] for r in BASE])
    (reg,) = regressions(compare(BASE, new))
    assert reg.metric == "ATE RMSE" and reg.estimator == "A" and reg.n_paired == 12
    base_rmse = float(np.sqrt(np.mean(BASE_ERRORS**2)))
    new_rmse = float(np.sqrt(np.mean((BASE_ERRORS + 0.009) ** 2)))
    assert reg.ratio == pytest.approx(new_rmse / base_rmse)
    assert reg.p_value < 0.01
    for text in (
        "A: ATE RMSE REGRESSION",
        f"{base_rmse:.4g} -> {new_rmse:.4g}",
        "Wilcoxon signed-rank",
        "n = 12",
    ):
        assert text in reg.message, (text, reg.message)


def test_seed_noise_passes():
    # A new seed of a randomised learner: each dataset's error is the data's part plus the seed's
    # part (sd half the data's), in the baseline and in the new run alike.
    rng = np.random.default_rng(11)
    data_part = rng.normal(0.0, 0.003, size=12)
    base = with_errors(data_part + rng.normal(0.0, 0.0015, size=12))
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        new = with_errors(data_part + rng.normal(0.0, 0.0015, size=12))
        assert regressions(compare(base, new)) == [], seed


def test_errors_redrawn_from_scratch_rarely_alarm():
    # The harshest noise: baseline and new errors drawn independently from one distribution. The
    # rule (ratio > 1.5 and one-sided p < 0.05) then alarms in a few % of baseline/new pairs (more
    # against a baseline that happened to be lucky: a fixed baseline is one draw): at most 1 of 20.
    alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        base, new = with_errors(rng.normal(0.0, 0.003, size=12)), with_errors(rng.normal(0.0, 0.003, size=12))
        alarms += bool(regressions(compare(base, new)))
    assert alarms <= 1


def test_small_consistent_shift_passes_on_the_effect_size():
    # Every error 5% larger: the Wilcoxon test is significant (12 of 12 worse) but 5% < 50%.
    new = with_errors(BASE_ERRORS * 1.05, pehe=[r["pehe"] for r in BASE])
    ate = by_metric(compare(BASE, new))["ATE RMSE"]
    assert ate.p_value < 0.01 and not ate.regression


def test_large_ratio_from_one_dataset_passes_on_the_test():
    # One dataset's error 10x: the RMSE ratio is large, but one of 12 datasets is not evidence.
    errors = BASE_ERRORS.copy()
    errors[int(np.argmax(np.abs(errors)))] *= 10
    ate = by_metric(compare(BASE, with_errors(errors, pehe=[r["pehe"] for r in BASE])))["ATE RMSE"]
    assert ate.ratio > 1.25 and ate.p_value >= 0.01 and not ate.regression


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


# Errors 1 -> 1.25 (and PEHE 0.5 -> 0.625) are exact in binary: the ratio is exactly 1.25, so the
# boundary cases below sit on the threshold, not next to it.
RATIO_RULES = (
    GateRule("ATE RMSE", loss="ate_error", square=True, min_rel_change=0.25),
    GateRule("mean PEHE", loss="pehe", square=False, min_rel_change=0.25),
)


@pytest.mark.parametrize("rule", RATIO_RULES, ids=lambda r: r.label)
@pytest.mark.parametrize(("factor", "regression"), [(1.25, False), (above(1.25), True), (below(1.25), False)])
def test_ratio_boundary_is_strictly_greater(rule, factor, regression):
    # 8 of 8 datasets worse: p = 2^-8, far below alpha, so only the ratio decides.
    base = with_errors([1.0] * 8, pehe=[0.5] * 8)
    if rule.loss == "ate_error":
        new = with_errors([factor] * 8, pehe=[0.5] * 8)
    else:
        new = with_errors([1.0] * 8, pehe=[0.5 * factor] * 8)
    verdict = by_metric(compare(base, new, [rule]))[rule.label]
    assert verdict.ratio == factor and verdict.p_value == 2.0**-8
    assert verdict.regression is regression


@pytest.mark.parametrize(
    ("alpha", "regression"), [(2.0**-8, False), (above(2.0**-8), True), (below(2.0**-8), False)]
)
def test_p_value_boundary_is_strictly_less(alpha, regression):
    # 9 datasets, 8 worse (1 -> 2) and one slightly better (1 -> 0.9, the smallest |d|, rank 1): the
    # signed-rank sum is 45 - 1 = 44, reached by 2 of the 2^9 sign patterns, so the exact p is 2^-8.
    # min_paired(2^-8) = 9, so the test decides here: only "p < alpha" separates the cases.
    rule = GateRule("ATE RMSE", loss="ate_error", square=True, min_rel_change=0.25, alpha=alpha)
    verdict = by_metric(compare(with_errors([1.0] * 9), with_errors([2.0] * 8 + [0.9]), [rule]))["ATE RMSE"]
    assert verdict.p_value == 2.0**-8 and verdict.decided and verdict.ratio > 1.25
    assert verdict.regression is regression


@pytest.mark.parametrize(("label", "threshold"), [("ATE RMSE", 1.5), ("mean PEHE", 1.25)])
def test_default_thresholds_on_both_sides(label, threshold):
    # The documented defaults: ATE RMSE 50% worse, mean PEHE 25% worse, alpha = 0.05 (12 of 12 worse).
    base = with_errors([1.0] * 12, pehe=[0.5] * 12)
    for factor, regression in ((threshold, False), (above(threshold), True)):
        if label == "ATE RMSE":
            new = with_errors([factor] * 12, pehe=[0.5] * 12)
        else:
            new = with_errors([1.0] * 12, pehe=[0.5 * factor] * 12)
        verdict = by_metric(compare(base, new))[label]
        assert verdict.ratio == factor and verdict.regression is regression, (label, factor)
        assert f"x > {threshold:.3g} and p < 0.05" in verdict.message


def test_too_few_pairs_cannot_decide():
    assert min_paired(0.05) == 5 and min_paired(0.01) == 7  # 2^-4 = 0.0625, 2^-5 = 0.031; 2^-7 = 0.0078
    n = min_paired(0.05)
    base, new = with_errors([0.01] * (n - 1)), with_errors([0.05] * (n - 1))
    ate = by_metric(compare(base, new))["ATE RMSE"]
    assert not ate.decided and not ate.regression and "cannot decide" in ate.message
    base, new = with_errors([0.01] * n), with_errors([0.05] * n)
    assert by_metric(compare(base, new))["ATE RMSE"].regression


def test_strata_pool_with_their_own_scale():
    # Two LMs whose errors differ 100-fold; the regression is in the small-scale one only, and is
    # caught because each stratum's differences are scaled by its own baseline loss.
    small = with_errors(BASE_ERRORS / 100, lm="small")
    large = with_errors(BASE_ERRORS, lm="large")
    new = with_errors(BASE_ERRORS / 100 * 4, lm="small") + [dict(r) for r in large]
    reg = by_metric(compare(small + large, new))["ATE RMSE"]
    assert [s.lm for s in reg.strata] == ["large", "small"]
    assert reg.strata[0].ratio == pytest.approx(1.0) and reg.strata[1].ratio == pytest.approx(4.0)
    assert reg.ratio == pytest.approx(2.0)  # geometric mean of 1 and 4
    assert reg.p_value == pytest.approx(2.0**-12)  # 12 of 12 worse; the unchanged stratum adds zeros
    assert reg.regression


def test_improvement_is_not_a_regression():
    new = with_errors(BASE_ERRORS / 4, pehe=[r["pehe"] / 4 for r in BASE])
    assert regressions(compare(BASE, new)) == []


def test_worse_pehe_is_a_regression():
    new = with_errors(BASE_ERRORS, pehe=[r["pehe"] * 2 for r in BASE])
    (reg,) = regressions(compare(BASE, new))
    assert reg.metric == "mean PEHE" and reg.ratio == pytest.approx(2.0)


def test_new_failure_is_a_regression():
    new = [dict(r) for r in BASE]
    new[2] = record(dataset="d2", failed=True)
    (reg,) = regressions(compare(BASE, new))
    assert reg.metric == "failed"
    assert "failed on 1 of 12" in reg.message and "d2" in reg.message and "boom" in reg.message


def test_failure_in_both_is_not_a_new_regression():
    base = [record(dataset="d0", failed=True), *BASE[1:]]
    new = [record(dataset="d0", failed=True), *[dict(r) for r in BASE[1:]]]
    assert regressions(compare(base, new)) == []


def test_lost_capability_is_a_regression():
    new = [dict(r) for r in BASE]
    new[0] = {**new[0], "pehe": None}
    regs = regressions(compare(BASE, new))
    assert [r.metric for r in regs] == ["missing:pehe"]
    assert "missing on 1 of 12" in regs[0].message


def test_only_paired_datasets_are_compared():
    new = [record(dataset="d0"), record(dataset="d99", ate_error=9.0), record("B", "d0", ate_error=9.0)]
    assert len(pair_records(BASE, new)) == 1
    # A changed dataset (new fingerprint) is not paired with the old one.
    changed = [{**r, "ate_error": 9.0, "dataset_fingerprint": r["dataset_fingerprint"] + "-v2"} for r in BASE]
    assert pair_records(BASE, changed) == [] and compare(BASE, changed) == []


def test_verdicts_are_per_estimator():
    base = BASE + with_errors(BASE_ERRORS, estimator="B")
    new = [dict(r) for r in BASE] + with_errors(BASE_ERRORS * 4, estimator="B")
    assert [(v.estimator, v.metric) for v in regressions(compare(base, new))] == [("B", "ATE RMSE")]


def test_default_rules_and_wilcoxon():
    assert [r.label for r in DEFAULT_RULES] == ["ATE RMSE", "mean PEHE"]
    assert wilcoxon_greater(np.zeros(5)) == 1.0
    assert wilcoxon_greater(np.ones(8)) == pytest.approx(2.0**-8)
    assert wilcoxon_greater(-np.ones(8)) == pytest.approx(1.0)


def test_load_baseline_round_trip(tmp_path):
    path = tmp_path / "results.json"
    merge_results(path, BASE)
    loaded = load_baseline(path)
    assert len(loaded) == 12 and regressions(compare(loaded, BASE)) == []


def test_load_baseline_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(BaselineError, match=re.escape(str(missing)) + ".*not found"):
        load_baseline(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(BaselineError, match=re.escape(str(bad)) + ".*not valid JSON"):
        load_baseline(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"records": [{"estimator": "A"}]}')
    with pytest.raises(BaselineError, match=re.escape(str(wrong)) + ".*key fields"):
        load_baseline(wrong)


# ---------------------------------------------------------------------------------------------------
# Each part of the rule, on data where a wrong version gives another verdict


def test_rule_defaults_are_the_documented_ones():
    rule = GateRule("x", loss="pehe", square=False)
    assert (rule.min_rel_change, rule.alpha) == (0.25, 0.05)
    assert [(r.loss, r.square, r.min_rel_change, r.alpha) for r in DEFAULT_RULES] == [
        ("ate_error", True, 0.5, 0.05),
        ("pehe", False, 0.25, 0.05),
    ]


def test_verdicts_rules_and_strata_are_immutable_values():
    verdict = by_metric(compare(BASE, [dict(r) for r in BASE]))["ATE RMSE"]
    for obj, field in ((verdict, "regression"), (verdict.strata[0], "new"), (DEFAULT_RULES[0], "alpha")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 0)


def test_stratum_ratio_with_a_zero_baseline():
    assert Stratum("lm", "s", 3, baseline=0.0, new=0.0).ratio == 1.0
    assert Stratum("lm", "s", 3, baseline=0.0, new=0.5).ratio == math.inf
    assert Stratum("lm", "s", 3, baseline=2.0, new=0.5).ratio == 0.25


def test_zero_baseline_loss_scales_by_the_new_loss():
    # A perfect baseline (every PEHE 0) and a new run with PEHE > 0 everywhere: the differences are
    # scaled by the new mean instead (no division by zero), 8 of 8 worse -> p = 2^-8, ratio infinite.
    base = with_errors([0.01] * 8, pehe=[0.0] * 8)
    new = with_errors([0.01] * 8, pehe=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    pehe = by_metric(compare(base, new))["mean PEHE"]
    assert pehe.p_value == 2.0**-8 and pehe.ratio == math.inf and pehe.regression
    # Both perfect: no difference, ratio 1, a pass.
    same = by_metric(compare(base, [dict(r) for r in base]))["mean PEHE"]
    assert same.ratio == 1.0 and same.p_value == 1.0 and not same.regression


def test_unchanged_run_with_few_pairs_is_decided():
    # Too few pairs for the test to reach alpha, but every difference is 0: nothing changed, a pass.
    base = with_errors([0.01, 0.02])
    ate = by_metric(compare(base, [dict(r) for r in base]))["ATE RMSE"]
    assert ate.decided and not ate.regression and ate.n_paired == 2
    assert "ATE RMSE pass" in ate.message and "Fewer than" not in ate.message


def test_wilcoxon_drops_zero_differences():
    # One nonzero difference: the exact one-sided p of a single positive value is 1/2.
    assert wilcoxon_greater(np.array([0.0, 0.0, 3.0])) == pytest.approx(0.5)
    assert wilcoxon_greater(np.array([0.0, 1.0, 2.0, 3.0])) == pytest.approx(2.0**-3)


def test_differences_are_scaled_by_each_stratum_baseline_loss():
    # Stratum "big" (errors ~1) gets slightly better, stratum "tiny" (errors ~0.01) twice worse. The
    # documented d = (L_new - L_base) / mean(L_base) per stratum makes tiny's differences the largest;
    # unscaled, big's small improvements would outrank them and the test would see no regression.
    big_base = [1.0, 1.1, 1.2, 1.3]
    big_new = [0.95 * e for e in big_base]
    tiny_base = [0.010, 0.011, 0.012, 0.013, 0.014, 0.015, 0.016, 0.017]
    tiny_new = [2.0 * e for e in tiny_base]
    base = with_errors(big_base, lm="big") + with_errors(tiny_base, lm="tiny")
    new = with_errors(big_new, lm="big") + with_errors(tiny_new, lm="tiny")
    rule = GateRule("ATE RMSE", loss="ate_error", square=True, min_rel_change=0.25)
    ate = by_metric(compare(base, new, [rule]))["ATE RMSE"]
    d = []
    for b, n in ((big_base, big_new), (tiny_base, tiny_new)):
        lb, ln = np.square(b), np.square(n)
        d += list((ln - lb) / lb.mean())
    expected = stats.wilcoxon(d, alternative="greater").pvalue
    assert ate.p_value == pytest.approx(expected) and ate.p_value < 0.05
    assert ate.ratio == pytest.approx(math.sqrt(0.95 * 2.0))  # geometric mean of the two RMSE ratios
    assert ate.regression


def test_variants_are_separate_strata():
    base = with_errors([0.01] * 6)

    # A variant's datasets are other datasets (other fingerprints) of the same LM and setting.
    def v2(recs):
        return [{**r, "variant": "v2", "dataset_fingerprint": r["dataset_fingerprint"] + "-v2"} for r in recs]

    base_v = v2(with_errors([1.0] * 6))
    new = [dict(r) for r in base] + v2(with_errors([2.0] * 6))
    ate = by_metric(compare(base + base_v, new))["ATE RMSE"]
    assert [(s.lm, s.variant, s.setting, s.n) for s in ate.strata] == [
        ("lm1", None, "s1", 6),
        ("lm1", "v2", "s1", 6),
    ]
    assert [s.ratio for s in ate.strata] == pytest.approx([1.0, 2.0])
    assert "lm1 · v2 · s1: 1 -> 2 (n = 6)" in ate.message and "lm1 · s1: 0.01 -> 0.01 (n = 6)" in ate.message


def test_messages_name_the_verdict():
    regression = by_metric(compare(with_errors([1.0] * 6), with_errors([2.0] * 6)))["ATE RMSE"]
    assert "A: ATE RMSE REGRESSION: x2 of the baseline" in regression.message
    assert "Fewer than" not in regression.message
    undecided = by_metric(compare(with_errors([1.0] * 4), with_errors([2.0] * 4)))["ATE RMSE"]
    assert "ATE RMSE cannot decide" in undecided.message
    assert "Fewer than 5 paired datasets: the test cannot reach p < 0.05" in undecided.message


@pytest.mark.parametrize(("n_failed", "more"), [(5, ""), (6, " and 1 more"), (7, " and 2 more")])
def test_new_failures_name_five_datasets_then_count(n_failed, more):
    new = [dict(r) for r in BASE]
    for i in range(n_failed):
        new[i] = record(dataset=f"d{i}", failed=True, error=f"E{i % 2}")
    (failed,) = [v for v in compare(BASE, new) if v.metric == "failed"]
    assert failed.regression and failed.decided and failed.estimator == "A" and failed.n_paired == 12
    named = ", ".join(f"d{i} (lm1, s1)" for i in range(5))
    assert f"failed on {n_failed} of 12 paired datasets" in failed.message
    assert f"({named}{more}); error: E0" in failed.message  # the first error in sorted order


def test_lost_capability_verdict_fields():
    new = [{**dict(r), "pehe": None} for r in BASE]
    (lost,) = [v for v in compare(BASE, new) if v.metric == "missing:pehe"]
    assert lost.regression and lost.decided and lost.estimator == "A" and lost.n_paired == 12
    assert "pehe is missing on 12 of 12 paired datasets" in lost.message
    assert "mean PEHE" not in by_metric(compare(BASE, new))  # no pair has it: nothing to judge
