"""The sampler's prefix tree runs exactly the tokens README's "Speed" paragraph says, no more, no fewer.

README: units are processed as a tree of distinct histories; each distinct (variable, context) is scored
once per pass, a context's new tokens run once with every candidate as a branch of the same row, the
key/value cache of the parent row's shared prefix is reused, and each do(T=t) world continues from the
treatment's T=t branch and recomputes only T's descendants.

The expected counts are derived here from the tokenizer directly (the reference's decode-based token
boundary, ``tests/reference_sdscm.py``) and from the reference's own values and contexts, never from the
engine: for one scored context, the tokens run are the distinct token prefixes of its candidates'
sequences, less the ones already cached in the parent row. The cache cannot serve the last context
token: the first candidate token's log-probability is read from the logits at that position, which a
cache of keys and values does not hold, so that position is run again.
"""

from __future__ import annotations

import copy

import pytest
from reference_sdscm import ReferenceSDSCM, build_reference_lm, candidate_token_ids

from sdscm_bench.lm import LanguageModel
from sdscm_bench.sampler import Sampler, SamplerConfig
from sdscm_bench.scoring import CandidateScorer
from sdscm_bench.spec import Family, parse_family

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Every variable reads every earlier variable, so a context names the unit's whole history: the tree's
# rows are exactly the distinct histories. No two candidates of a variable share a token that a third does
# not (two candidates, or three one-word weathers), so the branches of one context (the tokens all its
# candidates share, once, then each candidate's rest) are the distinct prefixes of their token sequences;
# Expected.parts checks this. Three weathers give three contexts of commute, the treatment, whose rows
# the next level continues.
TREE_SPEC = {
    "name": "tree",
    "separator": " ",
    "variables": [
        {"name": "weather", "candidates": ["sunny", "rainy", "snowy"], "phrasings": ["The weather is {value}."]},
        {"name": "commute", "parents": ["weather"], "candidates": ["takes the bus", "rides a bicycle"],
         "phrasings": ["Sam {value} to work."]},
        {"name": "arrival", "parents": ["weather", "commute"], "candidates": ["on time", "late"],
         "phrasings": ["Sam arrives {value}."]},
    ],
    "treatment": {"variable": "commute", "control": "takes the bus", "treated": "rides a bicycle"},
    "outcome": {"variable": "arrival", "definition": "category", "candidate": "on time"},
    "settings": {"all": ["weather"]},
}  # fmt: skip
# The same graph as one run-on sentence: no separator, no text after a value and none before the later
# values, so a child's context is exactly its parent row's text (only the last context token is rerun),
# and candidates that merge with the text before them ("bicyclelate").
RUN_ON_SPEC = copy.deepcopy(TREE_SPEC) | {"name": "run-on", "separator": ""}
RUN_ON_SPEC["variables"] = [
    {"name": "weather", "candidates": ["sunny", "rainy", "snowy"], "phrasings": ["The weather is {value}"]},
    {"name": "commute", "parents": ["weather"], "candidates": [", Sam takes the bus", " and Sam rides a bicycle"],
     "phrasings": ["{value}"]},
    {"name": "arrival", "parents": ["weather", "commute"], "candidates": [" on time", "late"],
     "phrasings": ["{value}"]},
]  # fmt: skip
RUN_ON_SPEC["treatment"] = {
    "variable": "commute", "control": ", Sam takes the bus", "treated": " and Sam rides a bicycle"
}  # fmt: skip
RUN_ON_SPEC["outcome"] = {"variable": "arrival", "definition": "category", "candidate": " on time"}
SPECS = {"sentences": TREE_SPEC, "run-on": RUN_ON_SPEC}
ORDER = ["weather", "commute", "arrival"]
TEMPERATURE = 8.0  # the reference model's scores differ by whole nats: a high temperature mixes the histories


@pytest.fixture(scope="module")
def ref_lm() -> LanguageModel:
    model, tokenizer = build_reference_lm()
    return LanguageModel(model, tokenizer, "reference-tiny", "reference-tiny-1234", "float32", "cpu")


@pytest.fixture(params=list(SPECS))
def family(request: pytest.FixtureRequest) -> Family:
    return parse_family(copy.deepcopy(SPECS[request.param]))


