"""Dataset-level interventions: do(X=v) on any non-exogenous variable, and randomised (RCT) assignment.

The RCT assignment is checked against README's documented stream (``default_rng([seed, 10_000 + i])``,
re-derived in ``tests/reference_sdscm.py``), and for independence of everything the unit would
otherwise have chosen; do() against the same unit's observational values (shared noise).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_sdscm import descendants, rct_assignment
from scipy.stats import chi2_contingency, chisquare

from sdscm_bench.cli import main
from sdscm_bench.errors import InterventionError
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import load_lm
from sdscm_bench.paths import spec_dir
from sdscm_bench.spec import load_family


@pytest.fixture(scope="module")
def lm():
    return load_lm("tiny-random")


@pytest.fixture(scope="module")
def family():
    return load_family(spec_dir() / "agriculture.yaml")


def test_rct_randomises_treatment_and_keeps_shared_noise(lm, family):
    treat = family.treatment.variable
    n, seed = 400, 4
    base = generate_dataset(family, lm, GenerationSettings(n, seed))
    rct = generate_dataset(family, lm, GenerationSettings(n, seed, randomized=(treat,)))
    assert rct.meta["randomized"] == [treat]
    # Each unit's arm is README's draw from its own stream, whatever the LM and the parents say.
    np.testing.assert_array_equal(rct.table[treat], rct_assignment(family, treat, seed, n))
    assert chisquare(np.bincount(rct.table[treat], minlength=2)).pvalue > 1e-3  # uniform
    # Independent of every pre-treatment variable and of the arm the unit would have chosen.
    upstream = [v for v in family.order() if v != treat and v not in family.descendants(treat)]
    for other in [base.table[treat], *(rct.table[v] for v in upstream)]:
        p = chi2_contingency(pd.crosstab(rct.table[treat], other).to_numpy()).pvalue
        assert p > 1e-3, (other.name, p)
    assert (rct.table["t"] != base.table["t"]).any()  # the randomisation overrode some units' choice
    for v in upstream:  # same unit noise: upstream values are the observational ones
        assert (rct.table[v] == base.table[v]).all()
    same = rct.table["t"] == base.table["t"]
    assert same.any()
    for column in base.table.columns:  # where the draw matches the observational arm, nothing changes
        if column not in ("propensity",):
            np.testing.assert_array_equal(rct.table.loc[same, column], base.table.loc[same, column], column)


def test_do_sets_a_mediator_for_every_unit_in_every_world(lm, family):
    mediator = "fertilizer use"
    value = family.by_name[mediator].candidates[1]
    n, seed = 80, 2
    base = generate_dataset(family, lm, GenerationSettings(n, seed))
    ds = generate_dataset(family, lm, GenerationSettings(n, seed, interventions=((mediator, value),)))
    treat = family.treatment
    assert mediator in family.descendants(treat.variable)  # so each do(T) world has its own column
    for world in ("", f"|do({treat.variable}={treat.control})", f"|do({treat.variable}={treat.treated})"):
        assert (ds.table[mediator + world] == 1).all(), world
    np.testing.assert_allclose(ds.table["ite"], ds.table["y1"] - ds.table["y0"])
    # Shared noise: variables the mediator cannot reach keep their observational values, ...
    unaffected = [v for v in family.order() if v != mediator and v not in descendants(family, mediator)]
    for v in unaffected:
        np.testing.assert_array_equal(ds.table[v], base.table[v], v)
    # ... and a unit whose observational mediator already was the forced value is unchanged.
    already = (base.table[mediator] == 1).to_numpy()
    assert 0 < already.sum() < n
    for v in family.order():
        np.testing.assert_array_equal(ds.table[v][already], base.table[v][already], v)
    # The outcome reads the forced text: some unit that had the other value changes its outcome scores.
    logp = [c for c in ds.table.columns if c.startswith(f"logp:{family.outcome.variable}=") and "|" not in c]
    changed = ~np.isclose(ds.table[logp], base.table[logp]).all(axis=1)
    assert changed[~already].any() and not changed[already].any()


def test_an_intervention_and_a_randomisation_of_one_variable_are_refused(lm, family):
    """The same variable under --do and --rct at once is ambiguous: refused, naming the variable."""
    settings = GenerationSettings(5, 0, interventions=(("subsidy", "accepted"),), randomized=("subsidy",))
    with pytest.raises(InterventionError, match="'subsidy' is intervened on twice"):
        generate_dataset(family, lm, settings)


@pytest.mark.parametrize(
    ("interventions", "message"),
    [
        ((("region", "north"),), "exogenous"),
        ((("no such variable", "x"),), "unknown variable"),
        ((("subsidy", "maybe"),), "not a candidate"),
    ],
)
def test_bad_interventions_are_named(lm, family, interventions, message):
    with pytest.raises(InterventionError, match=message) as info:
        generate_dataset(family, lm, GenerationSettings(5, 0, interventions=interventions))
    assert "agriculture.yaml" in str(info.value)


def generated(out: str) -> tuple[pd.DataFrame, dict]:
    """The table and metadata of the one dataset whose cache path the CLI printed."""
    (path,) = re.findall(r"-> (\S+)$", out, flags=re.M)
    manifest = json.loads((Path(path) / "manifest.json").read_text())
    return pd.read_parquet(Path(path) / "data.parquet"), manifest["meta"]


def test_cli_do_and_rct(tmp_path, capsys, family):
    args = [
        "generate",
        "agriculture",
        "--lm",
        "tiny-random",
        "--units",
        "10",
        "--quiet",
        "--cache-dir",
        str(tmp_path),
    ]
    assert main([*args, "--rct", "subsidy"]) == 0
    table, meta = generated(capsys.readouterr().out)
    assert meta["randomized"] == ["subsidy"]
    np.testing.assert_array_equal(table["subsidy"], rct_assignment(family, "subsidy", meta["seed"], 10))
    assert (table["propensity"] == 0.5).all()

    assert main([*args, "--do", "fertilizer use=heavy"]) == 0
    table, meta = generated(capsys.readouterr().out)
    assert meta["interventions"] == [["fertilizer use", "heavy"]]
    heavy = family.index_of("fertilizer use", "heavy")
    assert (table[[c for c in table.columns if c.split("|")[0] == "fertilizer use"]] == heavy).all().all()

    assert main([*args, "--do", "region=north"]) == 2
    assert "exogenous" in capsys.readouterr().err
    assert main([*args, "--do", "no equals sign"]) == 2
    assert "write VARIABLE=VALUE" in capsys.readouterr().err


# --- what `propensity` means under interventions --------------------------------------------------


def test_propensity_is_the_true_assignment_probability(lm):
    """RCT: 1 / #candidates for every unit; do(T=v): 1.0 or 0.0; observational data keep the softmax."""
    toy = load_family(spec_dir() / "confounder.yaml")
    treat = toy.treatment
    settings = GenerationSettings(60, 2)
    base = generate_dataset(toy, lm, settings)
    rct = generate_dataset(toy, lm, GenerationSettings(60, 2, randomized=(treat.variable,)))
    assert len(toy.by_name[treat.variable].candidates) == 2
    assert (rct.table["propensity"] == 0.5).all()
    assert rct.meta["propensity_definition"] == "randomised assignment probability"
    # Each unit's arm is its documented RCT draw (both arms occur; the LM alone picks one arm for nearly all).
    assigned = rct_assignment(toy, treat.variable, 2, 60)
    np.testing.assert_array_equal(rct.table["t"], assigned == toy.index_of(treat.variable, treat.treated))
    assert 0 < rct.table["t"].mean() < 1
    for value, expected in ((treat.treated, 1.0), (treat.control, 0.0)):
        do = generate_dataset(toy, lm, GenerationSettings(60, 2, interventions=((treat.variable, value),)))
        assert (do.table["propensity"] == expected).all()
        assert (do.table["t"] == expected).all()
        assert do.meta["propensity_definition"] == "do(T=...) indicator"
    # Observational: the softmax of the treatment's scores, unchanged.
    scores = base.table[[f"logp:{treat.variable}={k}" for k in range(2)]].to_numpy()
    scores = scores / toy.temperature_of(treat.variable)  # the treatment's own temperature (spec)
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    treated = toy.index_of(treat.variable, treat.treated)
    np.testing.assert_allclose(base.table["propensity"], z[:, treated] / z.sum(axis=1), rtol=0, atol=1e-12)
    assert base.meta["propensity_definition"] == "observational softmax P(T=treated | parents)"


def test_propensity_under_an_intervention_on_a_parent_is_observational_in_that_world(lm, family):
    """do() on another variable: the propensity is the softmax given the treatment's parents as set there."""
    treat = family.treatment.variable
    parent = next(p for p in family.by_name[treat].parents if not family.by_name[p].exogenous)
    value = family.by_name[parent].candidates[0]
    ds = generate_dataset(family, lm, GenerationSettings(60, 2, interventions=((parent, value),)))
    assert ds.meta["propensity_definition"] == "observational softmax P(T=treated | parents)"
    n = len(family.by_name[treat].candidates)
    scores = ds.table[[f"logp:{treat}={k}" for k in range(n)]].to_numpy()
    scores = scores / family.temperature_of(treat)  # the treatment's own temperature (spec)
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    treated = family.index_of(treat, family.treatment.treated)
    np.testing.assert_allclose(ds.table["propensity"], z[:, treated] / z.sum(axis=1), rtol=0, atol=1e-12)
    assert ((ds.table["propensity"] > 0) & (ds.table["propensity"] < 1)).any()
