"""The generation engine: exact batched scoring, agreement with the independent reference,
counterfactual consistency, determinism and the outcome definitions.

Everything runs on the tiny random GPT-2 (offline, ~1 ms a forward) except the slow tests on the
embedded SmolLM2. The engine is used through its public API (``CandidateScorer.score``,
``reference_score``, ``InPlaceTokenizer``, ``generate_dataset``); what it is compared with comes from
``tests/reference_sdscm.py``, which shares no code with it (see ``tests/test_reference.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from reference_sdscm import (
    ReferenceSDSCM,
    build_reference_lm,
    candidate_token_ids,
    start_token,
    table_mismatches,
)
from reference_sdscm import reference_score as plain_score

from sdscm_bench.cache import table_bytes
from sdscm_bench.dataset import SDSCMDataset, do_suffix, logp_column
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import TINY_CORPUS, LanguageModel, load_lm
from sdscm_bench.sampler import Sampler, SamplerConfig
from sdscm_bench.scoring import CandidateScorer, InPlaceTokenizer, KVState, Tokenized, reference_score
from sdscm_bench.spec import Family, parse_family

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SCORE_ATOL = 1e-4

# (context, candidates): boundary merges, different token lengths, many candidates.
SCORING_CASES: list[tuple[str, list[str]]] = [
    ("A ", ["25", "35"]),  # the context's trailing space merges into the candidate's first token
    ("Scores are", [" 25", " 35", " 45 and 55", " 75"]),  # 1 to 4 tokens
    ("The patient is a woman with a tumor of", [" grade 1", " grade 2", " grade 3", " moderate"]),
    ("Weather is ", ["sunny", "rainy", "cloudy", "sunny or rainy; the season is winter"]),
    ("The pati", ["ent", "ents", "o"]),  # the context ends inside a word
    ("", ["sunny", "rainy"]),  # empty context: the start token alone predicts the candidate
    (TINY_CORPUS * 3 + " Levels are", [" low", " moderate", " high"]),  # long context
    ("Treatment is", [" started", " stopped", " given", " withheld", " positive", " negative"]),
]


@pytest.fixture(scope="module")
def reference_lm() -> LanguageModel:
    """The reference's own tiny GPT-2 (wider weights: candidates' scores differ by whole nats)."""
    model, tokenizer = build_reference_lm()
    return LanguageModel(model, tokenizer, "reference-tiny", "reference-tiny-1234", "float32", "cpu")


@pytest.fixture(params=["tiny-random", "reference-tiny"])
def any_lm(
    request: pytest.FixtureRequest, tiny_lm: LanguageModel, reference_lm: LanguageModel
) -> LanguageModel:
    """Both tiny models: a BOS tokenizer with the suite's merges, and an EOS-only one with other merges."""
    return tiny_lm if request.param == "tiny-random" else reference_lm


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_batched_scores_equal_one_at_a_time(any_lm: LanguageModel, mode: str) -> None:
    """One scorer, reused across contexts (and asked twice), agrees with plain one-sequence computations:
    the engine's own ``reference_score`` and the independent reference's (decode-based token boundary)."""
    scorer = CandidateScorer(any_lm, mode=mode)
    for repeat in range(2):
        for context, candidates in SCORING_CASES:
            got = scorer.score(context, candidates)
            assert len(got) == len(candidates)
            ref = [reference_score(any_lm, context, c, mode) for c in candidates]
            own = [plain_score(any_lm.model, any_lm.tokenizer, context, c, mode) for c in candidates]
            diff_ref = np.max(np.abs(np.subtract(got, ref)))
            diff_own = np.max(np.abs(np.subtract(got, own)))
            assert diff_ref <= SCORE_ATOL, (repeat, context[-30:], candidates, got, ref)
            assert diff_own <= SCORE_ATOL, (repeat, context[-30:], candidates, got, own)


