"""The engine against an independent reference (``tests/reference_sdscm.py``) built from README's rules.

The reference imports nothing from the engine's sampler, scoring, generate, families or lm modules:
its random streams, phrasing draw, tokenisation, forward passes, temperatures, interventions and
counterfactual worlds are re-derived from "How the data is made". This module runs the engine
(``generate_dataset``) on a tiny GPT-2 that the reference builds from a transformers config, wraps it
for the engine, and asserts value-for-value equality of every column of the dataset table, plus
distributional checks (chi-square tests of sampled frequencies against the softmax probabilities the
reference computes). ``test_known_engine_bugs_are_caught`` breaks the engine in each way issue 14
listed (by monkeypatching, never on disk) and checks that the corresponding check fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from reference_sdscm import (
    ReferenceSDSCM,
    build_reference_lm,
    phrasing_indices,
    softmax,
    table_mismatches,
)
from scipy.stats import chi2_contingency, chisquare

import sdscm_bench.generate as generate_module
import sdscm_bench.sampler as sampler_module
from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel
from sdscm_bench.paths import spec_dir
from sdscm_bench.spec import Family, load_family, parse_family

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SCORE_ATOL = 1e-4


@pytest.fixture(scope="module")
def ref_model() -> tuple[object, object]:
    """The reference's own tiny GPT-2 and tokenizer (plain transformers objects)."""
    return build_reference_lm()


@pytest.fixture(scope="module")
def engine_lm(ref_model: tuple[object, object]) -> LanguageModel:
    """The same model and tokenizer handed to the engine."""
    model, tokenizer = ref_model
    return LanguageModel(model, tokenizer, "reference-tiny", "reference-tiny-1234", "float32", "cpu")


def shipped(name: str, variant: str | None = None) -> Family:
    return load_family(spec_dir() / f"{name}.yaml").variant(variant)


@dataclass(frozen=True)
class Case:
    """One dataset to generate with both the engine and the reference."""

    family: str
    n_units: int
    seed: int
    scoring: str | None = None
    temperature: float = 1.0
    variant: str | None = None
    interventions: tuple[tuple[str, str], ...] = ()
    randomized: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        parts = [
            self.family,
            self.variant or "",
            f"s{self.seed}",
            self.scoring or "spec",
            f"T{self.temperature}",
        ]
        parts += [f"do({v}={x})" for v, x in self.interventions] + [f"rct({v})" for v in self.randomized]
        return "-".join(p.replace(" ", "_") for p in parts if p)


def generate_both(
    case: Case, lm: LanguageModel, max_rows: int | None = None
) -> tuple[SDSCMDataset, ReferenceSDSCM]:
    family = shipped(case.family, case.variant)
    settings = GenerationSettings(
        case.n_units, case.seed, case.scoring, case.temperature, case.interventions, case.randomized
    )
    ds = generate_dataset(family, lm, settings, max_rows=max_rows)
    # README: an explicit scoring mode wins, else the spec's (or its variant's), else sum.
    scoring = case.scoring or family.scoring or "sum"
    ref = ReferenceSDSCM(
        family, lm.model, lm.tokenizer, case.seed, case.n_units, scoring, case.temperature,
        case.interventions, case.randomized,
    )  # fmt: skip
    return ds, ref


def check_case(case: Case, lm: LanguageModel, max_rows: int | None = None) -> None:
    ds, ref = generate_both(case, lm, max_rows)
    assert ds.meta["phrasings"] == ref.phrasing_index, "phrasing choice"
    bad = table_mismatches(ds.table, ref.table(), SCORE_ATOL)
    assert not bad, "\n".join(bad)


