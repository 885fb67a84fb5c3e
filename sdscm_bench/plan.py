"""The benchmark plan: the options checked and resolved, and the cases (test items) they expand to.

Shared by the Python API (:mod:`sdscm_bench.api`) and the pytest plugin. The plugin only gathers raw
values (command line > environment > ini) and turns a :class:`BenchmarkUsageError` into a
``pytest.UsageError`` naming its own flag; the API raises it as it is.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdscm_bench.errors import SdscmError
from sdscm_bench.lm_names import PAPER_PREFIX, LmRef, resolve_lm

PAPER_DATA_ENV = "SDSCM_PAPER_DATA"
CACHE_ENV = "SDSCM_BENCH_CACHE"
DEFAULT_FAMILY = "oncology"
DEFAULT_GENERATED_LM = "smollm2"
DEFAULT_N_DATASETS = 3
DEFAULT_UNITS = 100
DEFAULT_LEADERBOARD = "leaderboard/leaderboard.md"
#: With a baseline to compare against and no leaderboard path, results go here, never into the baseline.
DEFAULT_COMPARE_LEADERBOARD = ".sdscm-bench/compare/leaderboard.md"
RESULTS_NAME = "results.parquet"
DTYPES = ("auto", "float32", "bfloat16", "float16")

__all__ = ["PAPER_PREFIX", "BenchmarkUsageError", "Case", "Options", "resolve_options", "slug", "split_names"]


class BenchmarkUsageError(SdscmError):
    """A benchmark option is invalid. ``option`` is its name as :func:`sdscm_bench.run` spells it
    (``estimators``, ``n_datasets`` ...), ``subject`` the value concerned if any; the message says the fix."""

    def __init__(self, option: str, problem: str, subject: str | None = None) -> None:
        self.option, self.problem, self.subject = option, problem, subject
        super().__init__(f"{option if subject is None else f'{option} {subject}'}: {problem}")


@dataclass(frozen=True)
class Case:
    """One benchmark item: an estimator on the datasets of one LM, observing one setting's covariates."""

    estimator: str
    lm: str  # the LM's key (sdscm_bench.lm_names)
    setting: str
    start: int = 0  # the item's datasets are datasets[start:stop] (datasets per item)
    stop: int | None = None
    variant: str | None = None  # a named variant of the family; None: the base family

    @property
    def id(self) -> str:
        data = slug(self.lm) if self.variant is None else f"{slug(self.lm)}-{slug(self.variant)}"
        base = f"{self.estimator}-{data}-{slug(self.setting)}"
        return base if self.stop is None else f"{base}-datasets{self.start}-{self.stop - 1}"

    def select(self, datasets: Sequence[Any]) -> list[Any]:
        return list(datasets[self.start : self.stop])


def slug(text: str) -> str:
    """A test-id-safe form of a name (``all covariates`` -> ``all_covariates``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def split_names(values: Sequence[str] | str | None) -> list[str]:
    """Comma-separated and/or repeated values, flattened, stripped, de-duplicated in order."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


@dataclass
class Options:
    """The resolved benchmark options."""

    estimators: list[str]
    lms: list[str]  # LM keys (sdscm_bench.lm_names), in the order given
    settings: list[str]  # as given; empty means every setting of each LM's family
    family: Path
    n_datasets: int
    units: int
    paper_data: Path | None
    leaderboard_md: Path
    results_json: Path  # the results file (parquet) next to the markdown leaderboard
    compare: Path | None
    box_plots: bool
    cache_dir: Path | None
    dtype: str = "auto"
    recompute: bool = False
    require_quality: bool = False
    datasets_per_item: int = 0  # 0: one item per estimator × LM × setting
    variants: list[str] = field(default_factory=list)  # as given; empty means the base family only
    lm_refs: dict[str, LmRef] = field(default_factory=dict)  # key -> what to load
    fit_timeout: float | None = None  # seconds per fit (runner.score_dataset); None: no limit
    #: With ``all``: adapters left out because their library is missing, name -> reason (names the extra).
    unavailable: dict[str, str] = field(default_factory=dict)

    def lm_ref(self, key: str) -> LmRef:
        return self.lm_refs.get(key) or resolve_lm(key)

    def is_paper(self, key: str) -> bool:
        return self.lm_ref(key).paper

    def as_header(self) -> dict[str, Any]:
        """What the run was asked to do, for the results file's run header."""
        local = {k: r.source for k, r in self.lm_refs.items() if not r.paper and r.source != k}
        return {
            "estimators": self.estimators,
            "lms": self.lms,
            **({"lm_paths": local} if local else {}),
            "settings": self.settings or "all",
            "family": str(self.family),
            "n_datasets": self.n_datasets,
            "units": self.units,
            "paper_data": None if self.paper_data is None else str(self.paper_data),
            "compare": None if self.compare is None else str(self.compare),
            "dtype": self.dtype,
            "recompute": self.recompute,
            "variants": self.variants or None,
            "fit_timeout": self.fit_timeout,
        }


