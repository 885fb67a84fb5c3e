"""An independent reference for SD-SCM generation, derived from README's "How the data is made".

It shares no code with the engine (nothing from ``sdscm_bench``'s sampler, scoring, generate,
families or lm modules): it reads the spec through ``sdscm_bench.spec`` and otherwise uses numpy,
torch and plain transformers objects only. It is deliberately naive: one unbatched forward pass per
(context, candidate), no key/value cache, no deduplication of units, every world of every unit
recomputed from scratch. So when it agrees with the engine value for value, the engine's batching,
caching, branching and random streams do what the README says, and a change to any documented rule
(a stream number, the phrasing draw, the temperature, the context text) shows up as a disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from sdscm_bench.spec import Family, Variable

# Text the reference tokenizer is trained on: words of the shipped specs, so the tokenizer has
# multi-character merges across word boundaries (" grade", " bicycle"), as a real one would.
REFERENCE_CORPUS = (
    "This morning the weather is sunny, rainy or snowy. It is a sunny day in town. Today is a Monday or a "
    "Friday. To get to work, Sam takes the bus or rides a bicycle to the office. Sam arrives on time or late. "
    "The patient is a woman with a tumor of grade 1, grade 2 or grade 3; the level is low, moderate or high. "
    "The farm in the north or south region gets a subsidy; fertilizer use is low or high and the harvest is "
    "good or poor. The applicant is young or older, with school or university education, in an urban or rural "
    "area. Previous work experience: none or some. The applicant completed or skipped the training. "
    "Job offer received: yes or no. The student was admitted, took tutoring, and passed or failed the exam."
)


def build_reference_lm(seed: int = 1234) -> tuple[Any, Any]:
    """A tiny GPT-2 and byte-level BPE tokenizer built here from a transformers config (not the engine's).

    The weights are initialised with a larger spread than GPT-2's default (``initializer_range``) so that
    candidates' scores differ by whole nats: with near-uniform logits every candidate of the same token
    length would score the same and a wrong temperature or context could go unnoticed.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [REFERENCE_CORPUS] * 3, vocab_size=500, min_frequency=2, special_tokens=["<|endoftext|>"]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=48,
        n_layer=2,
        n_head=3,
        initializer_range=0.3,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    return model, tokenizer


def start_token(tokenizer: Any) -> int:
    """The documented start token: the tokenizer's BOS, else its EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def candidate_token_ids(tokenizer: Any, context: str, candidate: str) -> tuple[list[int], int]:
    """``[start] + tokens of context+candidate`` and the index of the candidate's first token.

    The first candidate token is found by decoding token prefixes (not from offsets, as the engine
    does): the first token whose decoded text reaches past the context's end. Decoded length grows
    with the prefix, so the search walks back from the end (candidates are a few tokens long).
    """
    ids = list(tokenizer(context + candidate, add_special_tokens=False)["input_ids"])

    def decoded_length(k: int) -> int:
        return len(tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False))

    k = len(ids)
    if not ids or decoded_length(k) <= len(context):
        raise AssertionError(f"no token reaches the candidate {candidate!r} after {context!r}")
    while k > 1 and decoded_length(k - 1) > len(context):
        k -= 1
    return [start_token(tokenizer), *ids], k  # ids[k - 1] is at k once the start token is prepended


@torch.no_grad()
def reference_score(model: Any, tokenizer: Any, context: str, candidate: str, mode: str = "sum") -> float:
    """README's score: log-probs of the candidate's tokens from one plain forward pass, in float64."""
    ids, first = candidate_token_ids(tokenizer, context, candidate)
    logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    terms = [float(logp[j - 1, ids[j]]) for j in range(first, len(ids))]
    if mode == "mean":
        return sum(terms) / len(terms)
    if mode == "sum":
        return sum(terms)
    raise ValueError(f"unknown scoring mode {mode!r}")


def topological_order(family: Family) -> list[str]:
    """Kahn's algorithm; of the variables whose parents are all placed, the first declared goes next."""
    placed: list[str] = []
    remaining = [v.name for v in family.variables]
    parents = {v.name: set(v.parents) for v in family.variables}
    while remaining:
        nxt = next(v for v in remaining if parents[v] <= set(placed))
        placed.append(nxt)
        remaining.remove(nxt)
    return placed


def descendants(family: Family, name: str) -> set[str]:
    children: dict[str, list[str]] = {v.name: [] for v in family.variables}
    for v in family.variables:
        for p in v.parents:
            children[p].append(v.name)
    out: set[str] = set()
    stack = [name]
    while stack:
        for c in children[stack.pop()]:
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def phrasing_indices(family: Family, seed: int) -> dict[str, int]:
    """Stream 0: one ``integers(number of phrasings)`` per variable, in declaration order."""
    rng = np.random.default_rng([seed, 0])
    return {v.name: int(rng.integers(len(v.phrasings))) for v in family.variables}


def noise_of(family: Family, var: str, seed: int, n_units: int) -> np.ndarray:
    """Stream 1 + i: unit u's Gumbel noise for variable i is row u of ``gumbel(size=(N, candidates))``."""
    i = [v.name for v in family.variables].index(var)
    n_cands = len(family.by_name[var].candidates)
    return np.random.default_rng([seed, 1 + i]).gumbel(size=(n_units, n_cands))


def rct_assignment(family: Family, var: str, seed: int, n_units: int) -> np.ndarray:
    """Stream 10_000 + i: unit u's randomised candidate index."""
    i = [v.name for v in family.variables].index(var)
    n_cands = len(family.by_name[var].candidates)
    return np.random.default_rng([seed, 10_000 + i]).integers(n_cands, size=n_units)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class RefWorld:
    """One unit in one world: candidate indices of every variable and the scores of every variable."""

    values: dict[str, int]
    scores: dict[str, np.ndarray]


class ReferenceSDSCM:
    """One dataset (seed, N units) re-derived unit by unit from the documented rules."""

    def __init__(
        self,
        family: Family,
        model: Any,
        tokenizer: Any,
        seed: int,
        n_units: int,
        scoring: str = "sum",
        temperature: float = 1.0,
        interventions: Sequence[tuple[str, str]] = (),
        randomized: Sequence[str] = (),
    ) -> None:
        if scoring not in ("sum", "mean"):
            raise ValueError(scoring)
        self.family, self.model, self.tokenizer = family, model, tokenizer
        self.seed, self.n_units, self.scoring = seed, n_units, scoring
        self.vars: dict[str, Variable] = {v.name: v for v in family.variables}
        self.order = topological_order(family)
        rank = {v: k for k, v in enumerate(self.order)}
        self.parents = {v: sorted(self.vars[v].parents, key=rank.__getitem__) for v in self.order}
        chosen = phrasing_indices(family, seed)
        self.phrasing = {v: self.vars[v].phrasings[chosen[v]] for v in self.order}
        self.phrasing_index = chosen
        self.temperature = {
            v: temperature if self.vars[v].temperature is None else self.vars[v].temperature
            for v in self.order
        }
        self.noise = {v: noise_of(family, v, seed, n_units) for v in self.order}
        self.fixed: dict[str, np.ndarray] = {}
        for var, value in interventions:
            self.fixed[var] = np.full(n_units, self.vars[var].candidates.index(value))
        for var in randomized:
            self.fixed[var] = rct_assignment(family, var, seed, n_units)
        self.randomized = set(randomized)
        self.treatment = family.treatment.variable
        self.outcome = family.outcome.variable
        self.t_indices = [
            self.vars[self.treatment].candidates.index(family.treatment.control),
            self.vars[self.treatment].candidates.index(family.treatment.treated),
        ]
        self.downstream = descendants(family, self.treatment)
        self._scores: dict[tuple[str, str], float] = {}
        self.forwards = 0

    # --- scoring: plain transformers, one sequence at a time --------------------------------------
    def score(self, context: str, candidate: str) -> float:
        key = (context, candidate)
        if key not in self._scores:
            self._scores[key] = reference_score(self.model, self.tokenizer, context, candidate, self.scoring)
            self.forwards += 1
        return self._scores[key]

    def context(self, var: str, values: dict[str, int]) -> str:
        parts = [self.phrasing[p].render(self.vars[p].candidates[values[p]]) for p in self.parents[var]]
        return self.family.separator.join([*parts, self.phrasing[var].prefix])

    def scores_of(self, var: str, values: dict[str, int]) -> np.ndarray:
        ctx = self.context(var, values)
        return np.array([self.score(ctx, c) for c in self.vars[var].candidates])

    def probabilities(self, var: str, values: dict[str, int]) -> np.ndarray:
        """The domain-restricted softmax the value is drawn from, given its parents' values."""
        return softmax(self.scores_of(var, values) / self.temperature[var])

    # --- worlds --------------------------------------------------------------------------------
    def _world(self, u: int, held: dict[str, int]) -> RefWorld:
        values: dict[str, int] = {}
        scores: dict[str, np.ndarray] = {}
        for var in self.order:
            if var in held:
                values[var] = held[var]
                continue
            sc = scores[var] = self.scores_of(var, values)
            if var in self.fixed:
                values[var] = int(self.fixed[var][u])
            else:
                values[var] = int(np.argmax(sc / self.temperature[var] + self.noise[var][u]))
        return RefWorld(values, scores)

    def unit(self, u: int) -> tuple[RefWorld, dict[int, RefWorld]]:
        """The factual world and do(T=t) for t in (control, treated): same noise, descendants redrawn."""
        factual = self._world(u, {})
        worlds = {}
        for t in self.t_indices:
            held = {
                v: factual.values[v] for v in self.order if v not in self.downstream and v != self.treatment
            }
            worlds[t] = self._world(u, held | {self.treatment: t})
            # T is held in this world: its scores are those of its (held) parents' context, as factual.
            worlds[t].scores[self.treatment] = factual.scores[self.treatment]
        return factual, worlds

    def table(self) -> pd.DataFrame:
        """The dataset columns as README's "Dataset table" names them, from the documented rules."""
        treat, outc = self.treatment, self.outcome
        t_cands = self.vars[treat].candidates
        rows = []
        for u in range(self.n_units):
            factual, worlds = self.unit(u)
            row: dict[str, float] = {v: factual.values[v] for v in self.order}
            for t, world in worlds.items():
                suffix = f"|do({treat}={t_cands[t]})"
                for v in self.order:
                    if v in self.downstream:
                        row[v + suffix] = world.values[v]
                for k, s in enumerate(world.scores[outc]):
                    row[f"logp:{outc}={k}{suffix}"] = s
            for k, s in enumerate(factual.scores[treat]):
                row[f"logp:{treat}={k}"] = s
            for k, s in enumerate(factual.scores[outc]):
                row[f"logp:{outc}={k}"] = s
            control, treated = self.t_indices
            ft = factual.values[treat]
            row["t"] = 1 if ft == treated else 0 if ft == control else -1
            row["propensity"] = self._propensity(u, factual)
            row["y"] = self._y(factual)
            row["y0"] = self._y(worlds[control])
            row["y1"] = self._y(worlds[treated])
            row["ite"] = row["y1"] - row["y0"]
            rows.append(row)
        return pd.DataFrame(rows)

    def _propensity(self, u: int, factual: RefWorld) -> float:
        """README's propensity table: RCT 1/#candidates, do(T) an indicator, else the softmax."""
        treat, treated = self.treatment, self.t_indices[1]
        if treat in self.randomized:
            return 1.0 / len(self.vars[treat].candidates)
        if treat in self.fixed:
            return float(self.fixed[treat][u] == treated)
        return float(softmax(factual.scores[treat] / self.temperature[treat])[treated])

    def _y(self, world: RefWorld) -> float:
        out = self.family.outcome
        k = self.vars[out.variable].candidates.index(out.candidate)
        sc = world.scores[out.variable]
        if out.definition == "score":
            return float(sc[k])
        if out.definition == "probability":
            return float(softmax(sc / self.temperature[out.variable])[k])
        return float(world.values[out.variable] == k)


VALUE_EXACT_EXCLUDED = ("propensity", "y", "y0", "y1", "ite")


def table_mismatches(got: pd.DataFrame, expected: pd.DataFrame, atol: float = 1e-4) -> list[str]:
    """Columns where an engine table differs from the reference's: values exactly, scores to ``atol``."""
    out = [f"column {c!r} only in one table" for c in sorted(set(got.columns) ^ set(expected.columns))]
    for col in expected.columns:
        if col not in got.columns:
            continue
        a, b = got[col].to_numpy(dtype=float), expected[col].to_numpy(dtype=float)
        exact = not (col.startswith("logp:") or col in VALUE_EXACT_EXCLUDED)
        differ = a != b if exact else ~np.isclose(a, b, rtol=0, atol=atol)
        if differ.any():
            u = int(np.argmax(differ))
            out.append(
                f"{col}: {int(differ.sum())} units differ, first unit {u}: engine {a[u]} reference {b[u]}"
            )
    return out
