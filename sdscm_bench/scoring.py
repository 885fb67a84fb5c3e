"""Exact candidate log-likelihoods with batched, prefix-reusing forward passes.

The score of a candidate is ``sum_i log p(token_i | tokens before it)`` over the tokens
that overlap the candidate, where the candidate is tokenised *in place* (context and
candidate as one string, so boundary merges are what the model would see) and each term
comes from the logits at the previous position. ``mean`` divides by the token count.

``KVState`` holds the key/value cache of many rows at once. Each row is a logical token
sequence; ``extend`` derives new rows from existing ones, reusing each parent's cached
keys/values for the longest common token prefix, and runs only the remaining tokens.
Explicit position ids keep positions exact.

The cache is stored in segments, one per forward pass, each holding only that pass's new
keys/values; a row's past is gathered from its ancestors' segments. States kept alive along
the sampler's recursion therefore share their common past instead of each holding a copy.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from sdscm_bench.errors import ModelLoadError
from sdscm_bench.lm import DTYPES, LanguageModel, head_dtype

SCORING_MODES = ("sum", "mean")
#: Most bytes of float32 logits held at once (the vocabulary head runs in chunks of rows below it).
HEAD_CHUNK_BYTES = 512 * 2**20
#: The same bound on CPU, where memory is the scarcer resource: a 512 MiB chunk peaks at three copies
#: (logits, float32, log-softmax), and smaller chunks cost no time there (benchmarks/README.md, "Fifth
#: session"; `python benchmarks/engine_memory.py head`).
CPU_HEAD_CHUNK_BYTES = 64 * 2**20


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
        return self.many([(context, candidate)])[0]

    def many(self, pairs: Sequence[tuple[str, str]]) -> list[Tokenized]:
        """Tokenisations of many (context, candidate) pairs; the unseen ones in one batched call
        (one call per pair costs about a millisecond of Python overhead, which dominated fast models)."""
        missing = list(dict.fromkeys(key for key in pairs if key not in self._memo))
        if missing:
            enc = self.tokenizer(
                [context + candidate for context, candidate in missing],
                add_special_tokens=False,
                return_offsets_mapping=True,
            )
            if len(self._memo) + len(missing) > 200_000:
                self._memo.clear()
            for (context, candidate), ids, offsets in zip(
                missing, enc["input_ids"], enc["offset_mapping"], strict=True
            ):
                # The candidate starts at the first token that ends past the context.
                cand_start = 1 + bisect.bisect_right(offsets, len(context), key=itemgetter(1))
                if cand_start > len(ids):
                    raise ValueError(f"candidate {candidate!r} after {context!r} has no tokens")
                self._memo[(context, candidate)] = Tokenized((self.start, *ids), cand_start)
        return [self._memo[key] for key in pairs]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token tuples: a bisection on slice equality (each
    comparison runs in C), which beats a Python loop over the ~100-token contexts."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    same, differ = 0, n  # a[:same] == b[:same] and a[:differ] != b[:differ]
    while differ - same > 1:
        mid = (same + differ) // 2
        if a[:mid] == b[:mid]:
            same = mid
        else:
            differ = mid
    return same


@dataclass(eq=False)
class Segment:
    """Keys/values one forward pass computed: ``layers[l] = (keys, values)``, [rows, heads, columns, dim]."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]


#: A stretch of a logical row's cached positions: ``length`` columns of ``segment``'s row ``row`` from
#: column ``start`` on.
Run = tuple[Segment, int, int, int]


def _prefix(runs: Sequence[Run], k: int) -> tuple[Run, ...]:
    """The runs that hold a row's first ``k`` cached positions."""
    out, at = [], 0
    for seg, row, start, length in runs:
        if at >= k:
            break
        take = min(length, k - at)
        out.append((seg, row, start, take))
        at += take
    return tuple(out)


@dataclass
class KVState:
    """Batched KV cache of logical rows: row r is the token sequence ``tokens[r]``, whose keys/values
    lie, position after position, in ``runs[r]`` (stretches of the segments of earlier forward passes).
    Several logical rows (the candidates scored after one context) share a segment row, each reading
    only its own branch of it."""

    tokens: list[tuple[int, ...]]
    runs: list[tuple[Run, ...]]
    stats: dict[str, int] = field(default_factory=lambda: {"tokens": 0, "forwards": 0, "slots": 0})

    @classmethod
    def empty(cls, rows: int = 1) -> KVState:
        return cls(tokens=[() for _ in range(rows)], runs=[() for _ in range(rows)])

    def __len__(self) -> int:
        return len(self.tokens)

    def segments(self) -> list[Segment]:
        """The distinct segments this state's rows read (what keeping the state keeps in memory)."""
        return list({id(run[0]): run[0] for row in self.runs for run in row}.values())


