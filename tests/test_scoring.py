"""Exact behaviours of the scorer (``sdscm_bench/scoring.py``) that the reference comparisons cannot reach.

The expected values come from ``tests/reference_sdscm.py`` (plain transformers forward passes and the
decode-based token boundary), from the tokenizer directly, or are worked out by hand in the test.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from reference_sdscm import build_reference_lm, candidate_token_ids, start_token
from reference_sdscm import reference_score as plain_score

from sdscm_bench.lm import LanguageModel
from sdscm_bench.scoring import CandidateScorer, InPlaceTokenizer, KVState

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SCORE_ATOL = 1e-4


@pytest.fixture(scope="module")
def ref_lm() -> LanguageModel:
    model, tokenizer = build_reference_lm()
    return LanguageModel(model, tokenizer, "reference-tiny", "reference-tiny-1234", "float32", "cpu")


@pytest.fixture(scope="module")
def bos_adding_lm(ref_lm: LanguageModel) -> LanguageModel:
    """The reference model with a Llama-style tokenizer: it has a BOS and adds it unless told not to."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    backend = copy.deepcopy(ref_lm.tokenizer.backend_tokenizer)
    special = "<|endoftext|>"
    backend.post_processor = TemplateProcessing(
        single=f"{special} $A", special_tokens=[(special, ref_lm.tokenizer.convert_tokens_to_ids(special))]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=special, eos_token=special)
    return LanguageModel(ref_lm.model, tokenizer, "reference-bos", "reference-bos-1234", "float32", "cpu")


def test_a_tokenizer_that_adds_bos_still_gets_one_start_token(bos_adding_lm: LanguageModel) -> None:
    """README: the only special token is one start token; a tokenizer's own BOS is not added a second time."""
    tok = bos_adding_lm.tokenizer
    bos = tok.bos_token_id
    assert tok("Sam arrives")["input_ids"][0] == bos  # by default this tokenizer adds its BOS
    context, candidates = "Sam arrives", [" on time", " late"]
    in_place = InPlaceTokenizer(bos_adding_lm)
    for cand in candidates:
        t = in_place(context, cand)
        plain = tok(context + cand, add_special_tokens=False)["input_ids"]
        assert list(t.ids) == [start_token(tok), *plain]
        assert t.ids.count(bos) == 1
        assert (list(t.ids), t.cand_start) == candidate_token_ids(tok, context, cand)
    got = CandidateScorer(bos_adding_lm).score(context, candidates)
    want = [plain_score(bos_adding_lm.model, tok, context, c) for c in candidates]
    np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)


def test_memoised_tokenisations_are_shared_and_immutable(ref_lm: LanguageModel) -> None:
    """The memo hands the same object to every caller, so no caller may change it."""
    tok = InPlaceTokenizer(ref_lm)
    t = tok("Sam arrives", " late")
    assert tok("Sam arrives", " late") is t
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.cand_start = 0  # type: ignore[misc]


def test_an_empty_state_is_rows_with_no_tokens(ref_lm: LanguageModel) -> None:
    """``KVState.empty()`` is one empty logical row (the root every first variable continues), no cache."""
    state = KVState.empty()
    assert (state.tokens, state.runs, state.segments()) == ([()], [()], [])
    assert len(state) == 1 and state.stats == {"tokens": 0, "forwards": 0, "slots": 0}
    three = KVState.empty(3)
    assert (three.tokens, three.runs) == ([(), (), ()], [(), (), ()])
    # Any empty row is a valid parent, and each scores its group as from scratch.
    scorer = CandidateScorer(ref_lm)
    groups = [("Sam arrives", [" on time", " late"]), ("The weather is", [" sunny", " rainy"])]
    targets = [
        (row, [scorer.tokenize(ctx, c) for c in cands])
        for row, (ctx, cands) in zip((2, 0), groups, strict=True)
    ]
    _, scores = scorer.extend(three, targets)
    for (ctx, cands), got in zip(groups, scores, strict=True):
        want = [plain_score(ref_lm.model, ref_lm.tokenizer, ctx, c) for c in cands]
        np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)


