"""The speed benchmark's honest baseline (issue 13): the naive reference with the paper code's context
key/value reuse scores exactly like the one without, on fewer tokens; the paper's phrasings load at run time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generation_speed import speed_family  # noqa: E402
from naive_reference import NaiveReference  # noqa: E402

from sdscm_bench.lm import load_lm  # noqa: E402
from sdscm_bench.paths import spec_dir  # noqa: E402
from sdscm_bench.spec import load_family  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_lm("tiny-random", "float32", "cpu")


@pytest.mark.parametrize("name", ["oncology", "agriculture"])
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_kv_reuse_gives_the_same_worlds_on_fewer_tokens(tiny, name: str, mode: str) -> None:
    family = load_family(spec_dir() / f"{name}.yaml")
    full = NaiveReference(family, tiny, seed=5, n_units=3, mode=mode)
    reuse = NaiveReference(family, tiny, seed=5, n_units=3, mode=mode, kv_reuse=True)
    for u in range(2):
        a, b = full.unit(u), reuse.unit(u)
        assert a["factual"][0] == b["factual"][0]
        for var, scores in a["factual"][1].items():
            np.testing.assert_allclose(b["factual"][1][var], scores, rtol=0, atol=1e-4)
        for world in a["worlds"]:
            assert a["worlds"][world][0] == b["worlds"][world][0]
    assert reuse.tokens < 0.7 * full.tokens  # each context once, not once per candidate


def test_paper_config_phrasings_replace_the_specs(tmp_path: Path) -> None:
    base = speed_family(None)
    entries = [
        {
            "possible_prefix_suffix_pairs": [[f"P{i}a ", "."], [f"P{i}b ", "!"]],
            "candidate_set": list(v.candidates),
        }
        for i, v in enumerate(base.variables)
    ]  # a synthetic config of the released format (no sentence of the paper's is stored here)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"setup_sequence_sample_space": entries}))
    family = speed_family(str(config))
    assert [v.name for v in family.variables] == [v.name for v in base.variables]
    assert family.variables[3].phrasings[1].render("x") == "P3b x!" and family.separator == ""
    assert family.treatment == base.treatment and family.outcome == base.outcome
    config.write_text(json.dumps({"setup_sequence_sample_space": entries[:-1]}))
    with pytest.raises(SystemExit, match="13 variables, the oncology spec has 14"):
        speed_family(str(config))