@dataclass
class _Packed:
    """One physical row of a forward pass: a shared context segment, then one branch per candidate."""

    keep: int  # cached positions reused from the parent row
    shared_end: int  # positions [keep, shared_end) are common to every candidate
    tokens: list[int]
    segment: list[int]  # -1 for the shared segment, i for candidate i's branch
    branch_start: list[int]  # local index where candidate i's branch begins

    def local(self, i: int, position: int) -> int:
        if position < self.shared_end:
            return position - self.keep
        return self.branch_start[i] + position - self.shared_end


def _pack(parent_tokens: Sequence[int], targets: Sequence[Tokenized]) -> _Packed:
    first = targets[0].ids
    keep = min(
        min(_common_prefix(parent_tokens, t.ids) for t in targets), min(t.cand_start for t in targets) - 1
    )
    shared = min(_common_prefix(first, t.ids) for t in targets)
    shared_end = max(keep, min(shared, min(len(t.ids) for t in targets)))
    tokens = list(first[keep:shared_end])
    segment = [-1] * len(tokens)
    branch_start = []
    for i, t in enumerate(targets):
        branch_start.append(len(tokens))
        tokens.extend(t.ids[shared_end:])
        segment.extend([i] * (len(t.ids) - shared_end))
    return _Packed(keep, shared_end, tokens, segment, branch_start)


def _new_columns(cached: torch.Tensor, width: int) -> torch.Tensor:
    """The columns after the first ``width`` (a copy, so the rest of the buffer can be freed)."""
    return cached if width == 0 else cached[:, :, width:].clone()


class _FilledLayer(DynamicLayer):
    """A cache layer over buffers that hold the gathered past in their first ``width`` columns and have room
    for one pass's new columns, which ``update`` writes in place. (``DynamicLayer`` concatenates: a copy of
    the whole past when the cache is built and another when the pass adds its columns, per layer.)"""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, width: int) -> None:
        super().__init__()
        self.keys, self.values, self.width = keys, values, width
        self.device = keys.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.width + key_states.shape[-2]
        if end != self.keys.shape[-2]:
            raise RuntimeError(f"cache layer sized for {self.keys.shape[-2]} columns, got {end}")
        self.keys[:, :, self.width : end] = key_states
        self.values[:, :, self.width : end] = value_states
        self.width = end
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.width


