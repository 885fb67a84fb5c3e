"""Verdicts across tables: rank agreement between sources with bootstrap CIs, and the paper's
configuration of a method beside ours (paired, ties named)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sdscm_bench.comparisons import configuration_pairs, kendall_tau_b, ranking_agreement
from sdscm_bench.metrics import r2_score


def rec(estimator, dataset, ate, sate=0.0, lm="lm", setting="s", failed=False, **kw):
    return {
        "estimator": estimator, "family": "fam", "variant": None, "lm": lm, "setting": setting,
        "dataset_fingerprint": dataset, "ate": ate, "sate": sate, "failed": failed, **kw,
    }  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=9))
def test_kendall_tau_b_is_scipys_ties_included(pairs):
    x, y = (np.asarray(v, dtype=float) for v in zip(*pairs, strict=True))
    expected = stats.kendalltau(x, y).statistic
    got = kendall_tau_b(x, y)
    assert (np.isnan(expected) and np.isnan(got)) or got == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_b_batches_over_leading_axes():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    assert kendall_tau_b(x, y) == pytest.approx(
        [stats.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    )


def _two_sources(n, noise_scale, seed=0):
    """Five estimators with RMSEs 0.1..0.5 in both sources; per-dataset errors drawn with that scale."""
    rng = np.random.default_rng(seed)
    out = []
    for lm in ("a", "b"):
        for k, est in enumerate("PQRST"):
            for d in range(n):
                out.append(rec(est, f"{lm}{d}", ate=rng.normal(0.0, 0.1 * (k + 1) * noise_scale), lm=lm))
    return out


def test_tau_ci_is_narrow_and_above_zero_when_sources_clearly_agree():
    (a,) = ranking_agreement(_two_sources(200, 1.0))
    assert a.tau == pytest.approx(1.0)
    assert a.tau_ci is not None and a.tau_ci[0] > 0.5 and a.tau_ci[1] == pytest.approx(1.0)
    assert (a.n_a, a.n_b, a.estimators) == (200, 200, 5)


def test_tau_ci_reaches_zero_when_a_few_datasets_cannot_tell_estimators_apart():
    """Same five RMSE levels, but three datasets each: the rankings are mostly noise."""
    recs = []
    rng = np.random.default_rng(7)
    for lm in ("a", "b"):
        for est in "PQRST":
            recs += [rec(est, f"{lm}{d}", ate=rng.normal(0.0, 1.0), lm=lm) for d in range(3)]
    (a,) = ranking_agreement(recs)
    assert a.tau_ci is not None and a.tau_ci[0] < 0.0 < a.tau_ci[1]


def test_agreement_uses_only_datasets_where_every_estimator_succeeded():
    recs = _two_sources(20, 1.0)
    recs.append(rec("P", "a-extra", ate=0.0, lm="a", failed=True))
    recs += [rec(e, "a-extra", ate=5.0, lm="a") for e in "QRST"]
    (a,) = ranking_agreement(recs)
    assert (a.n_a, a.n_b) == (20, 20)


def test_agreement_compares_only_the_estimators_each_source_ranks():
    """An estimator that failed on more than 5% of a source's datasets is not in its ranking: it leaves
    that source's comparison instead of shrinking it to the datasets where it happened to succeed."""
    recs = [r for r in _two_sources(20, 1.0) if not (r["estimator"] == "P" and r["lm"] == "a")]
    recs += [rec("P", f"a{d}", ate=0.0, lm="a", failed=d >= 2) for d in range(20)]
    (a,) = ranking_agreement(recs)
    assert (a.estimators, a.n_a, a.n_b) == (4, 20, 20)


def test_a_source_that_ranks_no_estimator_is_left_out_of_agreement():
    recs = [r for r in _two_sources(20, 1.0) if r["lm"] == "a"]
    recs += [rec(e, f"b{d}", ate=0.0, lm="b", failed=d % 2 == 0) for e in "PQRST" for d in range(20)]
    assert ranking_agreement(recs) == []


def test_configuration_pairs_verdicts_and_values():
    rng = np.random.default_rng(0)
    sate = rng.normal(0.0, 1.0, 60)
    recs = []
    for d in range(60):
        ds = f"d{d}"
        recs.append(rec("ours", ds, ate=sate[d] + rng.normal(0, 0.1), sate=sate[d]))
        recs.append(rec("paper_ours", ds, ate=sate[d] + rng.normal(0, 0.5), sate=sate[d]))
        recs.append(rec("same", ds, ate=sate[d] + rng.normal(0, 0.3), sate=sate[d]))
        recs.append(rec("paper_same", ds, ate=sate[d] + rng.normal(0, 0.3), sate=sate[d]))
        recs.append(rec("better", ds, ate=sate[d] + rng.normal(0, 0.5), sate=sate[d]))
        recs.append(rec("paper_better", ds, ate=sate[d] + rng.normal(0, 0.1), sate=sate[d]))
    recs.append(rec("paper_lonely", "d0", ate=0.0))  # no counterpart: no pair
    recs.append(rec("ours", "extra", ate=0.0, failed=True))
    recs.append(rec("paper_ours", "extra", ate=0.0))
    pairs = {p.ours: p for p in configuration_pairs(recs)}
    assert set(pairs) == {"ours", "same", "better"}
    assert pairs["ours"].verdict == "ours better" and pairs["better"].verdict == "paper's better"
    assert pairs["same"].verdict == "tie"
    p = pairs["ours"]
    assert p.n == 60 and (p.failures_paper, p.failures_ours) == (0, 1)
    errs = {e: np.asarray([r["ate"] - r["sate"] for r in recs if r["estimator"] == e and r["dataset_fingerprint"] != "extra"]) for e in ("ours", "paper_ours")}  # fmt: skip
    assert p.rmse_ours == pytest.approx(np.sqrt(np.mean(errs["ours"] ** 2)))
    assert p.rmse_paper == pytest.approx(np.sqrt(np.mean(errs["paper_ours"] ** 2)))
    assert p.diff_ci[0] < p.rmse_paper - p.rmse_ours < p.diff_ci[1]
    ate = np.asarray(
        [r["ate"] for r in recs if r["estimator"] == "ours" and r["dataset_fingerprint"] != "extra"]
    )
    assert p.r2_ours == pytest.approx(r2_score(sate, ate))


def test_front_page_section_lists_each_pair_with_its_verdict():
    from sdscm_bench.leaderboard import render_configuration_pairs

    recs = [rec("x", f"d{d}", ate=0.1 * (d % 3), sate=0.0) for d in range(9)]
    recs += [rec("paper_x", f"d{d}", ate=0.1 * (d % 3), sate=0.0) for d in range(9)]
    lines = "\n".join(render_configuration_pairs(recs)).splitlines()
    assert lines[0] == "## The paper's estimation settings beside ours"
    (row,) = [line for line in lines if line.startswith("| `paper_x` vs `x`")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "9" and cells[7] == "tie" and cells[-1] == "0 / 0"
    assert render_configuration_pairs([r for r in recs if r["estimator"] == "x"]) == []