def distinct_prefixes(seqs: list[list[int]]) -> set[tuple[int, ...]]:
    return {tuple(s[:k]) for s in seqs for k in range(1, len(s) + 1)}


class Expected:
    """Tokens, forward passes and slots of a run, counted from the tokenizer and the reference."""

    def __init__(self, ref: ReferenceSDSCM, tokenizer: object) -> None:
        self.ref, self.tok = ref, tokenizer

    def sequence(self, var: str, history: dict[str, int], value: int) -> tuple[list[int], int]:
        """[start] + tokens of var's context and candidate ``value``, and where the candidate begins."""
        ctx = self.ref.context(var, history)
        return candidate_token_ids(self.tok, ctx, self.ref.vars[var].candidates[value])

    def parts(self, level: int, history: dict[str, int]) -> tuple[int, int, int]:
        """For ``ORDER[level]`` after ``history``: its branches' distinct prefixes, how many of them the
        parent row holds, and the index of the last context token (the first not served by the cache)."""
        var = ORDER[level]
        seqs = [self.sequence(var, history, c) for c in range(len(self.ref.vars[var].candidates))]
        branches = distinct_prefixes([s for s, _ in seqs])
        shared = len(set.intersection(*(distinct_prefixes([s]) for s, _ in seqs)))
        assert len(branches) == shared + sum(len(s) - shared for s, _ in seqs), "candidates branch later"
        last_context = min(first for _, first in seqs) - 1
        if level == 0:
            return len(branches), 0, last_context  # the first variable starts from an empty row
        prev = ORDER[level - 1]
        # The parent row: the previous variable's branch of this unit's value, after the same history.
        cached = distinct_prefixes([self.sequence(prev, history, history[prev])[0]])
        for s, _ in seqs:
            cached &= distinct_prefixes([s])  # reusable for every branch of the row
        return len(branches), len(cached), last_context

    def context_tokens(self, level: int, history: dict[str, int]) -> int:
        """New tokens run to score every candidate of ``ORDER[level]`` after ``history``."""
        branches, cached, last_context = self.parts(level, history)
        return branches - min(cached, last_context)

    def run(self, n_units: int) -> dict[str, int]:
        """Count every pass: factual level by level, then each do(T=t) world for the units whose T differs."""
        factual = [self.ref.unit(u)[0].values for u in range(n_units)]
        passes: list[list[int]] = []  # per forward pass, the tokens of each distinct context
        for level in range(len(ORDER)):
            histories = {tuple(v[name] for name in ORDER[:level]) for v in factual}
            passes.append([self.context_tokens(level, dict(zip(ORDER, h, strict=False))) for h in histories])
        treat = ORDER.index("commute")
        for t in self.ref.t_indices:
            weathers = {v["weather"] for v in factual if v["commute"] != t}
            if weathers:
                passes.append(
                    [self.context_tokens(treat + 1, {"weather": w, "commute": t}) for w in weathers]
                )
        return {
            "factual tokens": sum(sum(p) for p in passes[: len(ORDER)]),
            "tokens": sum(sum(p) for p in passes),
            "forwards": len(passes),
            "slots": sum(len(p) * max(p) for p in passes),
        }


@pytest.mark.parametrize(("n_units", "seed"), [(1, 0), (2, 5), (40, 3)])
def test_sampler_runs_exactly_the_distinct_prefix_tokens(
    ref_lm: LanguageModel, family: Family, n_units: int, seed: int
) -> None:
    ref = ReferenceSDSCM(family, ref_lm.model, ref_lm.tokenizer, seed, n_units, "sum", TEMPERATURE)
    want = Expected(ref, ref_lm.tokenizer).run(n_units)
    forwards = []

    class Counting(CandidateScorer):
        def extend(self, state, groups):  # type: ignore[no-untyped-def]
            forwards.append(len(groups))
            return super().extend(state, groups)

    done: list[tuple[int, int]] = []
    sampler = Sampler(
        family, Counting(ref_lm), SamplerConfig(n_units, seed, TEMPERATURE), lambda u, t: done.append((u, t))
    )
    sampler.run()
    assert sampler.tokens_computed == want["tokens"]
    assert sampler.slots_computed == want["slots"]
    assert len(forwards) == want["forwards"]
    # The factual pass's units are reported once, with the tokens run so far (before the do(T) worlds).
    assert done == [(n_units, want["factual tokens"])]
    # The values the counts were derived from are the engine's too.
    for u in range(n_units):
        factual = ref.unit(u)[0].values
        assert {v: int(sampler.factual.values[v][u]) for v in ORDER} == factual