def test_score_order_and_subsets_do_not_matter(tiny_lm: LanguageModel) -> None:
    """A candidate's score does not depend on which other candidates share its batch."""
    scorer = CandidateScorer(tiny_lm)
    context, candidates = "Scores are", [" 25", " 35", " 45 and 55", " 75"]
    full = dict(zip(candidates, scorer.score(context, candidates), strict=True))
    for subset in ([" 75", " 25"], [" 45 and 55"], candidates[::-1]):
        for cand, value in zip(subset, scorer.score(context, subset), strict=True):
            assert abs(value - full[cand]) <= SCORE_ATOL, (subset, cand)


def test_mean_is_sum_over_token_count(reference_lm: LanguageModel) -> None:
    """mean = sum / (number of candidate tokens), the count taken from the reference's tokenisation."""
    context, candidates = "Scores are", [" 25", " 45 and 55", "ed", " rides a bicycle"]
    sums = CandidateScorer(reference_lm, "sum").score(context, candidates)
    means = CandidateScorer(reference_lm, "mean").score(context, candidates)
    counts = []
    for cand, s, m in zip(candidates, sums, means, strict=True):
        ids, first = candidate_token_ids(reference_lm.tokenizer, context, cand)
        counts.append(len(ids) - first)
        assert abs(m - s / counts[-1]) <= SCORE_ATOL, (cand, s, m, counts[-1])
    assert len(set(counts)) > 1  # candidates of different lengths: a wrong count would show


def common_prefix(*seqs: list[int]) -> int:
    n = 0
    while all(len(q) > n for q in seqs) and len({q[n] for q in seqs}) == 1:
        n += 1
    return n


def test_scorer_runs_each_context_once_and_continues_cached_rows(reference_lm: LanguageModel) -> None:
    """README "Speed": a context's tokens run once per forward pass with every candidate as a branch, and a
    later context continues a cached row, running only what is new; the stats count exactly that."""
    scorer = CandidateScorer(reference_lm)
    tok = reference_lm.tokenizer
    groups = [("Sam arrives", [" on time", " late"]), ("The weather is", [" sunny", " rainy", " snowy"])]
    targets = [[scorer.tokenize(ctx, c) for c in cands] for ctx, cands in groups]
    state, scores = scorer.extend(KVState.empty(1), [(0, t) for t in targets])
    rows: list[list[int]] = []
    row_tokens = []
    for ctx, cands in groups:
        ids = [candidate_token_ids(tok, ctx, c)[0] for c in cands]
        shared = common_prefix(*ids)
        row_tokens.append(shared + sum(len(i) - shared for i in ids))
        rows.extend(ids)
    assert state.stats == {"tokens": sum(row_tokens), "forwards": 1, "slots": 2 * max(row_tokens)}
    assert [list(t) for t in state.tokens] == rows and len(state) == 5
    for (ctx, cands), got in zip(groups, scores, strict=True):
        want = [plain_score(reference_lm.model, tok, ctx, c) for c in cands]
        np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)

    # Continue logical row 1 ("Sam arrives late"); rows 0 and 2 are other branches of the same cache.
    for parent, ctx in [(1, "Sam arrives late. The weather is"), (2, "The weather is sunny. Sam arrives")]:
        cands = [" sunny", " rainy"] if parent == 1 else [" on time", " late"]
        new_targets = [scorer.tokenize(ctx, c) for c in cands]
        after, new_scores = scorer.extend(state, [(parent, new_targets)])
        ids = [candidate_token_ids(tok, ctx, c) for c in cands]
        keep = min(min(common_prefix(rows[parent], i) for i, _ in ids), min(first for _, first in ids) - 1)
        shared = common_prefix(*(i for i, _ in ids))
        assert keep > 3  # the parent's cached tokens are reused
        assert after.stats["tokens"] - state.stats["tokens"] == shared - keep + sum(
            len(i) - shared for i, _ in ids
        )
        assert after.stats["forwards"] == 2
        want = [plain_score(reference_lm.model, tok, ctx, c) for c in cands]
        np.testing.assert_allclose(new_scores[0], want, rtol=0, atol=SCORE_ATOL)


