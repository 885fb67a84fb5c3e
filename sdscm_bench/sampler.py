"""Ancestral sampling of an SD-SCM with stored exogenous noise, interventions and counterfactuals.

Each variable's structural equation is ``value = argmax(score / temperature + G)`` where
``temperature`` is the variable's own (``temperature:`` in the spec) or else the global one,
``score`` is the LM log-likelihood of each candidate after the variable's context (its
parents' text in topological order, then its own phrasing prefix) and ``G`` is the unit's
stored Gumbel noise for that variable: Gumbel-max sampling from the domain-restricted
softmax. Counterfactuals reuse the same ``G`` (abduction-action-prediction), so under
do(T = factual t) every variable keeps its factual value.

Units are processed as a tree: rows of the batched KV cache are distinct histories, each
distinct (variable, context) is scored once per batch, and a batch is split when it would
hold more than ``max_rows`` distinct contexts (rows of one forward pass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sdscm_bench.errors import InterventionError
from sdscm_bench.scoring import CandidateScorer, KVState
from sdscm_bench.spec import Family

UNSET = -1


@dataclass
class World:
    """One world: factual, or do(treatment=value) with non-descendants held and descendants resampled.

    A do(T=t) world is continued from the factual pass's cached T=t branch (``_branch_counterfactuals``),
    so its sampling starts after T: T itself is set there, never drawn.
    """

    values: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    label: str = "factual"


@dataclass(frozen=True)
class SamplerConfig:
    n_units: int
    seed: int
    temperature: float = 1.0  # global; a variable's own spec temperature wins
    max_rows: int = 64
    interventions: tuple[tuple[str, str], ...] = ()  # do(X=v) for every unit
    randomized: tuple[str, ...] = ()  # do(X ~ uniform over its candidates), per unit (an RCT)


def intervention_values(family: Family, config: SamplerConfig) -> dict[str, np.ndarray]:
    """Per-unit forced value of each intervened variable; exogenous or unknown targets are errors."""
    where = f"{family.path}"
    out: dict[str, np.ndarray] = {}
    targets = [(v, val) for v, val in config.interventions] + [(v, None) for v in config.randomized]
    for var, value in targets:
        if var not in family.by_name:
            raise InterventionError(
                f"{where}: intervention on unknown variable {var!r}; use one of {family.order()}"
            )
        spec = family.by_name[var]
        if spec.exogenous:
            raise InterventionError(f"{where}: variable {var!r} is exogenous and cannot be intervened on")
        if var in out:
            raise InterventionError(f"{where}: variable {var!r} is intervened on twice")
        if value is None:
            rng = np.random.default_rng([config.seed, 10_000 + family.variables.index(spec)])
            out[var] = rng.integers(len(spec.candidates), size=config.n_units)
        elif value not in spec.candidates:
            raise InterventionError(
                f"{where}: do({var}={value!r}): not a candidate of {var!r} {list(spec.candidates)}"
            )
        else:
            out[var] = np.full(config.n_units, spec.candidates.index(value))
    return out


def phrasing_choice(family: Family, seed: int) -> dict[str, int]:
    """One phrasing per variable per dataset, from the dataset's own seed."""
    rng = np.random.default_rng([seed, 0])
    return {v.name: int(rng.integers(len(v.phrasings))) for v in family.variables}


def gumbel_noise(family: Family, n_units: int, seed: int) -> dict[str, np.ndarray]:
    """Per-unit, per-variable exogenous noise; each variable's stream depends only on (seed, variable)."""
    noise = {}
    for i, v in enumerate(family.variables):
        rng = np.random.default_rng([seed, 1 + i])
        noise[v.name] = rng.gumbel(size=(n_units, len(v.candidates)))
    return noise


