"""Dataset diagnostics and quality thresholds, on crafted tables whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.diagnostics import (
    DEFAULT_THRESHOLDS,
    DIAGNOSTICS_VERSION,
    dataset_diagnostics,
    diagnose,
    ipw_ess_share,
    quality_problems,
    record_fields,
    thresholds_for,
)
from sdscm_bench.spec import parse_family

SPEC = {
    "name": "crafted",
    "variables": [
        {"name": "grade", "exogenous": True, "candidates": ["low", "high"], "phrasings": ["Levels are {value}."]},
        {"name": "therapy", "parents": ["grade"], "candidates": ["stopped", "started"], "phrasings": ["T {value}."]},
        {"name": "result", "parents": ["grade", "therapy"], "candidates": ["negative", "positive"],
         "phrasings": ["R {value}."]},
    ],
    "treatment": {"variable": "therapy", "control": "stopped", "treated": "started"},
    "outcome": {"variable": "result", "definition": "category", "candidate": "positive"},
    "settings": {"all covariates": ["grade"]},
}  # fmt: skip
FAMILY = parse_family(SPEC)


def crafted(t, y0, y1, propensity, grade=None) -> SDSCMDataset:
    t, y0, y1 = (np.asarray(a) for a in (t, y0, y1))
    grade = np.zeros(t.size, dtype=np.int64) if grade is None else np.asarray(grade)
    y = np.where(t == 1, y1, y0)
    table = pd.DataFrame(
        {"grade": grade, "therapy": t, "result": y.astype(np.int64), "t": t, "propensity": propensity,
         "y": y.astype(float), "y0": y0.astype(float), "y1": y1.astype(float), "ite": (y1 - y0).astype(float)}
    )  # fmt: skip
    return SDSCMDataset(table=table, family=FAMILY, meta={"name": "crafted/seed0"})


def healthy(n=400, seed=0) -> SDSCMDataset:
    rng = np.random.default_rng(seed)
    grade = rng.integers(0, 2, n)
    p = np.where(grade == 1, 0.7, 0.3)
    t = (rng.random(n) < p).astype(int)
    y0 = (rng.random(n) < 0.3 + 0.3 * grade).astype(int)
    y1 = np.maximum(y0, (rng.random(n) < 0.5).astype(int))
    return crafted(t, y0, y1, p, grade)


def test_healthy_data_passes_the_default_thresholds():
    d = diagnose(healthy())
    assert 0.3 < d["treated_share"] < 0.7 and d["overlap_share"] == 1.0
    assert quality_problems(d, DEFAULT_THRESHOLDS) == []


def test_97_percent_treated_is_flagged_with_its_number():
    n = 200
    t = np.ones(n, dtype=int)
    t[:6] = 0  # 97% treated
    p = np.full(n, 0.97)
    d = diagnose(crafted(t, np.zeros(n, int), np.arange(n) % 2, p))
    assert d["treated_share"] == pytest.approx(0.97) and d["overlap_share"] == 0.0
    problems = quality_problems(d, DEFAULT_THRESHOLDS)
    assert any(m.startswith("treated share 0.97 above max_treated_share 0.9") for m in problems), problems
    assert any("propensity in [0.05, 0.95] 0 below min_overlap_share 0.8" in m for m in problems), problems


def test_near_constant_outcome_and_effects_are_flagged():
    n = 300
    rng = np.random.default_rng(1)
    t = rng.integers(0, 2, n)
    y0 = np.zeros(n, int)
    y1 = np.zeros(n, int)
    y1[:3] = 1  # 1% of units have an effect; the outcome is 0 for ~99.5%
    d = diagnose(crafted(t, y0, y1, np.full(n, 0.5)))
    assert d["nonzero_ite_share"] == pytest.approx(0.01) and d["max_outcome_share"] > 0.98
    problems = " | ".join(quality_problems(d, DEFAULT_THRESHOLDS))
    assert "share of units with a nonzero ITE 0.01 below min_nonzero_ite_share 0.05" in problems
    assert "near-constant outcome" in problems
    assert "variable 'grade': share of its most common value 1 above max_value_share 0.99" in problems


def test_sampled_outcome_value_counts_only_when_y_is_that_value():
    """A score outcome is read off log-likelihoods: its near-constant sampled value is shown, not flagged."""
    n = 200
    rng = np.random.default_rng(2)
    grade, t = rng.integers(0, 2, n), rng.integers(0, 2, n)
    ds = crafted(t, np.zeros(n, int), np.zeros(n, int), np.full(n, 0.5), grade)  # sampled result: all 0
    assert "variable 'result'" in " | ".join(quality_problems(diagnose(ds), DEFAULT_THRESHOLDS))
    score = parse_family(
        {**SPEC, "outcome": {"variable": "result", "definition": "score", "candidate": "positive"}}
    )
    ds.family = score
    ds.table["y"] = ds.table["y0"] = ds.table["y1"] = rng.normal(size=n)  # a continuous score
    ds.table["ite"] = 0.0
    d = diagnose(ds)
    assert d["value_shares"]["result"]["negative"] == 1.0 and "result" not in d["max_value_share"]
    assert "variable 'result'" not in " | ".join(quality_problems(d, DEFAULT_THRESHOLDS))


def test_confounding_strength_is_the_bias_of_the_difference_in_means():
    # Units with grade 1 are treated and have y = 1 whatever the treatment: DIM = 1, SATE = 0.
    grade = np.array([1] * 50 + [0] * 50)
    t = grade.copy()
    d = diagnose(crafted(t, grade, grade, np.where(grade == 1, 0.9, 0.1), grade))
    assert d["sate"] == 0.0 and d["dim"] == pytest.approx(1.0) and d["dim_bias"] == pytest.approx(1.0)
    assert d["dim_bias_over_sd_y"] == pytest.approx(2.0)  # sd(y) = 0.5


def test_ipw_effective_sample_size():
    assert ipw_ess_share(np.array([1, 0, 1, 0]), np.full(4, 0.5)) == pytest.approx(1.0)
    # One treated unit with propensity 0.01 carries weight 100 against 1.0101 for the others.
    ess = ipw_ess_share(np.array([1, 0, 0, 0]), np.array([0.01, 0.01, 0.01, 0.01]))
    w = np.array([100.0, 1 / 0.99, 1 / 0.99, 1 / 0.99])
    assert ess == pytest.approx(w.sum() ** 2 / (w**2).sum() / 4)
    assert ipw_ess_share(np.array([1, 0]), np.array([0.0, 0.5])) is None  # do(T=control) for a treated unit


def test_thresholds_come_from_the_spec_and_can_be_switched_off():
    family = parse_family({**SPEC, "quality": {"max_treated_share": 0.99, "max_value_share": None}})
    th = thresholds_for(family)
    assert th["max_treated_share"] == 0.99 and th["max_value_share"] is None
    assert th["min_overlap_share"] == DEFAULT_THRESHOLDS["min_overlap_share"]


def test_record_fields_and_caching_in_metadata():
    ds = healthy()
    diag = dataset_diagnostics(ds)
    assert ds.meta["diagnostics"] is diag and dataset_diagnostics(ds) is diag
    fields = record_fields(diag)
    assert set(fields) == {
        "data_treated_share", "data_overlap_share", "data_ess_share", "data_sd_ite", "data_nonzero_ite_share",
        "data_max_outcome_share", "data_dim_bias",
    }  # fmt: skip
    assert fields["data_treated_share"] == diag["treated_share"]


def test_stored_diagnostics_of_older_code_are_recomputed():
    """A cached dataset keeps its diagnostics in its metadata; another DIAGNOSTICS_VERSION is redone."""
    ds = healthy()
    ds.meta["diagnostics"] = {"treated_share": 0.99}  # written by older code (no version)
    assert dataset_diagnostics(ds)["treated_share"] == pytest.approx(diagnose(healthy())["treated_share"])
    assert ds.meta["diagnostics"]["version"] == DIAGNOSTICS_VERSION
    current = dict(ds.meta["diagnostics"], treated_share=0.5)
    ds.meta["diagnostics"] = current
    assert dataset_diagnostics(ds) is current  # current version: read, not recomputed