def positive_int(option: str, value: int | str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise BenchmarkUsageError(option, f"expected a positive integer, got {value!r}")
    return number


def positive_seconds(option: str, value: float | str | None) -> float | None:
    """A positive, finite number of seconds, or None (no limit) when not given."""
    if value is None or value == "":
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise BenchmarkUsageError(option, f"expected a positive number of seconds, got {value!r}")
    return seconds


def resolve_estimators(names: Sequence[str] | str | None) -> list[str]:
    """The estimator names to run: as given, ``all`` (or nothing) for every available one."""
    from sdscm_bench.estimators.registry import available, unavailable

    wanted = split_names(names)
    usable = available()
    if not wanted or "all" in wanted:
        wanted = [n for n in wanted if n != "all"] + [n for n in usable if n not in wanted]
    missing = unavailable()
    for name in wanted:
        if name in usable:
            continue
        listing = ", ".join(usable) or "(none)"
        if name in missing:
            raise BenchmarkUsageError(
                "estimators", f"{name!r} is unavailable here: {missing[name]}. Available: {listing}"
            )
        raise BenchmarkUsageError(
            "estimators", f"unknown estimator {name!r}. Available estimators: {listing} (or 'all')"
        )
    return wanted


def unavailable_under_all(names: Sequence[str] | str | None) -> dict[str, str]:
    """The adapters ``all`` leaves out (library missing), with the reason naming the extra to install.

    They become skipped items, so a run says what it did not cover instead of silently covering less.
    """
    from sdscm_bench.estimators.registry import unavailable

    wanted = split_names(names)
    return dict(sorted(unavailable().items())) if not wanted or "all" in wanted else {}


def resolve_lms(names: Sequence[str] | str | None, paper_data: Path | None, base: Path) -> list[LmRef]:
    """The LMs to run; by default both paper LMs when their data are present, else the embedded one."""
    from sdscm_bench.paper_data import PAPER_LMS

    given = split_names(names)
    if not given:
        present = [
            lm for lm in PAPER_LMS if paper_data is not None and (paper_data / f"{lm}.parquet").is_file()
        ]
        given = [PAPER_PREFIX + lm for lm in present] or [DEFAULT_GENERATED_LM]
    refs: list[LmRef] = []
    for name in given:
        try:
            ref = resolve_lm(name, base)
        except SdscmError as exc:
            raise BenchmarkUsageError("lms", str(exc), subject=name) from None
        if ref.paper:
            _check_paper_lm(ref.key, paper_data)
        if ref.key not in [r.key for r in refs]:
            refs.append(ref)
    return refs


def _check_paper_lm(lm: str, paper_data: Path | None) -> None:
    from sdscm_bench.paper_data import PAPER_LMS

    name = lm.removeprefix(PAPER_PREFIX)
    if name not in PAPER_LMS:
        known = ", ".join(PAPER_PREFIX + p for p in PAPER_LMS)
        raise BenchmarkUsageError("lms", f"unknown paper LM {lm!r}; the released data cover {known}")
    if paper_data is None or not paper_data.is_dir():
        where = paper_data if paper_data is not None else "(none found)"
        raise BenchmarkUsageError(
            "lms",
            f"the paper data folder {where} does not exist; pass the paper data path or set "
            f"{PAPER_DATA_ENV} to the folder holding {name}.parquet",
            subject=lm,
        )
    if not (paper_data / f"{name}.parquet").is_file():
        raise BenchmarkUsageError(
            "lms",
            f"{paper_data / f'{name}.parquet'} not found; pass the paper data path (or set "
            f"{PAPER_DATA_ENV}) pointing at the folder holding {name}.parquet",
            subject=lm,
        )


def resolve_family(spec: str | os.PathLike[str]) -> Path:
    """A spec path, or the name of a shipped spec (``confounder``): ``paths.resolve_spec``, which
    imports no torch, so that planning a run on the released data needs only the core install."""
    from sdscm_bench.paths import resolve_spec

    return resolve_spec(spec)


def _abs(value: str | os.PathLike[str] | None, base: Path) -> Path | None:
    if value is None or str(value) == "":
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def resolve_options(
    *,
    estimators: Sequence[str] | str | None = None,
    lms: Sequence[str] | str | None = None,
    family: str | os.PathLike[str] | None = None,
    settings: Sequence[str] | str | None = None,
    variants: Sequence[str] | str | None = None,
    n_datasets: int | str | None = None,
    units: int | str | None = None,
    datasets_per_item: int | str | None = None,
    paper_data: str | os.PathLike[str] | None = None,
    leaderboard: str | os.PathLike[str] | None = None,
    compare: str | os.PathLike[str] | None = None,
    box_plots: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: str | None = None,
    recompute: bool = False,
    require_quality: bool = False,
    fit_timeout: float | str | None = None,
    root: Path | None = None,
    base: Path | None = None,
) -> Options:
    """Check every option and fill in the defaults; a bad value raises :class:`BenchmarkUsageError`.

    Relative paths (and local LM directories) are taken relative to ``base`` (default: the current
    directory); the default leaderboard goes under ``root`` (default: ``base``). ``paper_data`` and
    ``cache_dir`` default to ``$SDSCM_PAPER_DATA`` and ``$SDSCM_BENCH_CACHE``.
    """
    from sdscm_bench.paper_data import default_paper_data_dir

    base = Path.cwd() if base is None else Path(base)
    root = base if root is None else Path(root)
    paper = _abs(paper_data, base) or default_paper_data_dir()
    spec = resolve_family(str(family) if family not in (None, "") else DEFAULT_FAMILY)
    if not spec.is_absolute() and not spec.exists():
        spec = base / spec
    baseline = _abs(compare, base)
    default_md = DEFAULT_COMPARE_LEADERBOARD if baseline is not None else DEFAULT_LEADERBOARD
    md = _abs(leaderboard, base) or root / default_md
    if md.suffix.lower() != ".md":
        raise BenchmarkUsageError(
            "leaderboard",
            f"expected the markdown file's path (ending in .md), got {md}; {RESULTS_NAME} is written next to it",
        )
    if baseline is not None and md.with_name(RESULTS_NAME).resolve() == baseline.resolve():
        raise BenchmarkUsageError(
            "compare",
            "this run would write its results into the baseline it compares against; drop the leaderboard "
            f"path (results then go to {root / DEFAULT_COMPARE_LEADERBOARD}) or pass another one",
            subject=str(baseline),
        )
    dtype = dtype or "auto"
    if dtype not in DTYPES:
        raise BenchmarkUsageError("dtype", f"expected one of {', '.join(DTYPES)}, got {dtype!r}")
    chosen = resolve_estimators(estimators)
    refs = resolve_lms(lms, paper, base)
    return Options(
        estimators=chosen,
        lms=[r.key for r in refs],
        settings=split_names(settings),
        family=spec,
        n_datasets=positive_int("n_datasets", n_datasets, DEFAULT_N_DATASETS),
        units=positive_int("units", units, DEFAULT_UNITS),
        paper_data=paper,
        leaderboard_md=md,
        results_json=md.with_name(RESULTS_NAME),
        compare=baseline,
        box_plots=bool(box_plots),
        cache_dir=_abs(cache_dir, base) or _abs(os.environ.get(CACHE_ENV, "").strip(), base),
        dtype=dtype,
        recompute=bool(recompute),
        require_quality=bool(require_quality),
        datasets_per_item=positive_int("datasets_per_item", datasets_per_item, 0),
        variants=split_names(variants),
        lm_refs={r.key: r for r in refs},
        fit_timeout=positive_seconds("fit_timeout", fit_timeout),
        unavailable=unavailable_under_all(estimators),
    )