class CountingScorer(CandidateScorer):
    """Records the tokens and slots each forward pass added to the stats."""

    def __init__(self, lm: LanguageModel, mode: str = "sum") -> None:
        super().__init__(lm, mode)
        self.tokens = 0
        self.slots = 0

    def extend(
        self, state: KVState, groups: Sequence[tuple[int, Sequence[Tokenized]]]
    ) -> tuple[KVState, list[list[float]]]:
        new, scores = super().extend(state, groups)
        self.tokens += new.stats["tokens"] - state.stats["tokens"]
        self.slots += new.stats["slots"] - state.stats["slots"]
        return new, scores


@pytest.mark.parametrize("max_rows", [2, 64])
def test_sampler_reports_tokens_and_finished_units(
    tiny_lm: LanguageModel, families: dict[str, Family], max_rows: int
) -> None:
    """tokens_computed/slots_computed sum every forward pass; on_units_done reports each finished batch once."""
    family = families["agriculture"]
    scorer = CountingScorer(tiny_lm)
    done: list[tuple[int, int]] = []
    sampler = Sampler(
        family, scorer, SamplerConfig(30, seed=3, max_rows=max_rows), lambda u, t: done.append((u, t))
    )
    sampler.run()
    assert sampler.tokens_computed == scorer.tokens > 0
    assert sampler.slots_computed == scorer.slots >= scorer.tokens
    assert sum(units for units, _ in done) == 30
    reported = [tokens for _, tokens in done]
    assert reported == sorted(reported) and 0 < reported[-1] <= sampler.tokens_computed
    assert (len(done) > 1) == (max_rows == 2)  # small batches finish one by one
    # A SamplerConfig's defaults (global temperature 1, no interventions) are README's defaults.
    ref = ReferenceSDSCM(family, tiny_lm.model, tiny_lm.tokenizer, 3, 30, "sum", 1.0)
    for u in range(30):
        factual, worlds = ref.unit(u)
        assert {v: int(sampler.factual.values[v][u]) for v in family.order()} == factual.values, u
        for t, world in worlds.items():
            for v in family.descendants(family.treatment.variable):
                assert sampler.counterfactual[t].values[v][u] == world.values[v], (u, t, v)


def test_unknown_scoring_mode_is_rejected(tiny_lm: LanguageModel) -> None:
    with pytest.raises(ValueError, match="scoring mode"):
        CandidateScorer(tiny_lm, mode="max")


@pytest.mark.parametrize(("context", "candidates"), SCORING_CASES)
def test_in_place_tokenisation(tiny_lm: LanguageModel, context: str, candidates: list[str]) -> None:
    tok = InPlaceTokenizer(tiny_lm)
    hf = tiny_lm.tokenizer
    for cand in candidates:
        t = tok(context, cand)
        assert list(t.ids) == [
            start_token(hf),
            *hf(context + cand, add_special_tokens=False)["input_ids"],
        ]
        assert (list(t.ids), t.cand_start) == candidate_token_ids(hf, context, cand)
        assert 1 <= t.cand_start < len(t.ids)
        # Tokens before cand_start lie inside the context; the token at cand_start reaches the candidate.
        before = hf.decode(list(t.ids[1 : t.cand_start]))
        through = hf.decode(list(t.ids[1 : t.cand_start + 1]))
        assert context.startswith(before), (context, cand, before)
        assert len(through) > len(context), (context, cand, through)
        assert hf.decode(list(t.ids[1:])) == context + cand
        assert tok(context, cand) == t  # memoised or not, the same answer


def test_trailing_space_merges_into_candidate(tiny_lm: LanguageModel) -> None:
    """'A ' + '25' is tokenised as 'A', ' 25': the candidate's token carries the context's space."""
    t = InPlaceTokenizer(tiny_lm)("A ", "25")
    pieces = tiny_lm.tokenizer.convert_ids_to_tokens(list(t.ids))
    assert pieces[1:] == ["A", "Ġ25"]
    assert t.cand_start == 2


