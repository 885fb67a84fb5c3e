"""Dataset families: K datasets of N units from one spec, each from its own seed, via the cache."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from sdscm_bench.cache import DatasetCache
from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.diagnostics import dataset_diagnostics, quality_problems, thresholds_for
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity, load_lm
from sdscm_bench.paths import resolve_spec  # noqa: F401  (re-exported: families.resolve_spec)
from sdscm_bench.spec import Family, load_family


@dataclass
class FamilyRequest:
    spec: str | Path
    lm: str = "smollm2"
    n_datasets: int = 1
    n_units: int = 100
    seed: int = 0
    dtype: str | None = "auto"
    device: str | None = "auto"
    scoring: str | None = None  # None: the spec's (or variant's) ``scoring:``, else "sum"
    temperature: float = 1.0
    cache_dir: str | Path | None = None
    interventions: tuple[tuple[str, str], ...] = ()
    randomized: tuple[str, ...] = ()
    variant: str | None = None  # a named variant of the spec (None: the base family)
    require_quality: bool = False  # redraw the seed of a dataset that violates a quality threshold
    max_redraws: int = 10

    def redraw_seed(self, slot: int, attempt: int) -> int:
        """Seed of the ``attempt``-th redraw (1, 2, ...) of dataset ``slot``: outside the base seeds, unique."""
        return self.seed + self.n_datasets * attempt + slot

    def family(self) -> Family:
        return load_family(resolve_spec(self.spec)).variant(self.variant)

    def dataset_seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.n_datasets)]


def load_or_generate(request: FamilyRequest, progress: bool = True) -> list[SDSCMDataset]:
    """The family's datasets, generated on a cache miss; the LM is loaded only if something is missing.

    Each dataset's diagnostics are checked against the family's quality thresholds; a violation is a
    :class:`DataQualityWarning` naming the dataset and the number. With ``require_quality`` a failing
    dataset's seed is redrawn (up to ``max_redraws`` times, seeds from :meth:`FamilyRequest.redraw_seed`)
    and the rejected seeds with their problems are recorded in ``meta["quality_redraws"]``. This keeps
    the family reproducible but conditions its distribution on passing the thresholds.
    """
    family = request.family()
    run = _Run(request, family, progress)
    datasets = [run.with_quality(slot, seed) for slot, seed in enumerate(request.dataset_seeds())]
    run.bar.close()
    return datasets


class DataQualityWarning(UserWarning):
    """A dataset violates a quality threshold (no overlap, near-degenerate effects or outcome ...)."""


class _Run:
    """One load_or_generate call: the cache, the LM (loaded on the first miss) and the progress bar."""

    def __init__(self, request: FamilyRequest, family: Family, progress: bool) -> None:
        self.request, self.family = request, family
        self.identity = lm_identity(request.lm, request.dtype, request.device)
        self.cache = DatasetCache(request.cache_dir)
        self.lm: LanguageModel | None = None
        label = family.name if family.variant_name is None else f"{family.name}/{family.variant_name}"
        total = request.n_datasets * request.n_units
        self.bar = tqdm(
            total=total, unit="unit", desc=f"{label} [{self.identity['lm']}]", disable=not progress
        )
        self.started = time.perf_counter()
        self.tokens_before = 0

    def with_quality(self, slot: int, base_seed: int) -> SDSCMDataset:
        """The slot's dataset, redrawn while it violates a threshold (``require_quality``), warned about."""
        request = self.request
        thresholds = thresholds_for(self.family)
        rejected: list[dict[str, Any]] = []
        seed = base_seed
        while True:
            dataset = self.one(seed)
            problems = quality_problems(dataset_diagnostics(dataset), thresholds)
            if not problems or not request.require_quality or len(rejected) >= request.max_redraws:
                break
            rejected.append({"seed": seed, "problems": problems})
            seed = request.redraw_seed(slot, len(rejected))
        if rejected:
            dataset.meta["quality_redraws"] = rejected
        note = f" (after {len(rejected)} redraws)" if rejected else ""
        for problem in problems:
            warnings.warn(DataQualityWarning(f"{dataset.name}: {problem}{note}"), stacklevel=3)
        return dataset

    def one(self, seed: int) -> SDSCMDataset:
        """One dataset through the cache (generated on a miss), advancing the progress bar."""
        request, family = self.request, self.family
        settings = GenerationSettings(
            request.n_units, seed, family.effective_scoring(request.scoring), request.temperature,
            request.interventions, request.randomized,
        )  # fmt: skip

        def on_units(units: int, tokens: int) -> None:
            self.bar.update(units)
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix(tok_s=f"{(self.tokens_before + tokens) / elapsed:,.0f}")

        def create() -> SDSCMDataset:
            if self.lm is None:
                self.lm = load_lm(request.lm, request.dtype, request.device)
            return generate_dataset(family, self.lm, settings, on_units_done=on_units)

        dataset, hit = self.cache.get_or_create(family, self.identity, settings, create)
        if hit:
            self.bar.update(request.n_units)
        else:
            self.tokens_before += int(dataset.meta.get("tokens_computed", 0))
        dataset.meta["cache_path"] = str(self.cache.path(family, dataset.meta["cache_key"]))
        return dataset
