"""Naive reference generator: the paper's algorithm, unit by unit, variable by variable.

No batching across units and no reuse from variable to variable or between worlds. With
``kv_reuse=True`` (the paper's released code, and the honest baseline) each variable's context runs
once and every candidate continues from a copy of its key/value cache; with ``kv_reuse=False`` every
candidate runs with its whole context (one forward pass per candidate per unit). It uses the same phrasings,
the same stored Gumbel noise and the same exact scoring rule as the engine, so on the same
seed it must produce the same values (up to float ties) and the same scores (to ~1e-4): the
speed benchmark reports that agreement next to the timings, and a test checks it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from sdscm_bench.lm import LanguageModel
from sdscm_bench.sampler import gumbel_noise, phrasing_choice
from sdscm_bench.scoring import InPlaceTokenizer
from sdscm_bench.spec import Family


class NaiveReference:
    def __init__(
        self,
        family: Family,
        lm: LanguageModel,
        seed: int,
        n_units: int,
        mode: str = "sum",
        temperature: float = 1.0,
        kv_reuse: bool = False,
    ) -> None:
        self.family, self.lm, self.mode, self.kv_reuse = family, lm, mode, kv_reuse
        # Each variable's own temperature (spec ``temperature:``), else the global one.
        self.temperature = {v: family.temperature_of(v, temperature) for v in family.order()}
        self.order = family.order()
        self.vars = family.by_name
        rank = {v: i for i, v in enumerate(self.order)}
        self.parents = {v: sorted(self.vars[v].parents, key=rank.__getitem__) for v in self.order}
        choice = phrasing_choice(family, seed)
        self.phrasing = {v: self.vars[v].phrasings[choice[v]] for v in self.order}
        self.noise = gumbel_noise(family, n_units, seed)
        self.tokenize = InPlaceTokenizer(lm)
        self.tokens = 0

    @torch.inference_mode()
    def score(self, context: str, candidate: str) -> float:
        t = self.tokenize(context, candidate)
        ids = torch.as_tensor([t.ids], device=self.lm.device)
        self.tokens += len(t.ids)
        logp = torch.log_softmax(self.lm.model(ids).logits[0, t.cand_start - 1 : -1].float(), dim=-1)
        terms = logp.gather(1, ids[0, t.cand_start :, None])[:, 0]
        return float(terms.mean() if self.mode == "mean" else terms.sum())

    @torch.inference_mode()
    def scores_with_kv_reuse(self, context: str, candidates: Sequence[str]) -> np.ndarray:
        """Every candidate's score; the tokens all candidates share run once, each candidate's own
        tokens continue from a copy of that key/value cache (as the paper's released code does)."""
        toks = [self.tokenize(context, c) for c in candidates]
        shared = min(t.cand_start for t in toks)
        for t in toks:  # the in-place tokenisation may merge the context's last token into a candidate
            shared = min(
                shared,
                next((i for i, (a, b) in enumerate(zip(t.ids, toks[0].ids, strict=False)) if a != b), shared),
            )
        ids0 = torch.as_tensor([toks[0].ids[:shared]], device=self.lm.device)
        first = self.lm.model(ids0, use_cache=True)
        self.tokens += shared
        out = []
        for t in toks:
            rest = torch.as_tensor([t.ids[shared:]], device=self.lm.device)
            cont = self.lm.model(rest, past_key_values=copy.deepcopy(first.past_key_values), use_cache=True)
            self.tokens += rest.shape[1]
            # logits[j] predicts token shared + j: the shared run's last position, then the continuation's
            logits = torch.cat([first.logits[0, -1:], cont.logits[0, :-1]]).float()
            logp = torch.log_softmax(logits[t.cand_start - shared :], dim=-1)
            terms = logp.gather(1, torch.as_tensor(t.ids[t.cand_start :], device=self.lm.device)[:, None])[
                :, 0
            ]
            out.append(float(terms.mean() if self.mode == "mean" else terms.sum()))
        return np.array(out)

    def _unit(self, u: int, fixed: dict[str, int]) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        values: dict[str, int] = {}
        scores: dict[str, np.ndarray] = {}
        for var in self.order:
            if var in fixed:
                values[var] = fixed[var]
                if var != self.family.outcome.variable:
                    continue
            parts = [self.phrasing[p].render(self.vars[p].candidates[values[p]]) for p in self.parents[var]]
            context = self.family.separator.join([*parts, self.phrasing[var].prefix])
            if self.kv_reuse:
                sc = self.scores_with_kv_reuse(context, self.vars[var].candidates)
            else:
                sc = np.array([self.score(context, c) for c in self.vars[var].candidates])
            scores[var] = sc
            if var not in fixed:
                values[var] = int(np.argmax(sc / self.temperature[var] + self.noise[var][u]))
        return values, scores

    def unit(self, u: int) -> dict[str, object]:
        """Factual world plus do(T=control) and do(T=treated), descendants recomputed, as the paper did."""
        treat = self.family.treatment
        factual, f_scores = self._unit(u, {})
        held = {v: factual[v] for v in self.order if v not in self.family.descendants(treat.variable)}
        worlds = {}
        for name in (treat.control, treat.treated):
            t = self.vars[treat.variable].candidates.index(name)
            worlds[name] = self._unit(u, held | {treat.variable: t})
        return {"factual": (factual, f_scores), "worlds": worlds}