# --- generation ------------------------------------------------------------------------------


def value_columns(ds: SDSCMDataset) -> list[str]:
    """Factual values of every variable plus every do-world value column."""
    names = [v.name for v in ds.family.variables]
    return [c for c in ds.table.columns if c.split("|do(")[0] in names]


def float_columns(ds: SDSCMDataset) -> list[str]:
    return [c for c in ds.table.columns if c.startswith("logp:")] + ["propensity", "y", "y0", "y1", "ite"]


def assert_tables_match(a: SDSCMDataset, b: SDSCMDataset, atol: float = SCORE_ATOL) -> None:
    assert list(a.table.columns) == list(b.table.columns)
    for col in [*value_columns(a), "t"]:
        np.testing.assert_array_equal(a.table[col].to_numpy(), b.table[col].to_numpy(), err_msg=col)
    for col in float_columns(a):
        np.testing.assert_allclose(a.table[col], b.table[col], rtol=0, atol=atol, err_msg=col)


@pytest.mark.parametrize(
    ("name", "n_units", "mode"),
    [
        ("confounder", 10, "sum"),
        ("confounder", 10, "mean"),
        ("oncology", 5, "sum"),
        ("agriculture", 10, "sum"),
    ],
)
def test_engine_matches_reference(
    tiny_lm: LanguageModel, families: dict[str, Family], name: str, n_units: int, mode: str
) -> None:
    """Same seed: every column equal to the independent reference (values exactly, scores within 1e-4)."""
    ds = generate_dataset(families[name], tiny_lm, GenerationSettings(n_units, seed=7, scoring=mode))
    assert_matches_reference(ds, tiny_lm)


def assert_matches_reference(ds: SDSCMDataset, lm: LanguageModel) -> None:
    """The dataset's table is what ``tests/reference_sdscm.py`` derives from its metadata and the LM."""
    meta = ds.meta
    ref = ReferenceSDSCM(
        ds.family, lm.model, lm.tokenizer, meta["seed"], len(ds), meta["scoring"], meta["temperature"],
        tuple(tuple(pair) for pair in meta.get("interventions", ())), tuple(meta.get("randomized", ())),
    )  # fmt: skip
    assert meta["phrasings"] == ref.phrasing_index
    bad = table_mismatches(ds.table, ref.table(), SCORE_ATOL)
    assert not bad, "\n".join(bad)


# A spec built to stress prefix reuse: no separator and an empty phrasing prefix, so a child's
# context is exactly its parent's text and the candidate follows the cached tokens directly;
# candidates that merge with the preceding text, of 1-4 tokens, and with leading spaces; and a
# non-descendant of the treatment sampled after it.
BOUNDARY_SPEC = {
    "name": "boundary",
    "separator": "",
    "variables": [
        {"name": "level", "candidates": ["low", "moderate", "high"], "phrasings": ["Levels are {value}"]},
        {"name": "score", "parents": ["level"], "candidates": [" 25", " 35 and 45", "5", "s"],
         "phrasings": ["{value}"]},
        {"name": "grade", "parents": ["level", "score"], "candidates": [" grade 1", " grade 2", "3"],
         "phrasings": ["{value}", ", {value}."]},
        {"name": "extra", "parents": ["level"], "candidates": [" sunny", " rainy or cloudy"],
         "phrasings": [" Weather is{value}"]},
        {"name": "result", "parents": ["score", "grade", "extra"], "candidates": ["positive", "negative", "s"],
         "phrasings": ["{value}", " Result: {value}"]},
    ],
    "treatment": {"variable": "grade", "control": " grade 1", "treated": "3"},
    "outcome": {"variable": "result", "definition": "score", "candidate": "positive"},
    "settings": {"all": ["level", "score", "extra"]},
}  # fmt: skip


