"""Phrasing sensitivity (``sdscm-bench sensitivity``): phrasing draws, variance decomposition, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sdscm_bench.cli import main
from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.errors import SdscmError
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel
from sdscm_bench.sampler import phrasing_choice
from sdscm_bench.sensitivity import (
    dataset_summary,
    decompose,
    phrasing_draws,
    varied_variables,
)
from sdscm_bench.spec import Family, load_family

# Words the tiny random LM was trained on; several phrasings per variable except `season`.
MULTI_SPEC = """\
name: wordy
separator: " "
variables:
  - name: grade
    exogenous: true
    candidates: ["low", "high"]
    phrasings: ["Levels are {value}.", "The levels are {value} now.", "Grade is {value}."]
  - name: season
    exogenous: true
    candidates: ["summer", "winter"]
    phrasings: ["The season is {value}."]
  - name: therapy
    parents: [grade]
    candidates: ["started", "stopped"]
    phrasings: ["Treatment is {value}.", "The treatment is {value}."]
  - name: result
    parents: [grade, season, therapy]
    candidates: ["positive", "negative"]
    phrasings: ["The result is {value}.", "Result: {value}.", "The result is {value} for the woman."]
treatment: {variable: therapy, control: stopped, treated: started}
outcome: {variable: result, definition: score, candidate: positive}
settings:
  all covariates: [grade, season]
"""


@pytest.fixture
def multi_spec(tmp_path: Path) -> Path:
    path = tmp_path / "wordy.yaml"
    path.write_text(MULTI_SPEC)
    return path


@pytest.fixture
def single_spec(tmp_path: Path) -> Path:
    """The same family with one phrasing per variable: nothing to vary."""
    text = MULTI_SPEC.replace(
        '["Levels are {value}.", "The levels are {value} now.", "Grade is {value}."]',
        '["Levels are {value}."]',
    )
    text = text.replace('["Treatment is {value}.", "The treatment is {value}."]', '["Treatment is {value}."]')
    text = text.replace(
        '["The result is {value}.", "Result: {value}.", "The result is {value} for the woman."]',
        '["The result is {value}."]',
    )
    path = tmp_path / "plain.yaml"
    path.write_text(text)
    assert all(len(v.phrasings) == 1 for v in load_family(path).variables)
    return path


@pytest.fixture
def family(multi_spec: Path) -> Family:
    return load_family(multi_spec)


# ---------------------------------------------------------------- phrasing draws


def test_draws_hold_one_phrasing_each_and_differ(family: Family) -> None:
    varied = varied_variables(family)
    assert varied == ["grade", "therapy", "result"]  # season has a single phrasing
    draws = phrasing_draws(family, 6, varied)
    assert [d.index for d in draws] == list(range(6))
    labels = [d.label(varied) for d in draws]
    assert len(set(labels)) == 6
    assert len({d.family.fingerprint() for d in draws}) == 6
    assert family.fingerprint() not in {d.family.fingerprint() for d in draws}
    seen: set[tuple[int, ...]] = set()
    for d in draws:
        # Draw p is phrasing_choice of its source seed, and every seed skipped before it was a duplicate.
        assert d.choice == phrasing_choice(family, d.source_seed)
        prev = draws[d.index - 1].source_seed if d.index else -1
        for skipped in range(prev + 1, d.source_seed):
            assert tuple(phrasing_choice(family, skipped)[n] for n in varied) in seen
        seen.add(tuple(d.choice[n] for n in varied))
        for var in d.family.variables:
            original = family.by_name[var.name]
            assert var.phrasings == (original.phrasings[d.choice[var.name]],)
            assert (var.candidates, var.parents, var.exogenous) == (
                original.candidates,
                original.parents,
                original.exogenous,
            )
        assert d.family.order() == family.order() and d.family.settings == family.settings
    assert draws[0].source_seed == 0


def test_variable_option_varies_only_those(family: Family) -> None:
    varied = varied_variables(family, ("therapy",))
    assert varied == ["therapy"]
    draws = phrasing_draws(family, 2, varied)  # therapy has exactly two phrasings
    assert {d.choice["therapy"] for d in draws} == {0, 1}
    for d in draws:
        assert d.choice["grade"] == 0 and d.choice["result"] == 0
    with pytest.raises(SdscmError, match="only 2 distinct phrasing"):
        phrasing_draws(family, 3, varied)
    with pytest.raises(SdscmError, match="not a variable"):
        varied_variables(family, ("ghost",))
    with pytest.raises(SdscmError, match="nothing to vary"):
        varied_variables(family, ("season",))


def test_single_phrasing_family_has_nothing_to_vary(single_spec: Path) -> None:
    with pytest.raises(SdscmError, match="single phrasing, so there is nothing to vary"):
        varied_variables(load_family(single_spec))


def test_single_phrasing_draw_reproduces_the_original_dataset(
    family: Family, tiny_lm: LanguageModel, torch_single_thread: None
) -> None:
    """With every variable varied, (draw from seed s, noise seed s) is the family's own dataset s."""
    draws = phrasing_draws(family, 3, varied_variables(family))
    for d in draws:
        settings = GenerationSettings(15, seed=d.source_seed)
        ours = generate_dataset(d.family, tiny_lm, settings).table
        theirs = generate_dataset(family, tiny_lm, settings).table
        pd.testing.assert_frame_equal(ours, theirs)
    # ...and another phrasing with the same noise gives other scores.
    a = generate_dataset(draws[0].family, tiny_lm, GenerationSettings(15, seed=7)).table
    b = generate_dataset(draws[1].family, tiny_lm, GenerationSettings(15, seed=7)).table
    assert not np.allclose(a["ite"], b["ite"])


