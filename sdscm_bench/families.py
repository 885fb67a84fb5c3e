"""Dataset families: K datasets of N units from one spec, each from its own seed, via the cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from sdscm_bench.cache import DatasetCache
from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity, load_lm
from sdscm_bench.paths import spec_dir
from sdscm_bench.spec import Family, load_family


def resolve_spec(spec: str | Path) -> Path:
    """A spec path, or the name of a shipped spec in datasets/ (e.g. ``oncology``)."""
    path = Path(spec)
    if path.exists() or path.suffix:
        return path
    for ext in (".yaml", ".yml", ".toml", ".json"):
        if (spec_dir() / f"{spec}{ext}").exists():
            return spec_dir() / f"{spec}{ext}"
    return path


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

    def family(self) -> Family:
        return load_family(resolve_spec(self.spec)).variant(self.variant)

    def dataset_seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.n_datasets)]


def load_or_generate(request: FamilyRequest, progress: bool = True) -> list[SDSCMDataset]:
    """The family's datasets, generated on a cache miss; the LM is loaded only if something is missing."""
    family = request.family()
    identity = lm_identity(request.lm, request.dtype, request.device)
    cache = DatasetCache(request.cache_dir)
    lm: LanguageModel | None = None
    total = request.n_datasets * request.n_units
    label = family.name if family.variant_name is None else f"{family.name}/{family.variant_name}"
    bar = tqdm(total=total, unit="unit", desc=f"{label} [{identity['lm']}]", disable=not progress)
    started = time.perf_counter()
    tokens_before = 0
    datasets = []
    for seed in request.dataset_seeds():
        settings = GenerationSettings(
            request.n_units,
            seed,
            family.effective_scoring(request.scoring),
            request.temperature,
            request.interventions,
            request.randomized,
        )

        def on_units(units: int, tokens: int, offset: int = tokens_before) -> None:
            bar.update(units)
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(tok_s=f"{(offset + tokens) / elapsed:,.0f}")

        def create(settings: GenerationSettings = settings, on_units=on_units) -> SDSCMDataset:
            nonlocal lm
            if lm is None:
                lm = load_lm(request.lm, request.dtype, request.device)
            return generate_dataset(family, lm, settings, on_units_done=on_units)

        dataset, hit = cache.get_or_create(family, identity, settings, create)
        if hit:
            bar.update(request.n_units)
        else:
            tokens_before += int(dataset.meta.get("tokens_computed", 0))
        dataset.meta["cache_path"] = str(cache.path(family, dataset.meta["cache_key"]))
        datasets.append(dataset)
    bar.close()
    return datasets