@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_engine_matches_reference_on_boundary_spec(tiny_lm: LanguageModel, seed: int, mode: str) -> None:
    family = parse_family(copy.deepcopy(BOUNDARY_SPEC))
    assert family.order().index("extra") > family.order().index("grade")
    assert "extra" not in family.descendants("grade")
    settings = GenerationSettings(24, seed=seed, scoring=mode)
    ds = generate_dataset(family, tiny_lm, settings)
    assert_matches_reference(ds, tiny_lm)
    check_counterfactual_consistency(ds)
    assert_tables_match(ds, generate_dataset(family, tiny_lm, settings, max_rows=1))


def check_counterfactual_consistency(ds: SDSCMDataset) -> None:
    """Under do(T = factual t) every unit is its factual self; y, y0, y1 and ite agree."""
    family, tab = ds.family, ds.table
    treat, outc = family.treatment.variable, family.outcome.variable
    cands = family.by_name[treat].candidates
    control = cands.index(family.treatment.control)
    treated = cands.index(family.treatment.treated)
    descendants = family.descendants(treat)
    n_out = len(family.by_name[outc].candidates)
    factual_t = tab[treat].to_numpy()
    t = tab["t"].to_numpy()
    np.testing.assert_array_equal(t, np.where(factual_t == treated, 1, np.where(factual_t == control, 0, -1)))

    world_cols = {c for c in tab.columns if "|do(" in c and not c.startswith("logp:")}
    expected = {v + do_suffix(treat, cands[i]) for v in descendants for i in (control, treated)}
    assert world_cols == expected, "do-world value columns must be exactly the treatment's descendants"
    for v in family.order():
        if v not in descendants:
            assert not any(c.startswith(v + "|do(") for c in tab.columns), v  # held: no separate column

    for i in (control, treated):
        suffix = do_suffix(treat, cands[i])
        same = factual_t == i
        assert same.sum() + (factual_t != i).sum() == len(tab)
        for v in descendants:
            np.testing.assert_array_equal(tab[v + suffix][same], tab[v][same], err_msg=f"{v}{suffix}")
        for k in range(n_out):
            np.testing.assert_array_equal(
                tab[logp_column(outc, k, suffix)][same],
                tab[logp_column(outc, k)][same],
                err_msg=f"{k}{suffix}",
            )
    np.testing.assert_array_equal(tab["ite"], tab["y1"] - tab["y0"])
    np.testing.assert_array_equal(tab["y"][t == 1], tab["y1"][t == 1])
    np.testing.assert_array_equal(tab["y"][t == 0], tab["y0"][t == 0])
    assert np.isfinite(tab[float_columns(ds)].to_numpy()).all()


@pytest.mark.parametrize(("name", "n_units"), [("oncology", 40), ("agriculture", 60), ("confounder", 60)])
def test_counterfactual_consistency(
    tiny_lm: LanguageModel, families: dict[str, Family], name: str, n_units: int
) -> None:
    ds = generate_dataset(families[name], tiny_lm, GenerationSettings(n_units, seed=11))
    assert len(ds) == n_units
    check_counterfactual_consistency(ds)


@pytest.mark.slow
def test_counterfactual_consistency_smollm2(smollm2_lm: LanguageModel, families: dict[str, Family]) -> None:
    ds = generate_dataset(families["confounder"], smollm2_lm, GenerationSettings(20, seed=3))
    check_counterfactual_consistency(ds)


@pytest.mark.slow
def test_engine_matches_reference_smollm2(smollm2_lm: LanguageModel, families: dict[str, Family]) -> None:
    """The real tokenizer and model: values identical and scores within 1e-4 of the independent reference."""
    for name, mode in [("collider", "sum"), ("confounder", "mean")]:
        ds = generate_dataset(families[name], smollm2_lm, GenerationSettings(6, seed=5, scoring=mode))
        assert_matches_reference(ds, smollm2_lm)


