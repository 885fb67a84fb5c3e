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