CASES = [
    Case("confounder", 24, 3, "sum"),
    Case("confounder", 24, 4, "mean", temperature=0.5),  # global temperature for variables without their own
    Case("confounder", 24, 11),  # the spec's own scoring (mean)
    Case("employment", 16, 5, "mean", variant="sharp treatment"),  # the variant's temperature 0.5
    Case("employment", 16, 6, "sum", temperature=1.7),
    Case("agriculture", 16, 7, "mean", temperature=2.5),
    Case("collider", 24, 8, "sum", temperature=0.8),
    Case("oncology", 4, 9, "sum"),  # 14 variables, long contexts, multi-token candidates
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_engine_equals_reference(engine_lm: LanguageModel, case: Case) -> None:
    """Every column of the table, value for value: three worlds, scores, t, propensity and y."""
    check_case(case, engine_lm)


INTERVENTION_CASES = [
    Case("agriculture", 20, 2, "mean", interventions=(("fertilizer use", "heavy"),)),  # a mediator
    Case("agriculture", 20, 3, "mean", randomized=("subsidy",)),  # RCT on the treatment
    Case("confounder", 24, 5, "mean", temperature=2.0, randomized=("commute",)),
    Case("employment", 16, 4, "mean", interventions=(("training", "completed"),)),  # do() on the treatment
    Case("employment", 16, 8, "sum", interventions=(("motivation", "high"),), randomized=("skills",)),
]


@pytest.mark.parametrize("case", INTERVENTION_CASES, ids=lambda c: c.id)
def test_interventions_equal_reference(engine_lm: LanguageModel, case: Case) -> None:
    """--do and --rct (its own random stream), held in every world, children reading the forced text."""
    check_case(case, engine_lm)


def test_engine_equals_reference_in_single_context_batches(engine_lm: LanguageModel) -> None:
    """The batch-splitting path (one distinct context per forward pass) gives the same table."""
    check_case(Case("employment", 12, 13, "mean", temperature=1.3), engine_lm, max_rows=1)


def test_engine_equals_reference_on_the_suites_tiny_model(tiny_lm: LanguageModel) -> None:
    """The model the other tests use (a BOS token, other merges), called by the reference as plain transformers."""
    check_case(Case("confounder", 20, 2, "mean", temperature=0.7), tiny_lm)


def phrasing_seeds(family: Family) -> tuple[int, int]:
    """Two seeds whose documented phrasing draws differ for at least one variable."""
    first = phrasing_indices(family, 0)
    return 0, next(s for s in range(1, 100) if phrasing_indices(family, s) != first)


def check_phrasings_follow_the_seed(lm: LanguageModel) -> None:
    family = shipped("confounder")
    for seed in phrasing_seeds(family):
        check_case(Case("confounder", 12, seed, "mean"), lm)


def test_phrasings_follow_the_dataset_seed(engine_lm: LanguageModel) -> None:
    """Two seeds with different documented phrasing draws: each dataset uses its own seed's phrasings."""
    family = shipped("confounder")
    a, b = phrasing_seeds(family)
    assert phrasing_indices(family, a) != phrasing_indices(family, b)
    check_phrasings_follow_the_seed(engine_lm)


def test_first_units_do_not_depend_on_n(engine_lm: LanguageModel) -> None:
    """README: row u of each noise stream is unit u's, so a smaller dataset is a prefix of a larger one."""
    family = shipped("employment")
    small = generate_dataset(family, engine_lm, GenerationSettings(7, 21, "mean", randomized=("skills",)))
    large = generate_dataset(family, engine_lm, GenerationSettings(30, 21, "mean", randomized=("skills",)))
    head = large.table.iloc[:7].reset_index(drop=True)
    pd.testing.assert_frame_equal(small.table, head, check_exact=False, rtol=0, atol=SCORE_ATOL)


# --- distributions --------------------------------------------------------------------------------

# Two exogenous roots with four candidates each, a treatment with one parent, an outcome with two.
DIST_SPEC = {
    "name": "distribution",
    "separator": " ",
    "variables": [
        {"name": "weather", "exogenous": True, "temperature": 3.0, "candidates": ["sunny", "rainy", "snowy", "cloudy"],
         "phrasings": ["The weather is {value}."]},
        {"name": "day", "exogenous": True, "candidates": ["Monday", "Friday", "Sunday", "Tuesday"],
         "phrasings": ["Today is {value}."]},
        {"name": "commute", "parents": ["weather"], "temperature": 2.0,
         "candidates": ["takes the bus", "rides a bicycle", "walks"], "phrasings": ["Sam {value} to work."]},
        {"name": "arrival", "parents": ["commute", "day"], "candidates": ["on time", "late"],
         "phrasings": ["Sam arrives {value}."]},
    ],
    "treatment": {"variable": "commute", "control": "takes the bus", "treated": "rides a bicycle"},
    "outcome": {"variable": "arrival", "definition": "category", "candidate": "on time"},
    "settings": {"all": ["weather", "day"]},
}  # fmt: skip
DIST_UNITS = 3000
DIST_SEED = 20261128
DIST_TEMPERATURE = 1.5  # global: day and arrival
P_OK = 1e-3  # a correct engine passes at this level (fixed seed: the p-values are fixed numbers)
P_WRONG = 1e-9  # the same counts against a wrong distribution must be rejected this clearly


@pytest.fixture(scope="module")
def dist_family() -> Family:
    return parse_family(copy.deepcopy(DIST_SPEC))


def dist_dataset(family: Family, lm: LanguageModel, **kwargs: object) -> SDSCMDataset:
    settings = GenerationSettings(DIST_UNITS, DIST_SEED, "mean", DIST_TEMPERATURE, **kwargs)
    return generate_dataset(family, lm, settings)


def conditional_chisquare(
    ref: ReferenceSDSCM, tab: pd.DataFrame, var: str, parents: list[str], scale: float
) -> float:
    """Chi-square p-value of var's counts within each parent configuration against softmax(score * scale).

    Cells are (configuration, candidate); expected counts are the configuration's count times the
    candidate's probability, and each configuration costs one degree of freedom (its count is observed).
    """
    values = tab[var].to_numpy()
    strata = tab[parents].to_numpy() if parents else np.zeros((len(tab), 0), dtype=int)
    n_cands = len(ref.vars[var].candidates)
    observed, expected = [], []
    configs = sorted({tuple(int(x) for x in s) for s in strata})
    for config in configs:
        members = (strata == config).all(axis=1)
        probs = softmax(ref.scores_of(var, dict(zip(parents, config, strict=True))) * scale)
        observed.extend(np.bincount(values[members], minlength=n_cands))
        expected.extend(members.sum() * probs)
    return float(chisquare(observed, expected, ddof=len(configs) - 1).pvalue)


def check_distributions(family: Family, lm: LanguageModel) -> None:
    tab = dist_dataset(family, lm).table
    ref = ReferenceSDSCM(family, lm.model, lm.tokenizer, DIST_SEED, 1, "mean", DIST_TEMPERATURE)
    for var in ("weather", "day", "commute", "arrival"):
        parents = ref.parents[var]
        temp = ref.temperature[var]
        p_right = conditional_chisquare(ref, tab, var, parents, 1 / temp)
        assert p_right > P_OK, f"{var}: frequencies against softmax(score / {temp}): p = {p_right:.3g}"
        # Power: the same counts against softmax(score * T) are rejected (T != 1 for every variable here).
        p_wrong = conditional_chisquare(ref, tab, var, parents, temp)
        assert p_wrong < P_WRONG, f"{var}: the test cannot tell score / T from score * T (p = {p_wrong:.3g})"
    # The two roots are independent (separate noise streams).
    p_roots = chi2_contingency(pd.crosstab(tab["weather"], tab["day"]).to_numpy()).pvalue
    assert p_roots > P_OK, f"weather and day are dependent (p = {p_roots:.3g})"


def test_sampled_frequencies_follow_the_softmax(engine_lm: LanguageModel, dist_family: Family) -> None:
    """Each variable's frequencies given its parents match softmax(score / T) (chi-square, 3000 units)."""
    check_distributions(dist_family, engine_lm)


def check_rct_distribution(family: Family, lm: LanguageModel) -> None:
    obs = dist_dataset(family, lm).table
    rct = dist_dataset(family, lm, randomized=("commute",)).table
    counts = np.bincount(rct["commute"], minlength=3)
    p_uniform = chisquare(counts).pvalue
    assert p_uniform > P_OK, (
        f"RCT assignment not uniform over the 3 candidates: {counts} (p = {p_uniform:.3g})"
    )
    # Independent of what the unit would have chosen (its own noise) and of the treatment's parent.
    for other in (obs["commute"], rct["weather"]):
        p = chi2_contingency(pd.crosstab(rct["commute"], other).to_numpy()).pvalue
        assert p > P_OK, f"RCT assignment depends on {other.name} (p = {p:.3g})"


def test_rct_assignment_is_uniform_and_independent(engine_lm: LanguageModel, dist_family: Family) -> None:
    """--rct: uniform over the candidates, independent of the observational choice and of the parents."""
    check_rct_distribution(dist_family, engine_lm)


# --- the checks catch the engine bugs issue 14 listed -------------------------------------------------


def same_stream_for_every_variable(family: Family, n_units: int, seed: int) -> dict[str, np.ndarray]:
    rng_seed = [seed, 1]
    return {
        v.name: np.random.default_rng(rng_seed).gumbel(size=(n_units, len(v.candidates)))
        for v in family.variables
    }


def phrasing_ignoring_seed(family: Family, seed: int) -> dict[str, int]:
    rng = np.random.default_rng([0, 0])
    return {v.name: int(rng.integers(len(v.phrasings))) for v in family.variables}


def break_engine(monkeypatch: pytest.MonkeyPatch, bug: str) -> None:
    """Install one of the bugs of issue 14 in the engine for this test only."""
    if bug == "same noise stream":
        monkeypatch.setattr(sampler_module, "gumbel_noise", same_stream_for_every_variable)
    elif bug == "phrasing ignores seed":
        monkeypatch.setattr(sampler_module, "phrasing_choice", phrasing_ignoring_seed)
        monkeypatch.setattr(generate_module, "phrasing_choice", phrasing_ignoring_seed)
    elif bug == "rct reuses own noise":
        original = sampler_module.intervention_values

        def own_noise(family: Family, config: sampler_module.SamplerConfig) -> dict[str, np.ndarray]:
            out = original(family, config)
            noise = sampler_module.gumbel_noise(family, config.n_units, config.seed)
            for var in config.randomized:
                out[var] = np.argmax(noise[var], axis=1)  # uniform, but the unit's own noise
            return out

        monkeypatch.setattr(sampler_module, "intervention_values", own_noise)
    elif bug == "multiply by temperature":
        init = sampler_module.Sampler.__init__

        def inverted(self: sampler_module.Sampler, *args: object, **kwargs: object) -> None:
            init(self, *args, **kwargs)
            self.temperature = {v: 1 / t for v, t in self.temperature.items()}  # score / (1/T) = score * T

        monkeypatch.setattr(sampler_module.Sampler, "__init__", inverted)
    else:
        raise ValueError(bug)


BUG_CHECKS: dict[str, list[Callable[[LanguageModel, Family], None]]] = {
    "same noise stream": [
        lambda lm, _: check_case(CASES[0], lm),
        lambda lm, dist: check_distributions(dist, lm),
    ],
    "phrasing ignores seed": [lambda lm, _: check_phrasings_follow_the_seed(lm)],
    "rct reuses own noise": [
        lambda lm, _: check_case(INTERVENTION_CASES[2], lm),
        lambda lm, dist: check_rct_distribution(dist, lm),
    ],
    "multiply by temperature": [
        lambda lm, _: check_case(CASES[1], lm),
        lambda lm, _: check_case(CASES[3], lm),
        lambda lm, dist: check_distributions(dist, lm),
    ],
}


@pytest.mark.parametrize("bug", list(BUG_CHECKS))
def test_known_engine_bugs_are_caught(
    engine_lm: LanguageModel, dist_family: Family, monkeypatch: pytest.MonkeyPatch, bug: str
) -> None:
    """Each check above passes on the engine (the other tests) and fails once the bug is installed."""
    break_engine(monkeypatch, bug)
    for check in BUG_CHECKS[bug]:
        with pytest.raises(AssertionError):
            check(engine_lm, dist_family)