@pytest.mark.parametrize("name", ["agriculture", "oncology"])
def test_same_seed_gives_byte_identical_tables(
    tiny_lm: LanguageModel, families: dict[str, Family], name: str
) -> None:
    family = families[name]
    settings = GenerationSettings(16, seed=4)
    first = table_bytes(generate_dataset(family, tiny_lm, settings).table)
    fresh_lm = load_lm("tiny-random")  # an independently loaded copy of the same model
    second = table_bytes(generate_dataset(family, fresh_lm, settings).table)
    assert first == second
    other = table_bytes(generate_dataset(family, tiny_lm, GenerationSettings(16, seed=5)).table)
    assert other != first


@pytest.mark.parametrize("max_rows", [1, 4])
@pytest.mark.parametrize(("name", "n_units"), [("oncology", 12), ("agriculture", 40)])
def test_batch_splitting_does_not_change_results(
    tiny_lm: LanguageModel, families: dict[str, Family], name: str, n_units: int, max_rows: int
) -> None:
    settings = GenerationSettings(n_units, seed=2)
    default = generate_dataset(families[name], tiny_lm, settings)
    split = generate_dataset(families[name], tiny_lm, settings, max_rows=max_rows)
    assert_tables_match(default, split)


def with_outcome(family: Family, definition: str, candidate: str) -> Family:
    """The family re-parsed from its spec file with another outcome definition."""
    data = copy.deepcopy(yaml.safe_load(Path(family.path).read_text()))
    data["outcome"] = {"variable": family.outcome.variable, "definition": definition, "candidate": candidate}
    return parse_family(data, family.path)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("name", "candidate"), [("agriculture", "good"), ("agriculture", "poor"), ("oncology", None)]
)
def test_outcome_definitions(
    tiny_lm: LanguageModel, families: dict[str, Family], name: str, candidate: str | None
) -> None:
    """score, probability and category read y off the same sampled worlds, consistently with logp columns."""
    base = families[name]
    outc, treat = base.outcome.variable, base.treatment.variable
    candidate = candidate or base.by_name[outc].candidates[1]
    k = base.index_of(outc, candidate)
    n_out = len(base.by_name[outc].candidates)
    settings = GenerationSettings(24, seed=9)
    tables: dict[str, pd.DataFrame] = {}
    for definition in ("score", "probability", "category"):
        ds = generate_dataset(with_outcome(base, definition, candidate), tiny_lm, settings)
        tab = tables[definition] = ds.table
        for y_col, suffix in [
            ("y", ""),
            ("y0", do_suffix(treat, base.treatment.control)),
            ("y1", do_suffix(treat, base.treatment.treated)),
        ]:
            logp = tab[[logp_column(outc, j, suffix) for j in range(n_out)]].to_numpy()
            if definition == "score":
                expected = logp[:, k]
            elif definition == "probability":
                expected = softmax(logp)[:, k]
            else:
                values = tab[outc + suffix] if suffix else tab[outc]
                expected = (values.to_numpy() == k).astype(float)
            np.testing.assert_allclose(
                tab[y_col], expected, rtol=0, atol=1e-9, err_msg=f"{definition} {y_col}"
            )
        np.testing.assert_allclose(tab["ite"], tab["y1"] - tab["y0"], rtol=0, atol=1e-12)
        if definition == "probability":
            assert ((tab["y"] >= 0) & (tab["y"] <= 1)).all()
        if definition == "category":
            assert set(np.unique(tab[["y", "y0", "y1"]].to_numpy())) <= {0.0, 1.0}
        t_logp = tab[[logp_column(treat, j) for j in range(len(base.by_name[treat].candidates))]].to_numpy()
        t_logp = t_logp / base.temperature_of(treat)  # the treatment's own temperature (spec)
        treated = base.index_of(treat, base.treatment.treated)
        np.testing.assert_allclose(tab["propensity"], softmax(t_logp)[:, treated], rtol=0, atol=1e-9)
    # The definition changes only how y is read off, never what is sampled.
    rest = [c for c in tables["score"].columns if c not in ("y", "y0", "y1", "ite")]
    for definition in ("probability", "category"):
        pd.testing.assert_frame_equal(tables[definition][rest], tables["score"][rest])