class CandidateScorer:
    """Scores every candidate of many contexts in one forward pass.

    Each context is one physical row: its new context tokens once, then each candidate's
    tokens as a branch that attends to the context and to itself only (a tree attention mask),
    with explicit position ids so every branch sees exactly the positions it would alone.
    """

    def __init__(self, lm: LanguageModel, mode: str = "sum") -> None:
        if mode not in SCORING_MODES:
            raise ValueError(f"scoring mode must be one of {SCORING_MODES}, not {mode!r}")
        self.lm = lm
        self.mode = mode
        self.tokenize = InPlaceTokenizer(lm)
        self.base = lm.model.base_model
        self.device = torch.device(lm.device)
        head = lm.model.get_output_embeddings()
        if not isinstance(head, torch.nn.Linear):
            raise ModelLoadError(
                f"{lm.lm_id}: the output embeddings are a {type(head).__name__}, not a linear vocabulary head; "
                "the scorer needs a causal LM whose get_output_embeddings() is a torch.nn.Linear"
            )
        dtype = DTYPES[head_dtype(lm.dtype, lm.device)]
        self.head_weight = head.weight.to(dtype)  # a float32 copy of a bfloat16 head on CPU (see head_dtype)
        self.head_bias = None if getattr(head, "bias", None) is None else head.bias.to(dtype)

    def _gather_past(
        self, state: KVState, parents: Sequence[int], keep: Sequence[int], n_new: int
    ) -> DynamicCache | None:
        """Cache whose layers hold the first ``keep[g]`` logical positions of each parent row, left-aligned
        (columns past ``keep[g]`` are zeros, masked) and gathered from the segments they lie in, with room
        for the pass's ``n_new`` columns after them."""
        width = max(keep)
        if width == 0:
            return None
        # Per segment: (destination row, destination column, source row, source column) of each position.
        where: dict[int, tuple[Segment, list[int], list[int], list[int], list[int]]] = {}
        for g, (p, k) in enumerate(zip(parents, keep, strict=True)):
            at = 0
            for seg, row, start, length in _prefix(state.runs[p], k):
                _, dst_row, dst_col, src_row, src_col = where.setdefault(id(seg), (seg, [], [], [], []))
                dst_row.extend([g] * length)
                dst_col.extend(range(at, at + length))
                src_row.extend([row] * length)
                src_col.extend(range(start, start + length))
                at += length
        index = [
            (seg, *(torch.as_tensor(ix, dtype=torch.long, device=self.device) for ix in lists))
            for seg, *lists in where.values()
        ]
        # Columns no position is gathered into (rows whose past is shorter than the widest) are masked, but
        # must hold finite numbers: masked scores still pass through the softmax. Only the rows that have
        # such columns are zeroed, before the gather writes their past (the whole past was: a third of the
        # gather's memory traffic, for rows that are mostly all equally long).
        short = [g for g, k in enumerate(keep) if k < width]
        short_rows = torch.as_tensor(short, dtype=torch.long, device=self.device)
        short_from = min((keep[g] for g in short), default=width)
        cache = DynamicCache()
        for layer in range(len(index[0][0].layers)):
            pair = []
            for kv in (0, 1):
                like = index[0][0].layers[layer][kv]
                buffer = like.new_empty((len(parents), like.shape[1], width + n_new, like.shape[3]))
                if short:
                    buffer[short_rows, :, short_from:width] = 0
                for seg, dst_row, dst_col, src_row, src_col in index:
                    buffer[dst_row, :, dst_col] = seg.layers[layer][kv][src_row, :, src_col]
                pair.append(buffer)
            cache.layers.append(_FilledLayer(*pair, width))
        return cache

    def _mask(self, packed: Sequence[_Packed], width: int, n_new: int) -> torch.Tensor:
        """Boolean [rows, 1, n_new, width + n_new]: cached prefix, causal context, own branch only."""
        seg = torch.full((len(packed), n_new), -2, dtype=torch.long)
        past = torch.zeros((len(packed), width), dtype=torch.bool)
        for g, pk in enumerate(packed):
            seg[g, : len(pk.segment)] = torch.as_tensor(pk.segment, dtype=torch.long)
            past[g, : pk.keep] = True
        causal = torch.tril(torch.ones((n_new, n_new), dtype=torch.bool))
        key_seg, query_seg = seg[:, None, :], seg[:, :, None]
        new = causal & ((key_seg == -1) | (key_seg == query_seg)) & (query_seg != -2)
        new |= torch.eye(n_new, dtype=torch.bool)[None] & (query_seg == -2)  # padding sees itself only
        past = past[:, None, :].expand(-1, n_new, -1) & (query_seg != -2)
        return torch.cat([past, new], dim=2)[:, None]

    def _additive(self, allowed: torch.Tensor) -> torch.Tensor:
        """The boolean mask as an additive one (0 where allowed, the dtype's minimum elsewhere), on the
        model's device and dtype. Eager attention adds a 4D mask to the scores, so a boolean one would
        add 1/0 instead of masking (every query would see every position); SDPA takes either form."""
        dtype = self.lm.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype, device=self.device)
        return mask.masked_fill_(~allowed.to(self.device), torch.finfo(dtype).min)

    def _attention_kernels(self) -> contextlib.AbstractContextManager:
        """On CUDA, SDPA without cuDNN: every forward here has a new shape (rows, new tokens, cached
        width), and cuDNN builds an execution graph per shape (about 5 ms of CPU each, measured on an
        H200: 70% of the CPU time of a SmolLM2 run); the memory-efficient kernel takes the tree mask
        as is."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])

    @torch.inference_mode()
    def extend(
        self, state: KVState, groups: Sequence[tuple[int, Sequence[Tokenized]]]
    ) -> tuple[KVState, list[list[float]]]:
        """Score each group's candidates after its context, continuing logical row ``parent``.

        Returns the new state, whose logical rows are the groups' targets in order, and the
        scores per group.
        """
        packed = [_pack(state.tokens[p], targets) for p, targets in groups]
        keep = [pk.keep for pk in packed]
        n_new = max(len(pk.tokens) for pk in packed)
        past = self._gather_past(state, [p for p, _ in groups], keep, n_new)
        width = max(keep) if past is not None else 0
        input_ids = torch.zeros((len(packed), n_new), dtype=torch.long)
        positions = torch.zeros((len(packed), n_new), dtype=torch.long)
        for g, pk in enumerate(packed):
            input_ids[g, : len(pk.tokens)] = torch.as_tensor(pk.tokens)
            pos = list(range(pk.keep, pk.shared_end))
            for t in groups[g][1]:
                pos.extend(range(pk.shared_end, len(t.ids)))
            positions[g, : len(pos)] = torch.as_tensor(pos)
        with self._attention_kernels():
            out = self.base(
                input_ids=input_ids.to(self.device),
                attention_mask=self._additive(self._mask(packed, width, n_new)),
                position_ids=positions.to(self.device),
                cache=past if past is not None else DynamicCache(),
                use_cache=True,
            )
        hidden = out.last_hidden_state
        # Keep this pass's new keys/values only (copied out of the buffers, so the gathered past goes now).
        segment = Segment(
            [
                (_new_columns(layer.keys, width), _new_columns(layer.values, width))
                for layer in out.cache.layers
            ]
        )
        del out, past
        parents_runs = [state.runs[p] for p, _ in groups]
        # Logits only where a candidate token is predicted: position j-1 predicts token j. Candidates
        # after one context predict their first token from the same position, so each distinct
        # (row, position) goes through the vocabulary head once.
        at_position: dict[tuple[int, int], int] = {}
        row_idx, loc_idx, source, tgt_ids, owner = [], [], [], [], []
        tokens, runs, counts = [], [], []
        for g, (pk, (_, targets)) in enumerate(zip(packed, groups, strict=True)):
            for i, t in enumerate(targets):
                for j in range(t.cand_start, len(t.ids)):
                    key = (g, pk.local(i, j - 1))
                    if key not in at_position:
                        at_position[key] = len(row_idx)
                        row_idx.append(g)
                        loc_idx.append(key[1])
                    source.append(at_position[key])
                    tgt_ids.append(t.ids[j])
                    owner.append(len(tokens))
                tokens.append(t.ids)
                shared = (segment, g, 0, pk.shared_end - pk.keep)
                branch = (segment, g, pk.branch_start[i], len(t.ids) - pk.shared_end)
                runs.append(
                    _prefix(parents_runs[g], pk.keep) + tuple(r for r in (shared, branch) if r[3] > 0)
                )
                counts.append(len(t.ids) - t.cand_start)
        head_in = hidden[torch.as_tensor(row_idx), torch.as_tensor(loc_idx)]
        source_t = torch.as_tensor(source, device=self.device)
        target_t = torch.as_tensor(tgt_ids, device=self.device)
        token_lp = torch.empty(len(source), dtype=torch.float64, device=self.device)
        # The full-vocabulary log-softmax (on CPU a fused kernel, twice as fast as logsumexp), in
        # chunks of rows: float32 logits of 512 contexts of a 128k-vocabulary model took 9.5 GiB at once.
        chunk_bytes = (
            HEAD_CHUNK_BYTES if self.device.type != "cpu" else min(HEAD_CHUNK_BYTES, CPU_HEAD_CHUNK_BYTES)
        )
        step = max(1, chunk_bytes // (4 * self.head_weight.shape[0]))
        head_in = head_in.to(self.head_weight.dtype)
        for start in range(0, len(row_idx), step):
            logits = torch.nn.functional.linear(
                head_in[start : start + step], self.head_weight, self.head_bias
            )
            logp = torch.log_softmax(logits.float(), dim=-1)
            mine = (source_t >= start) & (source_t < start + step)
            token_lp[mine] = logp[source_t[mine] - start, target_t[mine]].double()
        sums = torch.zeros(len(tokens), dtype=torch.float64, device=self.device)
        sums.index_add_(0, torch.as_tensor(owner, device=self.device), token_lp)
        flat = sums.cpu().tolist()
        if self.mode == "mean":
            flat = [s / c for s, c in zip(flat, counts, strict=True)]
        stats = {
            "tokens": state.stats["tokens"] + sum(len(pk.tokens) for pk in packed),
            "forwards": state.stats["forwards"] + 1,
            "slots": state.stats["slots"] + len(packed) * n_new,  # tokens plus padding
        }
        scores, at = [], 0
        for _, targets in groups:
            scores.append(flat[at : at + len(targets)])
            at += len(targets)
        return KVState(tokens, runs, stats), scores

    def score(self, context: str, candidates: Sequence[str]) -> list[float]:
        """Scores of candidates after one context, in one forward pass (convenience API)."""
        targets = [self.tokenize(context, c) for c in candidates]
        _, scores = self.extend(KVState.empty(1), [(0, targets)])
        return scores[0]


@torch.inference_mode()
def reference_score(lm: LanguageModel, context: str, candidate: str, mode: str = "sum") -> float:
    """Plain one-sequence computation of a candidate's score: one full forward, no cache, no batch."""
    t = InPlaceTokenizer(lm)(context, candidate)
    ids = torch.as_tensor([t.ids], device=lm.device)
    logp = torch.log_softmax(lm.model(ids).logits[0].float(), dim=-1)
    terms = [logp[j - 1, t.ids[j]].item() for j in range(t.cand_start, len(t.ids))]
    return sum(terms) / len(terms) if mode == "mean" else sum(terms)