def test_the_count_does_not_grow_with_units_once_every_history_is_seen(
    ref_lm: LanguageModel, family: Family
) -> None:
    """Each distinct context is scored once per pass: once every (weather, commute) history occurs, 100 and
    1000 units cost the same tokens."""
    counts = {}
    for n in (100, 1000):
        sampler = Sampler(family, CandidateScorer(ref_lm), SamplerConfig(n, 3, TEMPERATURE))
        sampler.run()
        histories = {
            (int(sampler.factual.values["weather"][u]), int(sampler.factual.values["commute"][u]))
            for u in range(n)
        }
        assert len(histories) == 6, n
        counts[n] = sampler.tokens_computed
    assert counts[100] == counts[1000]


def test_the_expected_counts_see_the_cache(ref_lm: LanguageModel) -> None:
    """Both specs exercise the cache: whole sentences reused, and (run-on) the rerun last context token."""
    seen = {}
    for name, spec in SPECS.items():
        family = parse_family(copy.deepcopy(spec))
        exp = Expected(
            ReferenceSDSCM(family, ref_lm.model, ref_lm.tokenizer, 0, 1, "sum", 1.0), ref_lm.tokenizer
        )
        histories = [{"weather": w, "commute": c} for w in (0, 1) for c in (0, 1)]
        seen[name] = [exp.parts(2, h) for h in histories]
    for branches, cached, last_context in seen["sentences"]:
        assert 10 < cached < last_context < branches  # the parent's sentence is reused, the context goes on
    for branches, cached, last_context in seen["run-on"]:
        assert 10 < last_context <= cached < branches  # the whole parent row would fit; one token reruns


@pytest.mark.parametrize("max_rows", [1, 2, 3])
def test_batches_are_split_only_as_needed(ref_lm: LanguageModel, family: Family, max_rows: int) -> None:
    """README: a batch is split when it would hold more than ``max_rows`` distinct contexts; the sub-batches
    are filled in turn (max_rows contexts each, the rest in the last), and the tokens run do not change."""
    n_units, seed = 40, 3
    ref = ReferenceSDSCM(family, ref_lm.model, ref_lm.tokenizer, seed, n_units, "sum", TEMPERATURE)
    want = Expected(ref, ref_lm.tokenizer).run(n_units)
    factual = [ref.unit(u)[0].values for u in range(n_units)]
    assert len({(v["weather"], v["commute"]) for v in factual}) >= 4  # contexts of arrival to split

    def split(contexts: list[object]) -> list[int]:
        """Sizes of the passes that score these distinct contexts, max_rows at a time."""
        n = len(dict.fromkeys(contexts))
        return [min(max_rows, n - k) for k in range(0, n, max_rows)]

    # Forward passes in order: weather (one context); commute (one context per weather), split into
    # sub-batches of weathers in order of first appearance among the units, each going on by itself to
    # arrival (one context per history), then to each do(T=t) world's arrival for its units whose T is not
    # t (one context per weather).
    weathers = list(dict.fromkeys(v["weather"] for v in factual))
    expected = [1]
    for k in range(0, len(weathers), max_rows):
        members = [v for v in factual if v["weather"] in weathers[k : k + max_rows]]
        expected += split([v["weather"] for v in members])
        expected += split([(v["weather"], v["commute"]) for v in members])
        for t in ref.t_indices:
            expected += split([v["weather"] for v in members if v["commute"] != t])
    forwards: list[int] = []

    class Counting(CandidateScorer):
        def extend(self, state, groups):  # type: ignore[no-untyped-def]
            forwards.append(len(groups))
            return super().extend(state, groups)

    config = SamplerConfig(n_units, seed, TEMPERATURE, max_rows)
    sampler = Sampler(family, Counting(ref_lm), config)
    sampler.run()
    assert forwards == expected
    assert sampler.tokens_computed == want["tokens"]