class Sampler:
    """Samples one dataset's factual world and its do(treatment=value) counterfactual worlds."""

    def __init__(
        self,
        family: Family,
        scorer: CandidateScorer,
        config: SamplerConfig,
        on_units_done: Callable[[int, int], None] | None = None,
    ) -> None:
        self.family = family
        self.scorer = scorer
        self.config = config
        self.order = family.order()
        self.vars = family.by_name
        self.rank = {name: i for i, name in enumerate(self.order)}
        self.parents = {v: sorted(self.vars[v].parents, key=self.rank.__getitem__) for v in self.order}
        self.phrasing = {
            name: self.vars[name].phrasings[i] for name, i in phrasing_choice(family, config.seed).items()
        }
        self.noise = gumbel_noise(family, config.n_units, config.seed)
        self.temperature = {v: family.temperature_of(v, config.temperature) for v in self.order}
        self.treatment = family.treatment.variable
        self.outcome = family.outcome.variable
        self.t_values = [
            family.index_of(self.treatment, family.treatment.control),
            family.index_of(self.treatment, family.treatment.treated),
        ]
        self.intervened = intervention_values(family, config)
        self.descendants = family.descendants(self.treatment)
        self.on_units_done = on_units_done or (lambda units, tokens: None)
        self.tokens_computed = 0  # tokens run through the model
        self.slots_computed = 0  # tokens plus padding
        self.factual: World | None = None
        self.counterfactual: dict[int, World] = {}

    # --- text -----------------------------------------------------------------------------
    def context(self, var: str, values: dict[str, np.ndarray], unit: int) -> str:
        parts = [self.phrasing[p].render(self.vars[p].candidates[values[p][unit]]) for p in self.parents[var]]
        parts.append(self.phrasing[var].prefix)
        return self.family.separator.join(parts)  # a root: its prefix alone

    # --- worlds ---------------------------------------------------------------------------
    def _new_world(self, label: str) -> World:
        n = self.config.n_units
        values = {v: np.full(n, UNSET, dtype=np.int64) for v in self.order}
        scores = {
            v: np.full((n, len(self.vars[v].candidates)), np.nan) for v in (self.treatment, self.outcome)
        }
        return World(values, scores, label=label)

    def run(self) -> None:
        n = self.config.n_units
        self.factual = self._new_world("factual")
        for t in self.t_values:
            self.counterfactual[t] = self._new_world(
                f"do({self.treatment}={self.vars[self.treatment].candidates[t]})"
            )
        units = np.arange(n)
        self._run(KVState.empty(1), units, np.zeros(n, dtype=np.int64), 0, self.factual)
        self._fill_identity_counterfactuals()

    def _fill_identity_counterfactuals(self) -> None:
        """Under do(T = the unit's factual t) the counterfactual world *is* the factual world."""
        fact = self.factual
        for t, world in self.counterfactual.items():
            same = fact.values[self.treatment] == t
            for v in self.order:
                world.values[v][same] = fact.values[v][same]
            world.scores[self.outcome][same] = fact.scores[self.outcome][same]
            world.scores[self.treatment][:] = fact.scores[self.treatment]

    def _forced(self, world: World, var: str, units: np.ndarray) -> np.ndarray:
        """Per-unit value a variable is held at in this world, or UNSET where it is drawn."""
        if var in self.intervened:  # fixed by the dataset-level intervention in every world
            return self.intervened[var][units]
        if world is self.factual:
            return np.full(len(units), UNSET)
        if var not in self.descendants:
            return self.factual.values[var][units]  # held at its factual value
        return np.full(len(units), UNSET)

    def _run(self, state: KVState, units: np.ndarray, rows: np.ndarray, level: int, world: World) -> None:
        post_treatment: tuple[KVState, np.ndarray, dict[int, np.ndarray]] | None = None
        finished_here = True
        while level < len(self.order):
            var = self.order[level]
            cands = self.vars[var].candidates
            forced = self._forced(world, var, units)
            record = var in world.scores
            contexts = [self.context(var, world.values, u) for u in units]
            # Distinct contexts, each with the candidates it needs scored.
            groups: dict[str, list[int]] = {}
            for pos, ctx in enumerate(contexts):
                groups.setdefault(ctx, []).append(pos)
            needs: dict[str, list[int]] = {}
            for ctx, members in groups.items():
                f = forced[members]
                needs[ctx] = (
                    list(range(len(cands))) if record or (f == UNSET).any() else sorted(set(f.tolist()))
                )
            if len(groups) > self.config.max_rows:
                self._split(state, units, rows, level, world, groups)
                finished_here = False  # the sub-batches recorded their own units
                break
            contexts_in_order = list(groups)
            tokenized = iter(
                self.scorer.tokenize.many([(ctx, cands[c]) for ctx in contexts_in_order for c in needs[ctx]])
            )
            batch = [
                (int(rows[groups[ctx][0]]), [next(tokenized) for _ in needs[ctx]])
                for ctx in contexts_in_order
            ]
            before = dict(state.stats)
            state, scores = self.scorer.extend(state, batch)
            self.tokens_computed += state.stats["tokens"] - before["tokens"]
            self.slots_computed += state.stats["slots"] - before["slots"]
            new_rows = np.empty(len(units), dtype=np.int64)
            # At the treatment, every candidate was scored: its branches are the do(T=t) worlds' rows.
            branch_rows = None
            if world is self.factual and var == self.treatment:
                branch_rows = {t: np.empty(len(units), dtype=np.int64) for t in self.t_values}
            offset = 0
            for ctx, group_scores in zip(contexts_in_order, scores, strict=True):
                members, needed = groups[ctx], needs[ctx]
                sc = np.array(group_scores) if len(needed) == len(cands) else None
                for pos in members:
                    u = units[pos]
                    if forced[pos] != UNSET:
                        value = int(forced[pos])
                    else:
                        value = int(np.argmax(sc / self.temperature[var] + self.noise[var][u]))
                    world.values[var][u] = value
                    if record:
                        world.scores[var][u] = sc
                    new_rows[pos] = offset + needed.index(value)
                    if branch_rows is not None:
                        for t, rows_t in branch_rows.items():
                            rows_t[pos] = offset + needed.index(t)
                offset += len(needed)
            if branch_rows is not None:
                post_treatment = (state, units, branch_rows)
            rows = new_rows
            level += 1
        if world is self.factual:
            if finished_here:
                self.on_units_done(len(units), self.tokens_computed)
            if post_treatment is not None:
                self._branch_counterfactuals(*post_treatment)

    def _branch_counterfactuals(self, state: KVState, units: np.ndarray, rows: dict[int, np.ndarray]) -> None:
        """Continue each do(T=t) world from the cached T=t branch, for the units whose factual T differs."""
        level = self.order.index(self.treatment) + 1
        factual_t = self.factual.values[self.treatment][units]
        held = [v for v in self.order if v not in self.descendants]
        for t, world in self.counterfactual.items():
            differ = factual_t != t
            for v in held:  # parents' text in the counterfactual world: non-descendants stay factual
                world.values[v][units] = self.factual.values[v][units]
            world.values[self.treatment][units[differ]] = t
            if differ.any():
                self._run(state, units[differ], rows[t][differ], level, world)

    def _split(self, state, units, rows, level, world, groups) -> None:
        """Run the units in sub-batches of at most ``max_rows`` distinct contexts each."""
        batch: list[int] = []
        size = 0
        for members in groups.values():
            if size == self.config.max_rows:
                self._run(state, units[batch], rows[batch], level, world)
                batch, size = [], 0
            batch.extend(members)
            size += 1
        if batch:
            self._run(state, units[batch], rows[batch], level, world)
