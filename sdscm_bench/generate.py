"""Turn sampled worlds into a dataset table with ground truth and provenance."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata

import numpy as np
import pandas as pd

from sdscm_bench import __version__
from sdscm_bench.dataset import FORMAT_VERSION, SDSCMDataset, do_suffix, logp_column
from sdscm_bench.diagnostics import diagnose
from sdscm_bench.lm import LanguageModel
from sdscm_bench.sampler import Sampler, SamplerConfig, phrasing_choice
from sdscm_bench.scoring import CandidateScorer
from sdscm_bench.spec import Family


@dataclass(frozen=True)
class GenerationSettings:
    """Everything besides the spec and the LM that changes a generated dataset."""

    n_units: int
    seed: int
    scoring: str | None = None  # None: the spec's (or variant's) scoring, else "sum"; see resolved()
    temperature: float = 1.0  # global; a variable's own spec temperature wins
    interventions: tuple[tuple[str, str], ...] = ()  # do(X=v) applied to every unit
    randomized: tuple[str, ...] = ()  # variables set uniformly at random per unit (an RCT)

    def resolved(self, family: Family) -> GenerationSettings:
        """These settings with the effective scoring mode filled in (what the cache key holds)."""
        return replace(self, scoring=family.effective_scoring(self.scoring))

    def as_dict(self) -> dict:
        out = {
            "n_units": self.n_units,
            "seed": self.seed,
            "scoring": self.scoring,
            "temperature": self.temperature,
        }
        if self.interventions:
            out["interventions"] = [list(pair) for pair in self.interventions]
        if self.randomized:
            out["randomized"] = list(self.randomized)
        return out


def default_max_rows(lm: LanguageModel) -> int:
    """Contexts per forward pass: moderate on CPU (cache copies are memory-bound), large on a GPU."""
    return 512 if lm.device.startswith("cuda") else 32


PROPENSITY_OBSERVATIONAL = "observational softmax P(T=treated | parents)"
PROPENSITY_RANDOMISED = "randomised assignment probability"
PROPENSITY_DO = "do(T=...) indicator"


def propensity_column(sampler: Sampler) -> tuple[np.ndarray, str]:
    """P(T = treated) of each unit in the world the dataset was drawn from, and what it means.

    Observational (also under interventions on other variables, given the treatment's parents as
    sampled in that world): the domain-restricted softmax at the treatment's temperature. Under
    ``--rct T``: the assignment probability 1 / (number of treatment candidates). Under
    ``do(T = v)``: 1.0 if v is the treated value, else 0.0.
    """
    family = sampler.family
    treat = family.treatment.variable
    n_cands = len(family.by_name[treat].candidates)
    treated = sampler.t_values[1]
    n = sampler.config.n_units
    if treat in sampler.config.randomized:
        return np.full(n, 1.0 / n_cands), PROPENSITY_RANDOMISED
    if treat in sampler.intervened:
        return (sampler.intervened[treat] == treated).astype(np.float64), PROPENSITY_DO
    z = sampler.factual.scores[treat] / sampler.temperature[treat]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p[:, treated] / p.sum(axis=1), PROPENSITY_OBSERVATIONAL


def _outcome_values(family: Family, scores: np.ndarray, values: np.ndarray, temperature: float) -> np.ndarray:
    out = family.outcome
    k = family.index_of(out.variable, out.candidate)
    if out.definition == "score":
        return scores[:, k]
    if out.definition == "probability":
        z = scores / temperature
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p[:, k] / p.sum(axis=1)
    return (values == k).astype(np.float64)


def build_table(sampler: Sampler, settings: GenerationSettings | None = None) -> pd.DataFrame:
    """The dataset table of a finished sampler (temperatures come from the sampler; ``settings`` is unused)."""
    family = sampler.family
    treat, outc = family.treatment.variable, family.outcome.variable
    fact = sampler.factual
    cols: dict[str, np.ndarray] = {v.name: fact.values[v.name] for v in family.variables}
    t_cands = family.by_name[treat].candidates
    worlds = {t: (do_suffix(treat, t_cands[t]), w) for t, w in sampler.counterfactual.items()}
    for suffix, world in worlds.values():
        for v in family.order():
            if v in sampler.descendants:
                cols[v + suffix] = world.values[v]
    for k in range(len(t_cands)):
        cols[logp_column(treat, k)] = fact.scores[treat][:, k]
    for k in range(len(family.by_name[outc].candidates)):
        cols[logp_column(outc, k)] = fact.scores[outc][:, k]
        for suffix, world in worlds.values():
            cols[logp_column(outc, k, suffix)] = world.scores[outc][:, k]
    control, treated = sampler.t_values
    factual_t = fact.values[treat]
    cols["t"] = np.where(factual_t == treated, 1, np.where(factual_t == control, 0, -1))
    cols["propensity"] = propensity_column(sampler)[0]
    ys = {
        key: _outcome_values(family, w.scores[outc], w.values[outc], sampler.temperature[outc])
        for key, w in [
            ("y", fact),
            ("y0", sampler.counterfactual[control]),
            ("y1", sampler.counterfactual[treated]),
        ]
    }
    cols.update(ys)
    cols["ite"] = ys["y1"] - ys["y0"]
    return pd.DataFrame(cols)


def package_versions() -> dict[str, str]:
    out = {"sdscm-bench": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def generate_dataset(
    family: Family,
    lm: LanguageModel,
    settings: GenerationSettings,
    max_rows: int | None = None,
    on_units_done: Callable[[int, int], None] | None = None,
) -> SDSCMDataset:
    """Sample one dataset (factual + both do(treatment) worlds) of ``settings.n_units`` units."""
    start = time.perf_counter()
    settings = settings.resolved(family)
    scorer = CandidateScorer(lm, settings.scoring)
    config = SamplerConfig(
        settings.n_units, settings.seed, settings.temperature, max_rows or default_max_rows(lm),
        settings.interventions, settings.randomized,
    )  # fmt: skip
    sampler = Sampler(family, scorer, config, on_units_done)
    sampler.run()
    table = build_table(sampler, settings)
    variant = family.variant_name
    label = family.name if variant is None else f"{family.name}/{variant}"
    meta = {
        "name": f"{label}/seed{settings.seed}",
        "family": family.name,
        "variant": variant,
        "spec_fingerprint": family.fingerprint(),
        **lm.describe(),
        **settings.as_dict(),
        "variable_temperatures": {
            v: t for v, t in sampler.temperature.items() if family.by_name[v].temperature is not None
        },
        "propensity_definition": propensity_column(sampler)[1],
        "phrasings": phrasing_choice(family, settings.seed),
        "tokens_computed": sampler.tokens_computed,
        "token_slots_computed": sampler.slots_computed,
        "generation_seconds": round(time.perf_counter() - start, 3),
        "versions": package_versions(),
        "format_version": FORMAT_VERSION,
    }
    dataset = SDSCMDataset(table=table, family=family, meta=meta)
    meta["diagnostics"] = diagnose(dataset)  # stored with the dataset: is it fit to rank estimators?
    return dataset
