"""Dataset-level interventions: do(X=v) on any non-exogenous variable, and randomised (RCT) assignment."""

from __future__ import annotations

import numpy as np
import pytest

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
    base = generate_dataset(family, lm, GenerationSettings(300, 4))
    rct = generate_dataset(family, lm, GenerationSettings(300, 4, randomized=(treat,)))
    t = rct.table["t"].to_numpy()
    assert 0.4 < t.mean() < 0.6  # uniform over two candidates, whatever the LM prefers
    upstream = [v for v in family.order() if v != treat and v not in family.descendants(treat)]
    for v in upstream:  # same unit noise: upstream values are the observational ones
        assert (rct.table[v] == base.table[v]).all()
    same = rct.table["t"] == base.table["t"]
    assert same.any()
    for v in family.order():  # where the draw matches the observational treatment, nothing changes
        assert (rct.table.loc[same, v] == base.table.loc[same, v]).all()
    # The randomisation is independent of every pre-treatment variable's value (it ignores them).
    assert rct.meta["randomized"] == [treat]


def test_do_sets_a_mediator_for_every_unit_in_every_world(lm, family):
    mediator = "fertilizer use"
    value = family.by_name[mediator].candidates[1]
    ds = generate_dataset(family, lm, GenerationSettings(80, 2, interventions=((mediator, value),)))
    treat = family.treatment
    for world in ("", f"|do({treat.variable}={treat.control})", f"|do({treat.variable}={treat.treated})"):
        column = mediator + world
        if column in ds.table:
            assert (ds.table[column] == 1).all()
    np.testing.assert_allclose(ds.table["ite"], ds.table["y1"] - ds.table["y0"])


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


def test_cli_do_and_rct(tmp_path, capsys):
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
    assert main([*args, "--do", "region=north"]) == 2
    assert "exogenous" in capsys.readouterr().err
    assert main([*args, "--do", "no equals sign"]) == 2


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
    assert 0 < rct.table["t"].mean() < 1  # both arms drawn (the LM alone would pick one arm for every unit)
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
