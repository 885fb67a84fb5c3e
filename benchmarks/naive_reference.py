"""Naive reference generator: the paper's algorithm, one forward pass per candidate per unit.

No batching, no key/value reuse, no deduplication of contexts. It uses the same phrasings,
the same stored Gumbel noise and the same exact scoring rule as the engine, so on the same
seed it must produce the same values (up to float ties) and the same scores (to ~1e-4): the
speed benchmark reports that agreement next to the timings, and a test checks it.
"""

from __future__ import annotations

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
    ) -> None:
        self.family, self.lm, self.mode = family, lm, mode
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
