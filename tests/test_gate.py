"""The regression gate: paired comparisons against a baseline results file."""

from __future__ import annotations

import re

import pytest

from sdscm_bench.gate import (
    DEFAULT_TOLERANCES,
    BaselineError,
    Tolerance,
    compare,
    load_baseline,
    pair_records,
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
        rec.update(ate_abs_error=0.10, pehe=0.50, cate_r2=0.60)
    rec.update(metrics)
    return rec


def run(**metrics_by_dataset):
    return [record(dataset=d, **m) for d, m in metrics_by_dataset.items()]


BASE = run(d1={}, d2={}, d3={})


def test_equal_run_passes():
    assert compare(BASE, [dict(r) for r in BASE]) == []


def test_worse_ate_error_is_a_regression_with_a_useful_message():
    # Baseline mean 0.10; allowed = 0.01 + 10% of 0.10 = 0.02. New errors 0.10, 0.13, 0.16 -> mean
    # 0.13, paired mean difference +0.03 > 0.02.
    new = run(d1={}, d2={"ate_abs_error": 0.13}, d3={"ate_abs_error": 0.16})
    (reg,) = compare(BASE, new)
    assert reg.metric == "ate_abs_error" and reg.n_paired == 3
    assert reg.baseline == pytest.approx(0.10) and reg.new == pytest.approx(0.13)
    assert reg.delta == pytest.approx(0.03) and reg.allowed == pytest.approx(0.02)
    for text in (
        "A (LM lm1, setting s1)",
        "ate_abs_error",
        "0.1 to 0.13",
        "+0.03",
        "allowed 0.02",
        "3 paired",
    ):
        assert text in reg.message, (text, reg.message)
    assert "(2 worse)" in reg.message


def test_change_within_tolerance_passes():
    # Mean difference +0.015 <= allowed 0.02; PEHE 0.5 -> 0.55 is +0.05 <= 0.01 + 0.05.
    new = run(
        d1={"ate_abs_error": 0.115, "pehe": 0.55}, d2={"ate_abs_error": 0.115}, d3={"ate_abs_error": 0.115}
    )
    assert compare(BASE, new) == []


def test_improvement_is_not_a_regression():
    new = run(d1={"ate_abs_error": 0.0, "pehe": 0.1, "cate_r2": 0.99}, d2={}, d3={})
    assert compare(BASE, new) == []


def test_lower_cate_r2_is_a_regression_higher_is_not():
    # Baseline mean 0.6; new 0.6, 0.6, 0.36 -> mean 0.52, worse by 0.08 > 0.05.
    (reg,) = compare(BASE, run(d1={}, d2={}, d3={"cate_r2": 0.36}))
    assert reg.metric == "cate_r2" and reg.delta == pytest.approx(-0.08)
    assert "higher is better" in reg.message
    assert compare(BASE, run(d1={}, d2={}, d3={"cate_r2": 0.9})) == []


def test_new_failure_is_a_regression():
    new = run(d1={}, d2={"failed": True}, d3={})
    (reg,) = compare(BASE, new)
    assert reg.metric == "failed"
    assert "failed on 1 of 3" in reg.message and "d2" in reg.message and "boom" in reg.message


def test_failure_in_both_is_not_a_new_regression():
    base = [record(dataset="d1", failed=True), *BASE[1:]]
    new = [record(dataset="d1", failed=True), *[dict(r) for r in BASE[1:]]]
    assert compare(base, new) == []


def test_lost_capability_is_a_regression():
    new = run(d1={"cate_r2": None, "pehe": None}, d2={}, d3={})
    regs = compare(BASE, new)
    assert {r.metric for r in regs} == {"missing:pehe", "missing:cate_r2"}
    assert all("missing on 1 of 3" in r.message for r in regs)


def test_only_paired_datasets_are_compared():
    # d4 and the other estimator are not in the baseline; d2, d3 are not in the new run.
    new = [
        record(dataset="d1"),
        record(dataset="d4", ate_abs_error=9.0),
        record("B", "d1", ate_abs_error=9.0),
    ]
    assert len(pair_records(BASE, new)) == 1
    assert compare(BASE, new) == []
    # A changed dataset (new fingerprint) is not paired with the old one.
    changed = [{**record(dataset="d1", ate_abs_error=9.0), "dataset_fingerprint": "fp-d1-v2"}]
    assert pair_records(BASE, changed) == [] and compare(BASE, changed) == []


def test_groups_are_per_estimator_lm_and_setting():
    base = [record("A", "d1"), record("A", "d1", lm="lm2"), record("B", "d1")]
    new = [record("A", "d1"), record("A", "d1", lm="lm2", pehe=2.0), record("B", "d1")]
    (reg,) = compare(base, new)
    assert (reg.estimator, reg.lm, reg.setting, reg.metric) == ("A", "lm2", "s1", "pehe")


def test_custom_tolerances_gate_only_the_named_metrics():
    new = run(d1={"ate_abs_error": 0.5, "pehe": 0.51}, d2={}, d3={})
    assert compare(BASE, new, {"pehe": Tolerance("lower", abs_tol=0.0)})[0].metric == "pehe"
    assert compare(BASE, new, {"pehe": Tolerance("lower", abs_tol=0.02)}) == []
    assert set(DEFAULT_TOLERANCES) == {"ate_abs_error", "pehe", "cate_r2"}


def test_load_baseline_round_trip(tmp_path):
    path = tmp_path / "results.json"
    merge_results(path, BASE)
    loaded = load_baseline(path)
    assert len(loaded) == 3 and compare(loaded, BASE) == []


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