def test_continuing_a_cached_row_with_nothing_in_common(ref_lm: LanguageModel) -> None:
    """A cached state whose rows share no reusable prefix with the new targets (an empty context: the start
    token itself predicts the candidate, so nothing can come from the cache) scores as from scratch."""
    scorer = CandidateScorer(ref_lm)
    state, _ = scorer.extend(
        KVState.empty(), [(0, [scorer.tokenize("Sam arrives", c) for c in (" late", " on")])]
    )
    assert len(state.segments()) == 1
    cands = ["sunny", "rainy or snowy"]
    after, scores = scorer.extend(state, [(1, [scorer.tokenize("", c) for c in cands])])
    want = [plain_score(ref_lm.model, ref_lm.tokenizer, "", c) for c in cands]
    np.testing.assert_allclose(scores[0], want, rtol=0, atol=SCORE_ATOL)
    ids = [candidate_token_ids(ref_lm.tokenizer, "", c)[0] for c in cands]
    shared = 1  # the start token, run once for both branches
    assert after.stats["tokens"] - state.stats["tokens"] == shared + sum(len(i) - shared for i in ids)
    assert [list(t) for t in after.tokens] == ids


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_padded_rows_score_exactly_with_either_attention(attention: str) -> None:
    """Rows of one forward pass have different lengths, so the shorter ones are padded; with eager attention a
    fully masked padding query would turn into NaN and leak into every row through the next layer's values
    (0 x NaN), so padding must see itself. Both attention implementations must give the plain reference's
    scores (a checkpoint chooses its attention implementation; load_lm does not pin one). Eager attention adds
    a 4D mask to the scores, so a boolean mask there gave wrong scores (e.g. 'Sam' + ' late': -7.20 instead of
    -7.35) until the scorer passed an additive one."""
    model, tokenizer = build_reference_lm()
    model.set_attn_implementation(attention)
    assert model.config._attn_implementation == attention
    lm = LanguageModel(model, tokenizer, "reference-tiny", "reference-tiny-1234", "float32", "cpu")
    scorer = CandidateScorer(lm)
    groups = [
        ("Sam", [" arrives on time", " late"]),
        ("The patient is a woman with a tumor of", [" grade 1", " grade 2 or grade 3", " moderate"]),
    ]
    state, scores = scorer.extend(
        KVState.empty(2), [(g, [scorer.tokenize(c, x) for x in cands]) for g, (c, cands) in enumerate(groups)]
    )
    assert state.stats["slots"] > state.stats["tokens"]  # there is padding
    for (ctx, cands), got in zip(groups, scores, strict=True):
        want = [plain_score(model, tokenizer, ctx, c) for c in cands]
        np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_the_vocabulary_head_in_chunks_gives_the_same_scores(
    ref_lm: LanguageModel, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head's log-softmax runs in chunks of rows (a 128k vocabulary's float32 logits for 512 contexts ran
    out of GPU memory at once); every chunk size gives the plain reference's scores. The groups mix
    single-token candidates (one shared head row) with multi-token ones (a row per later token), so rows
    referenced by several candidates and tokens straddle the chunk borders."""
    vocab = ref_lm.model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr("sdscm_bench.scoring.HEAD_CHUNK_BYTES", 4 * vocab * chunk_rows)
    scorer = CandidateScorer(ref_lm)
    groups = [
        ("Sam", [" arrives on time", " late", " on"]),
        ("The patient is a woman with a tumor of", [" grade 1", " grade 2 or grade 3", " moderate"]),
    ]
    _, scores = scorer.extend(
        KVState.empty(2), [(g, [scorer.tokenize(c, x) for x in cands]) for g, (c, cands) in enumerate(groups)]
    )
    for (ctx, cands), got in zip(groups, scores, strict=True):
        want = [plain_score(ref_lm.model, ref_lm.tokenizer, ctx, c) for c in cands]
        np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)


def test_batched_tokenisation_matches_one_pair_at_a_time(ref_lm: LanguageModel) -> None:
    """``many`` tokenises the unseen pairs in one call; each result equals a fresh one-pair tokeniser's, repeats
    included, and a candidate that adds no token is a clear error."""
    pairs = [("Sam", " late"), ("Sam", " on"), ("Sam", " late"), ("The tumor is", " grade 2 or grade 3")]
    batched = InPlaceTokenizer(ref_lm).many(pairs)
    single = [InPlaceTokenizer(ref_lm)(c, x) for c, x in pairs]
    assert batched == single
    assert batched[0] is batched[2]
    with pytest.raises(ValueError, match="has no tokens"):
        InPlaceTokenizer(ref_lm).many([("Sam", "")])


def test_each_pass_keeps_only_its_new_keys_and_values(ref_lm: LanguageModel) -> None:
    """The cache is one segment per forward pass holding only that pass's new columns; a continued row reads
    its past from its ancestors' segments (the same objects, not copies), and scores stay exact three passes
    deep. (Whole-prefix copies per state, kept alive along the sampler's recursion, set the peak memory.)"""
    scorer = CandidateScorer(ref_lm)
    tok = scorer.tokenize
    first, _ = scorer.extend(KVState.empty(), [(0, [tok("Sam", " arrives"), tok("Sam", " leaves")])])
    second, _ = scorer.extend(
        first,
        [
            (0, [tok("Sam arrives on", " time"), tok("Sam arrives on", " Monday")]),
            (1, [tok("Sam leaves at", " noon")]),
        ],
    )
    context, candidates = "Sam arrives on time. The weather is", [" sunny", " rainy or snowy"]
    third, scores = scorer.extend(second, [(0, [tok(context, c) for c in candidates])])
    want = [plain_score(ref_lm.model, ref_lm.tokenizer, context, c) for c in candidates]
    np.testing.assert_allclose(scores[0], want, rtol=0, atol=SCORE_ATOL)
    (seg1,), segs2, segs3 = first.segments(), second.segments(), third.segments()
    assert any(s is seg1 for s in segs2) and any(s is seg1 for s in segs3)
    own = [s for s in segs3 if not any(s is t for t in segs2)]
    assert len(own) == 1  # the third pass added one segment ...
    new_tokens = third.stats["tokens"] - second.stats["tokens"]
    for keys, values in own[0].layers:  # ... holding its one row's new tokens only
        assert keys.shape[0] == values.shape[0] == 1 and keys.shape[2] == values.shape[2] == new_tokens
    for tokens, runs in zip(
        third.tokens, third.runs, strict=True
    ):  # every position of every row is somewhere
        assert sum(run[3] for run in runs) == len(tokens)


def test_on_cpu_a_bfloat16_model_scores_through_a_float32_head(ref_lm: LanguageModel) -> None:
    """``lm.head_dtype``: on CPU the vocabulary head runs in float32 whatever the weights' dtype (bfloat16
    matmuls without native support ran 2-3x slower than float32 ones); the scores are the bfloat16 body's
    hidden states through the float32 head, and the provenance says so."""
    model = copy.deepcopy(ref_lm.model).to(torch.bfloat16)
    lm = LanguageModel(model, ref_lm.tokenizer, "reference-bf16", "reference-bf16-1234", "bfloat16", "cpu")
    scorer = CandidateScorer(lm)
    assert scorer.head_weight.dtype == torch.float32 and lm.describe()["head_dtype"] == "float32"
    context, candidates = "Sam arrives", [" on time", " late"]
    got = scorer.score(context, candidates)
    weight = model.get_output_embeddings().weight.float()
    with torch.inference_mode():
        for cand, score in zip(candidates, got, strict=True):
            t = scorer.tokenize(context, cand)
            hidden = model.base_model(torch.as_tensor([t.ids])).last_hidden_state[0].float()
            logp = torch.log_softmax(hidden @ weight.T, dim=-1)
            want = sum(logp[j - 1, t.ids[j]].item() for j in range(t.cand_start, len(t.ids)))
            assert score == pytest.approx(
                want, abs=0.05
            )  # bfloat16 body: batched and single runs differ a little


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_rows_with_a_shorter_past_never_read_uninitialised_buffer_columns(
    attention: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gathered past is written into fresh (uninitialised) buffers, and only the columns past a shorter
    row's own past are zeroed. Masked columns still pass through the softmax, so a NaN left there would reach
    the scores; here every fresh buffer starts as NaN, and rows with pasts of different lengths must still
    give the plain reference's scores."""
    model, tokenizer = build_reference_lm()
    model.set_attn_implementation(attention)
    lm = LanguageModel(model, tokenizer, "reference-tiny", "reference-tiny-1234", "float32", "cpu")
    scorer = CandidateScorer(lm)
    contexts = ["Sam", "The patient is a woman with a tumor of"]
    state, _ = scorer.extend(
        KVState.empty(2), [(g, [scorer.tokenize(c, " and")]) for g, c in enumerate(contexts)]
    )
    real_new_empty = torch.Tensor.new_empty

    def nan_new_empty(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return real_new_empty(self, *args, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(torch.Tensor, "new_empty", nan_new_empty)
    follow = [(c + " and", [" late", " grade 2 or grade 3"]) for c in contexts]
    groups = [(g, [scorer.tokenize(ctx, x) for x in cands]) for g, (ctx, cands) in enumerate(follow)]
    assert len({len(state.tokens[g]) for g in range(2)}) == 2  # the two rows' pasts differ in length
    _, scores = scorer.extend(state, groups)
    for (ctx, cands), got in zip(follow, scores, strict=True):
        want = [plain_score(model, tokenizer, ctx, c) for c in cands]
        np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)