# ---------------------------------------------------------------- per-dataset summary


def test_dataset_summary_on_a_crafted_table(family: Family) -> None:
    table = pd.DataFrame({"t": [1, 0, 1, 1, -1, 0], "ite": [0.0, 2.0, -1.0, 0.0, 99.0, 4.0], "y": [0.0] * 6})
    s = dataset_summary(SDSCMDataset(table=table, family=family))
    ite = np.array([0.0, 2.0, -1.0, 0.0, 4.0])  # the t = -1 unit is not a control/treated unit
    assert s["n_units"] == 5
    assert s["sate"] == pytest.approx(1.0)
    assert s["sd_ite"] == pytest.approx(ite.std(ddof=1))
    assert s["share_nonzero"] == pytest.approx(3 / 5)
    assert s["treated_share"] == pytest.approx(3 / 5)
    assert s["ite_q50"] == pytest.approx(0.0)
    assert s["ite_q05"] == pytest.approx(np.quantile(ite, 0.05))
    assert s["ite_q95"] == pytest.approx(np.quantile(ite, 0.95))


# ---------------------------------------------------------------- decomposition


def test_identical_within_phrasing_gives_zero_within_variance() -> None:
    x = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [4.0, 4.0, 4.0]])
    d = decompose(x)
    assert d["within_var"] == 0 and d["between_var"] == pytest.approx(np.var([1, 2, 4], ddof=1))
    assert math.isinf(d["f"]) and d["anova_p"] == 0
    assert d["icc"] == 1 and d["sigma2_seed"] == 0
    assert d["kruskal_p"] < 0.1


def test_identical_across_phrasings_gives_zero_between_variance() -> None:
    x = np.tile([0.5, -1.0, 3.0], (4, 1))  # every phrasing draw: the same SATE per seed
    d = decompose(x)
    assert d["between_var"] == 0 and d["within_var"] > 0
    assert d["f"] == 0 and d["anova_p"] == pytest.approx(1.0)
    assert d["icc"] == 0 and d["sigma2_phrasing"] == 0
    assert d["icc_ci"][0] == 0
    assert d["kruskal_p"] == pytest.approx(1.0)
    # The seeds are shared, so blocking on them explains everything: the seed effect is exact.
    assert d["blocked"]["residual_ms"] == 0 and math.isnan(d["blocked"]["f"])  # 0 / 0
    assert d["blocked"]["seed_p"] == 0


def test_decomposition_by_hand() -> None:
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    d = decompose(x)
    assert d["between_var"] == pytest.approx(4.5)  # var(2, 5)
    assert d["within_var"] == pytest.approx(1.0)
    assert d["ratio"] == pytest.approx(4.5)
    assert d["f"] == pytest.approx(13.5) and d["df"] == [1, 4]
    assert d["anova_p"] == pytest.approx(stats.f.sf(13.5, 1, 4))
    assert d["sigma2_phrasing"] == pytest.approx((13.5 - 1.0) / 3)
    assert d["icc"] == pytest.approx((12.5 / 3) / (12.5 / 3 + 1))
    assert d["blocked"]["df"] == [1, 2] and d["blocked"]["residual_ms"] == 0  # rows differ by a constant
    assert math.isinf(d["blocked"]["f"]) and d["blocked"]["p"] == 0


