"""Exact candidate log-likelihoods with batched, prefix-reusing forward passes.

The score of a candidate is ``sum_i log p(token_i | tokens before it)`` over the tokens
that overlap the candidate, where the candidate is tokenised *in place* (context and
candidate as one string, so boundary merges are what the model would see) and each term
comes from the logits at the previous position. ``mean`` divides by the token count.

``KVState`` holds the key/value cache of many rows at once. Each row is a logical token
sequence; ``extend`` derives new rows from existing ones, reusing each parent's cached
keys/values for the longest common token prefix, and runs only the remaining tokens.
Rows may have holes (masked cache columns); explicit position ids keep positions exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from sdscm_bench.lm import LanguageModel

SCORING_MODES = ("sum", "mean")


@dataclass(frozen=True)
class Tokenized:
    """Token ids of ``start + context + candidate`` and where the candidate's tokens begin."""

    ids: tuple[int, ...]
    cand_start: int


class InPlaceTokenizer:
    """Tokenises context+candidate as one string and memoises the result."""

    def __init__(self, lm: LanguageModel) -> None:
        self.tokenizer = lm.tokenizer
        self.start = lm.start_token_id
        self._memo: dict[tuple[str, str], Tokenized] = {}

    def __call__(self, context: str, candidate: str) -> Tokenized:
        key = (context, candidate)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        enc = self.tokenizer(context + candidate, add_special_tokens=False, return_offsets_mapping=True)
        ids = (self.start, *enc["input_ids"])
        ends = [0] + [end for _, end in enc["offset_mapping"]]
        cand_start = next(i for i in range(1, len(ids)) if ends[i] > len(context))
        result = Tokenized(ids, cand_start)
        if len(self._memo) > 200_000:
            self._memo.clear()
        self._memo[key] = result
        return result


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class KVState:
    """Batched KV cache: ``layers[l] = (keys, values)`` of shape [rows, heads, columns, dim].

    ``columns[r]`` maps row r's logical positions to cache columns; other columns are holes.
    """

    tokens: list[tuple[int, ...]]
    columns: list[list[int]]
    layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"tokens": 0, "forwards": 0})

    @classmethod
    def empty(cls, rows: int = 1) -> KVState:
        return cls(tokens=[() for _ in range(rows)], columns=[[] for _ in range(rows)])

    def __len__(self) -> int:
        return len(self.tokens)