def test_decomposition_matches_scipy_on_random_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3)) + rng.normal(size=(6, 1))
    d = decompose(x)
    ref = stats.f_oneway(*x)
    assert d["f"] == pytest.approx(ref.statistic) and d["anova_p"] == pytest.approx(ref.pvalue)
    assert d["kruskal_p"] == pytest.approx(stats.kruskal(*x).pvalue)
    assert d["icc_ci"][0] <= d["icc"] <= d["icc_ci"][1]
    assert math.isnan(decompose(np.ones((3, 2)))["kruskal_p"])  # all tied: undefined, no warning
    with pytest.raises(ValueError, match="P >= 2 and S >= 2"):
        decompose(x[:, :1])


def test_icc_interval_covers_at_the_nominal_rate() -> None:
    """Simulated one-way random-effects data with ICC 0.5: the exact 95% interval covers ~95% of the time."""
    rng = np.random.default_rng(0)
    reps, covered = 400, 0
    for _ in range(reps):
        x = rng.normal(size=(6, 1)) + rng.normal(size=(6, 3))
        lo, hi = decompose(x)["icc_ci"]
        covered += lo <= 0.5 <= hi
    assert 0.90 <= covered / reps <= 0.99


# ---------------------------------------------------------------- CLI


def test_cli_writes_the_three_files_and_reuses_the_cache(
    multi_spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], torch_single_thread: None
) -> None:
    out = tmp_path / "report" / "phrasing_sensitivity"
    argv = ["sensitivity", str(multi_spec), "--lm", "tiny-random", "--phrasings", "3", "--seeds", "2",
            "--units", "12", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    md, png, js = (out.with_name(out.name + ext) for ext in (".md", ".png", ".json"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert doc["design"]["n_phrasings"] == 3 and doc["design"]["n_seeds"] == 2
    assert doc["design"]["noise_seeds"] == [0, 1]
    assert len(doc["datasets"]) == 6 and not any(r["cache_hit"] for r in doc["datasets"])
    assert {r["n_units"] for r in doc["datasets"]} == {12}
    assert len({d["spec_fingerprint"] for d in doc["draws"]}) == 3
    # The stored decomposition is the one of the stored per-dataset SATEs.
    sate = np.array([[r["sate"] for r in doc["datasets"] if r["draw"] == p] for p in range(3)])
    assert doc["decomposition"]["sate"]["between_var"] == pytest.approx(decompose(sate)["between_var"])
    assert doc["decomposition"]["sate"]["within_var"] == pytest.approx(decompose(sate)["within_var"])
    text = md.read_text()
    assert "## Variance decomposition" in text and f"]({png.name})" in text
    assert "sdscm-bench sensitivity" in text and "--phrasings 3" in text
    assert "- In sd units: the SATE's phrasing component sd" in text
    for d in doc["draws"]:
        assert f"`{d['label']}`" in text and f"`{d['label']}`" in printed
    for r in doc["datasets"]:
        assert f"{r['sate']:+.4g}" in printed
    # A rerun generates nothing.
    assert main(argv) == 0
    again = json.loads(js.read_text())
    assert all(r["cache_hit"] for r in again["datasets"])
    assert [r["sate"] for r in again["datasets"]] == [r["sate"] for r in doc["datasets"]]


@pytest.mark.parametrize(
    ("spec", "extra", "message"),
    [
        ("no-such-family", [], "unknown spec 'no-such-family'"),
        ("SINGLE", [], "nothing to vary"),
        ("MULTI", ["--variable", "ghost"], "--variable 'ghost': not a variable of wordy"),
        ("MULTI", ["--phrasings", "19"], "only 18 distinct phrasing combinations"),
        ("MULTI", ["--seeds", "1"], "at least 2"),
    ],
)
def test_cli_errors(
    spec: str,
    extra: list[str],
    message: str,
    multi_spec: Path,
    single_spec: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = {"SINGLE": str(single_spec), "MULTI": str(multi_spec)}.get(spec, spec)
    out = tmp_path / "ps"
    argv = ["sensitivity", path, "--lm", "tiny-random", "--out", str(out), "--quiet", *extra]
    assert main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert not list(tmp_path.glob("ps*"))