class CandidateScorer:
    """Scores candidates after contexts with one batched forward per call."""

    def __init__(self, lm: LanguageModel, mode: str = "sum") -> None:
        if mode not in SCORING_MODES:
            raise ValueError(f"scoring mode must be one of {SCORING_MODES}, not {mode!r}")
        self.lm = lm
        self.mode = mode
        self.tokenize = InPlaceTokenizer(lm)
        self.base = lm.model.base_model
        self.head = lm.model.get_output_embeddings()
        self.device = torch.device(lm.device)

    def _gather_past(
        self, state: KVState, parents: Sequence[int], keep: Sequence[int]
    ) -> tuple[DynamicCache | None, torch.Tensor, int]:
        """Left-aligned cache of the first ``keep[i]`` logical positions of each parent row."""
        width = max(keep) if keep else 0
        mask = torch.zeros((len(parents), width), dtype=torch.long)
        for i, k in enumerate(keep):
            mask[i, :k] = 1
        if width == 0 or state.layers is None:
            return None, mask.to(self.device), 0
        cols = torch.zeros((len(parents), width), dtype=torch.long)
        for i, (p, k) in enumerate(zip(parents, keep, strict=True)):
            if k:
                cols[i, :k] = torch.as_tensor(state.columns[p][:k])
        rows = torch.as_tensor(list(parents), dtype=torch.long)[:, None].expand(-1, width)
        rows, cols = rows.to(self.device), cols.to(self.device)
        data = [(k[rows, :, cols].transpose(1, 2), v[rows, :, cols].transpose(1, 2)) for k, v in state.layers]
        return DynamicCache(ddp_cache_data=data), mask.to(self.device), width

    @torch.inference_mode()
    def extend(
        self, state: KVState, parents: Sequence[int], targets: Sequence[Tokenized]
    ) -> tuple[KVState, list[float]]:
        """New rows ``targets[i]`` continuing ``state`` row ``parents[i]``; returns candidate scores."""
        keep = [
            min(_common_prefix(state.tokens[p], t.ids), t.cand_start - 1)
            for p, t in zip(parents, targets, strict=True)
        ]
        past, past_mask, width = self._gather_past(state, parents, keep)
        lengths = [len(t.ids) - k for t, k in zip(targets, keep, strict=True)]
        n_new = max(lengths)
        input_ids = torch.zeros((len(targets), n_new), dtype=torch.long)
        new_mask = torch.zeros((len(targets), n_new), dtype=torch.long)
        for i, (t, k) in enumerate(zip(targets, keep, strict=True)):
            input_ids[i, : lengths[i]] = torch.as_tensor(t.ids[k:])
            new_mask[i, : lengths[i]] = 1
        positions = torch.as_tensor(keep)[:, None] + torch.arange(n_new)[None, :]
        out = self.base(
            input_ids=input_ids.to(self.device),
            attention_mask=torch.cat([past_mask, new_mask.to(self.device)], dim=1),
            position_ids=positions.to(self.device),
            cache=past if past is not None else DynamicCache(),
            use_cache=True,
        )
        hidden = out.last_hidden_state
        # Logits only where a candidate token is predicted: position j predicts token j+1.
        row_idx, pos_idx, tgt_ids, owner = [], [], [], []
        for i, (t, k) in enumerate(zip(targets, keep, strict=True)):
            for j in range(t.cand_start, len(t.ids)):
                row_idx.append(i)
                pos_idx.append(j - 1 - k)
                tgt_ids.append(t.ids[j])
                owner.append(i)
        logits = self.head(hidden[torch.as_tensor(row_idx), torch.as_tensor(pos_idx)]).float()
        token_lp = torch.log_softmax(logits, dim=-1).gather(
            1, torch.as_tensor(tgt_ids, device=self.device)[:, None]
        )
        sums = torch.zeros(len(targets), dtype=torch.float64, device=self.device)
        sums.index_add_(0, torch.as_tensor(owner, device=self.device), token_lp[:, 0].double())
        counts = [len(t.ids) - t.cand_start for t in targets]
        scores = sums.cpu().tolist()
        if self.mode == "mean":
            scores = [s / c for s, c in zip(scores, counts, strict=True)]
        layers = [(layer.keys, layer.values) for layer in out.cache.layers]
        columns = [list(range(k)) + list(range(width, width + n)) for k, n in zip(keep, lengths, strict=True)]
        stats = {"tokens": state.stats["tokens"] + sum(lengths), "forwards": state.stats["forwards"] + 1}
        new_state = KVState([t.ids for t in targets], columns, layers, stats)
        return new_state, scores

    def score(self, context: str, candidates: Sequence[str]) -> list[float]:
        """Scores of candidates after one context, in one batched forward (convenience API)."""
        targets = [self.tokenize(context, c) for c in candidates]
        _, scores = self.extend(KVState.empty(1), [0] * len(targets), targets)
        return scores


@torch.inference_mode()
def reference_score(lm: LanguageModel, context: str, candidate: str, mode: str = "sum") -> float:
    """Plain one-sequence computation of a candidate's score: one full forward, no cache, no batch."""
    t = InPlaceTokenizer(lm)(context, candidate)
    ids = torch.as_tensor([t.ids], device=lm.device)
    logp = torch.log_softmax(lm.model(ids).logits[0].float(), dim=-1)
    terms = [logp[j - 1, t.ids[j]].item() for j in range(t.cand_start, len(t.ids))]
    return sum(terms) / len(terms) if mode == "mean" else sum(terms)
