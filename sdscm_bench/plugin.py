"""pytest plugin: benchmark causal effect estimators on SD-SCM data, one test item per estimator × LM × setting.

Usage::

    pytest --estimator=xlearner,diff_in_means --lm paper-gpt2      # benchmark mode
    pytest --benchmark -n 2                                        # every available estimator
    pytest --estimator=xlearner --compare=leaderboard/results.parquet  # regression gate, exit 1 on a regression

Benchmark mode (``--estimator`` or ``--benchmark``) runs only the benchmark items (those marked
``benchmark``, i.e. ``tests/test_benchmark.py``); other tests are deselected. Without it, the benchmark
module yields one skipped placeholder, so a plain ``pytest`` runs the unit tests only.

Every option also has an ini key in ``[tool.pytest.ini_options]`` (``sdscm_<option>``); precedence is
command line > environment variable (``SDSCM_PAPER_DATA``, ``SDSCM_BENCH_CACHE``) > ini > built-in default.
The ini estimator list is only the default list: benchmark mode still needs ``--estimator`` or
``--benchmark``, so that a configured project keeps running its unit tests by default.

Per dataset the item fits the estimator (seed derived from the dataset's fingerprint, so the same data
always get the same seed whatever subset or order a run uses), scores it and records one row; an
estimator that raises or returns a NaN/malformed estimate gives a failed row, never a stopped session.
At the end of the session the controller (the only writer under pytest-xdist) merges the rows into the
results file and re-renders the markdown leaderboard next to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shlex
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sdscm_bench.runner import adapter_ident, dataset_fingerprint, error_text, score_dataset
from sdscm_bench.store import Journal, journal_dir, json_default, reuse_key, stored_index

if TYPE_CHECKING:
    from sdscm_bench.dataset import SDSCMDataset
    from sdscm_bench.spec import Family

BENCHMARK_REASON = "benchmark items run with --estimator or --benchmark"
PAPER_PREFIX = "paper-"
PAPER_DATA_ENV = "SDSCM_PAPER_DATA"
CACHE_ENV = "SDSCM_BENCH_CACHE"
DEFAULT_FAMILY = "oncology"
DEFAULT_GENERATED_LM = "smollm2"
DEFAULT_N_DATASETS = 3
DEFAULT_UNITS = 100
DEFAULT_LEADERBOARD = "leaderboard/leaderboard.md"
#: With --compare and no --leaderboard, results go here, never into the baseline being compared against.
DEFAULT_COMPARE_LEADERBOARD = ".sdscm-bench/compare/leaderboard.md"
RESULTS_NAME = "results.parquet"
WORKER_OUTPUT_KEY = "sdscm_bench_records"
RUN_ID_KEY = "sdscm_bench_run_id"  # sent to xdist workers so that all records of a run share one id
HEADER_PACKAGES = ("sdscm-bench", "numpy", "scikit-learn", "torch", "transformers", "pytest")
DTYPES = ("auto", "float32", "bfloat16", "float16")
REUSED_FLAG = "_reused"  # in-memory only: the record came from an earlier run; stripped before writing


class SdscmBenchWarning(UserWarning):
    """Something the benchmark user should see but that does not fail an item (e.g. nothing to compare)."""


@dataclass(frozen=True)
class Case:
    """One benchmark item: an estimator on the datasets of one LM, observing one setting's covariates."""

    estimator: str
    lm: str
    setting: str
    start: int = 0  # the item's datasets are datasets[start:stop] (--datasets-per-item)
    stop: int | None = None
    variant: str | None = None  # a named variant of the family (--variant); None: the base family

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


def _split(values: Sequence[str] | str | None) -> list[str]:
    """Comma-separated and/or repeated option values, flattened, stripped, de-duplicated in order."""
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


# ---------------------------------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sdscm-bench", "sdscm-bench: benchmark causal effect estimators")

    def add(flag: str, ini: str, ini_type: str, ini_help: str, **kwargs: Any) -> None:
        group.addoption(flag, dest=ini, **kwargs)
        parser.addini(ini, ini_help, type=ini_type, default=False if ini_type == "bool" else "")

    add(
        "--estimator", "sdscm_estimator", "string", "default estimators for --benchmark (comma-separated)",
        action="append", metavar="NAME[,NAME...]",
        help="Benchmark mode: run the benchmark items for these estimators (comma-separated or repeated; "
        "'all' for every available one). In benchmark mode ONLY benchmark items run: unit tests are "
        "deselected. Default list for --benchmark: ini sdscm_estimator, else all available.",
    )  # fmt: skip
    group.addoption(
        "--benchmark", action="store_true", default=False, dest="sdscm_benchmark",
        help="Benchmark mode with the default estimators (ini sdscm_estimator, else all available); "
        "unit tests are deselected.",
    )  # fmt: skip
    add(
        "--lm", "sdscm_lm", "string", "default --lm (comma-separated)", action="append", metavar="LM[,LM...]",
        help="Data: paper-gpt2, paper-llama-3-8b (released datasets), smollm2 (embedded), tiny-random, or an "
        "HF id/local path (generated with --family). Default: both paper LMs when the paper data exist, "
        f"else {DEFAULT_GENERATED_LM}.",
    )  # fmt: skip
    add(
        "--setting", "sdscm_setting", "string", "default --setting (comma-separated)", action="append",
        metavar="NAME[,NAME...]",
        help="Confounding settings (e.g. all_covariates, hidden_confounding; spaces or underscores). "
        "Default: every setting of the family.",
    )  # fmt: skip
    add(
        "--variant", "sdscm_variant", "string", "default --variant (comma-separated)", action="append",
        metavar="NAME[,NAME...]",
        help="Named variants of --family (its spec's 'variants:'; spaces or underscores; 'base' for the family "
        "itself) to run generated LMs on; ids read <estimator>-<lm>-<variant>-<setting>. Paper LMs have no "
        "variants. Default: the base family only.",
    )  # fmt: skip
    add(
        "--family", "sdscm_family", "string", "default --family", metavar="SPEC",
        help=f"Spec file, or a spec name in datasets/, for generated LMs (default {DEFAULT_FAMILY}). "
        "Paper LMs always use the paper's oncology family.",
    )  # fmt: skip
    add(
        "--n-datasets", "sdscm_n_datasets", "string", "default --n-datasets", metavar="K",
        help=f"Datasets per LM (default {DEFAULT_N_DATASETS}); paper LMs take the first K released ones.",
    )  # fmt: skip
    add(
        "--datasets-per-item", "sdscm_datasets_per_item", "string", "default --datasets-per-item", metavar="M",
        help="Split each estimator × LM × setting into items of M datasets (ids end in -datasetsA-B), so "
        "pytest-xdist can spread one estimator over many workers. Default: one item for all datasets.",
    )  # fmt: skip
    add(
        "--units", "sdscm_units", "string", "default --units", metavar="N",
        help=f"Units per generated dataset (default {DEFAULT_UNITS}); ignored for paper LMs.",
    )  # fmt: skip
    add(
        "--paper-data", "sdscm_paper_data", "string", f"default --paper-data (env {PAPER_DATA_ENV} wins)",
        metavar="PATH",
        help=f"Folder with gpt2.parquet and llama-3-8b.parquet (default ${PAPER_DATA_ENV}, else "
        "<repo>/../shared/sdscm-paper-data).",
    )  # fmt: skip
    add(
        "--leaderboard", "sdscm_leaderboard", "string", "default --leaderboard", metavar="PATH",
        help=f"Markdown leaderboard to write (default {DEFAULT_LEADERBOARD} under the rootdir, or "
        f"{DEFAULT_COMPARE_LEADERBOARD} with --compare); the results file goes next to it as "
        f"{RESULTS_NAME}. Rows of other runs are kept.",
    )  # fmt: skip
    add(
        "--compare", "sdscm_compare", "string", "default --compare", metavar="BASELINE",
        help="Regression gate: exit 1 when an estimator got worse than in this results file (paired by "
        "dataset; rule in sdscm_bench.gate). The baseline is never written to: without --leaderboard "
        f"this run's results go to {DEFAULT_COMPARE_LEADERBOARD} under the rootdir.",
    )  # fmt: skip
    add(
        "--box-plots", "sdscm_box_plots", "bool", "write box plots (true/false)",
        action="store_true", default=None,
        help="Also write per-dataset CATE R² / standardized PEHE box plots (PNG) next to the leaderboard.",
    )  # fmt: skip
    add(
        "--dtype", "sdscm_dtype", "string", "default --dtype", metavar="DTYPE",
        help="Weights dtype of generated LMs: auto (float32 on CPU), float32, bfloat16 or float16. "
        "Part of the datasets' cache key.",
    )  # fmt: skip
    add(
        "--recompute", "sdscm_recompute", "bool", "refit everything (true/false)",
        action="store_true", default=None,
        help="Refit every estimator on every dataset even where the results file or the journal holds a "
        "result for the same adapter fingerprint, dataset and setting (default: reuse them).",
    )  # fmt: skip
    add(
        "--require-quality", "sdscm_require_quality", "bool", "redraw failing datasets (true/false)",
        action="store_true", default=None,
        help="Generated LMs: redraw the seed of a dataset that violates the spec's quality thresholds (up to "
        "10 times; recorded in its metadata; conditions the family's distribution on passing).",
    )  # fmt: skip
    add(
        "--sdscm-cache-dir", "sdscm_cache_dir", "string", f"default --sdscm-cache-dir (env {CACHE_ENV} wins)",
        metavar="PATH",
        help=f"Cache of generated datasets and converted models (default ${CACHE_ENV}, else the user cache).",
    )  # fmt: skip


@dataclass
class Options:
    """The resolved benchmark options (command line > environment > ini > default)."""

    estimators: list[str]
    lms: list[str]
    settings: list[str]  # as given; empty means every setting of each LM's family
    family: Path
    n_datasets: int
    units: int
    paper_data: Path | None
    leaderboard_md: Path
    results_json: Path
    compare: Path | None
    box_plots: bool
    cache_dir: Path | None
    dtype: str = "auto"
    recompute: bool = False
    require_quality: bool = False
    datasets_per_item: int = 0  # 0: one item per estimator × LM × setting
    variants: list[str] = field(default_factory=list)  # as given; empty means the base family only

    def as_header(self) -> dict[str, Any]:
        """What the run was asked to do, for the results file's run header."""
        return {
            "estimators": self.estimators,
            "lms": self.lms,
            "settings": self.settings or "all",
            "family": str(self.family),
            "n_datasets": self.n_datasets,
            "units": self.units,
            "paper_data": None if self.paper_data is None else str(self.paper_data),
            "compare": None if self.compare is None else str(self.compare),
            "dtype": self.dtype,
            "recompute": self.recompute,
            "variants": self.variants or None,
        }


def _raw(config: pytest.Config, ini: str, env: str | None = None) -> tuple[Any, Path | None]:
    """The option's raw value and the directory a relative path in it is relative to."""
    value = config.getoption(ini)
    if value not in (None, [], ""):
        return value, config.invocation_params.dir
    if env and os.environ.get(env, "").strip():
        return os.environ[env].strip(), Path.cwd()
    value = config.getini(ini)
    if value not in (None, "", []):
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return value, base
    return None, None


def _path(config: pytest.Config, ini: str, env: str | None = None) -> Path | None:
    value, base = _raw(config, ini, env)
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() or base is None else base / path


def _positive_int(config: pytest.Config, ini: str, flag: str, default: int) -> int:
    value, _ = _raw(config, ini)
    if value is None:
        return default
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise pytest.UsageError(f"{flag}: expected a positive integer, got {value!r}")
    return number


def _resolve_estimators(config: pytest.Config) -> list[str]:
    from sdscm_bench.estimators.registry import available, unavailable

    value, _ = _raw(config, "sdscm_estimator")
    names = _split(value)
    usable = available()
    if not names or "all" in names:
        names = [n for n in names if n != "all"] + [n for n in usable if n not in names]
    missing = unavailable()
    for name in names:
        if name in usable:
            continue
        listing = ", ".join(usable) or "(none)"
        if name in missing:
            raise pytest.UsageError(
                f"--estimator: {name!r} is unavailable here: {missing[name]}. Available: {listing}"
            )
        raise pytest.UsageError(
            f"--estimator: unknown estimator {name!r}. Available estimators: {listing} (or 'all')"
        )
    return names


def _resolve_lms(config: pytest.Config, paper_data: Path | None) -> list[str]:
    from sdscm_bench.paper_data import PAPER_LMS

    value, _ = _raw(config, "sdscm_lm")
    lms = _split(value)
    if not lms:
        present = [
            lm for lm in PAPER_LMS if paper_data is not None and (paper_data / f"{lm}.parquet").is_file()
        ]
        return [PAPER_PREFIX + lm for lm in present] or [DEFAULT_GENERATED_LM]
    for lm in lms:
        if not lm.startswith(PAPER_PREFIX):
            continue
        name = lm.removeprefix(PAPER_PREFIX)
        if name not in PAPER_LMS:
            known = ", ".join(PAPER_PREFIX + p for p in PAPER_LMS)
            raise pytest.UsageError(f"--lm: unknown paper LM {lm!r}; the released data cover {known}")
        if paper_data is None or not paper_data.is_dir():
            where = paper_data if paper_data is not None else "(none found)"
            raise pytest.UsageError(
                f"--lm {lm}: the paper data folder {where} does not exist; pass --paper-data PATH or set "
                f"{PAPER_DATA_ENV} to the folder holding {name}.parquet"
            )
        if not (paper_data / f"{name}.parquet").is_file():
            raise pytest.UsageError(
                f"--lm {lm}: {paper_data / f'{name}.parquet'} not found; pass --paper-data PATH (or set "
                f"{PAPER_DATA_ENV}) pointing at the folder holding {name}.parquet"
            )
    return lms


def resolve_options(config: pytest.Config) -> Options:
    """Read and check every option; a bad value raises ``pytest.UsageError`` naming the option and the fix."""
    from sdscm_bench.families import resolve_spec
    from sdscm_bench.paper_data import default_paper_data_dir

    paper_data = _path(config, "sdscm_paper_data", PAPER_DATA_ENV) or default_paper_data_dir()
    family_value, family_base = _raw(config, "sdscm_family")
    spec = str(family_value) if family_value is not None else DEFAULT_FAMILY
    family = resolve_spec(spec)
    if not family.is_absolute() and family_base is not None and not family.exists():
        family = family_base / family
    compare = _path(config, "sdscm_compare")
    default_md = DEFAULT_COMPARE_LEADERBOARD if compare is not None else DEFAULT_LEADERBOARD
    md = _path(config, "sdscm_leaderboard") or config.rootpath / default_md
    if md.suffix.lower() != ".md":
        raise pytest.UsageError(
            f"--leaderboard: expected the markdown file's path (ending in .md), got {md}; "
            f"{RESULTS_NAME} is written next to it"
        )
    if compare is not None and md.with_name(RESULTS_NAME).resolve() == compare.resolve():
        raise pytest.UsageError(
            f"--compare {compare}: this run would write its results into the baseline it compares "
            f"against; drop --leaderboard (results then go to {config.rootpath / DEFAULT_COMPARE_LEADERBOARD}) "
            "or pass another --leaderboard path"
        )
    box_value, _ = _raw(config, "sdscm_box_plots")
    settings_value, _ = _raw(config, "sdscm_setting")
    variant_value, _ = _raw(config, "sdscm_variant")
    recompute_value, _ = _raw(config, "sdscm_recompute")
    require_quality_value, _ = _raw(config, "sdscm_require_quality")
    dtype_value, _ = _raw(config, "sdscm_dtype")
    dtype = str(dtype_value) if dtype_value else "auto"
    if dtype not in DTYPES:
        raise pytest.UsageError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    return Options(
        estimators=_resolve_estimators(config),
        lms=_resolve_lms(config, paper_data),
        settings=_split(settings_value),
        family=family,
        n_datasets=_positive_int(config, "sdscm_n_datasets", "--n-datasets", DEFAULT_N_DATASETS),
        units=_positive_int(config, "sdscm_units", "--units", DEFAULT_UNITS),
        paper_data=paper_data,
        leaderboard_md=md,
        results_json=md.with_name(RESULTS_NAME),
        compare=compare,
        box_plots=bool(box_value),
        cache_dir=_path(config, "sdscm_cache_dir", CACHE_ENV),
        dtype=dtype,
        recompute=bool(recompute_value),
        require_quality=bool(require_quality_value),
        datasets_per_item=_positive_int(config, "sdscm_datasets_per_item", "--datasets-per-item", 0),
        variants=_split(variant_value),
    )


# ---------------------------------------------------------------------------------------------------
# Session state


@dataclass
class BenchSession:
    """The benchmark state of one pytest process: options, cached datasets per LM and the records made."""

    config: pytest.Config
    options: Options | None  # None outside benchmark mode
    baseline: list[dict[str, Any]] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    written: dict[str, Any] = field(default_factory=dict)
    _datasets: dict[tuple[str, str | None], list[SDSCMDataset]] = field(default_factory=dict)  # (lm, variant)
    _families: dict[str, Family] = field(default_factory=dict)
    _thread_limiter: Any = None
    _journal: Journal | None = None
    _stored: dict[tuple[str, ...], dict[str, Any]] | None = None
    run_id: str = ""
    _provenance: dict[str, Any] | None = None
    gate: list[Any] | None = None  # gate.Verdict list, on the controller with --compare

    @property
    def enabled(self) -> bool:
        return self.options is not None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def _opts(self) -> Options:
        if self.options is None:
            raise pytest.UsageError(BENCHMARK_REASON)
        return self.options

    # -- what to run ------------------------------------------------------------------------------

    def family(self, lm: str, variant: str | None = None) -> Family:
        """The family an LM's datasets come from: the paper's for paper LMs, ``--family`` (or its variant)."""
        if lm not in self._families:
            from sdscm_bench.errors import SdscmError
            from sdscm_bench.paper_data import oncology_family
            from sdscm_bench.spec import load_family

            opts = self._opts()
            try:
                if lm.startswith(PAPER_PREFIX):
                    self._families[lm] = oncology_family()
                else:
                    if not opts.family.exists():
                        from sdscm_bench.paths import spec_dir

                        shipped = ", ".join(sorted(p.stem for p in spec_dir().glob("*.yaml")))
                        raise pytest.UsageError(
                            f"--family: spec {opts.family} not found; pass a spec file or the name of a spec "
                            f"in {spec_dir()} ({shipped})"
                        )
                    self._families[lm] = load_family(opts.family)
            except SdscmError as exc:
                raise pytest.UsageError(f"--family: {exc}") from None
        return self._families[lm] if variant is None else self._families[lm].variant(variant)

    def variants(self, lm: str) -> list[str | None]:
        """The variants an LM's items run on (None: the base family): ``--variant`` for generated LMs."""
        from sdscm_bench.errors import SdscmError

        opts = self._opts()
        if not opts.variants:
            return [None]
        if lm.startswith(PAPER_PREFIX):
            if all(x.startswith(PAPER_PREFIX) for x in opts.lms):
                raise pytest.UsageError(
                    f"--variant: the released data of {', '.join(opts.lms)} have no variants; drop --variant, "
                    "or add a generated LM (e.g. --lm=smollm2) whose --family spec defines them"
                )
            return [None]
        chosen: list[str | None] = []
        for want in opts.variants:
            try:
                name = self.family(lm).variant(want).variant_name
            except SdscmError as exc:
                raise pytest.UsageError(f"--variant: {exc} (or 'base' for the family itself)") from None
            if name not in chosen:
                chosen.append(name)
        return chosen

    def settings(self, lm: str) -> list[str]:
        """The family's setting names selected by ``--setting`` (matched with spaces or underscores)."""
        names = list(self.family(lm).settings)
        wanted = self._opts().settings
        if not wanted:
            return names
        chosen = []
        for want in wanted:
            match = [n for n in names if n == want or slug(n) == slug(want)]
            if not match:
                raise pytest.UsageError(
                    f"--setting: unknown setting {want!r} for LM {lm} (family {self.family(lm).name}); "
                    f"its settings are {', '.join(slug(n) for n in names)}"
                )
            chosen += [m for m in match if m not in chosen]
        return chosen

    def cases(self) -> list[Case]:
        opts = self._opts()
        per_item, n = opts.datasets_per_item, opts.n_datasets
        chunks: list[tuple[int, int | None]] = (
            [(a, min(a + per_item, n)) for a in range(0, n, per_item)]
            if per_item and per_item < n
            else [(0, None)]
        )
        return [
            Case(e, lm, s, start, stop, variant)
            for e in opts.estimators
            for lm in opts.lms
            for variant in self.variants(lm)
            for s in self.settings(lm)
            for start, stop in chunks
        ]

    def check_paper_sizes(self) -> None:
        """Fail early when a paper LM has fewer released datasets than ``--n-datasets`` asks for."""
        from sdscm_bench.paper_data import PaperDataError, paper_dataset_ids

        opts = self._opts()
        for lm in opts.lms:
            if lm.startswith(PAPER_PREFIX):
                assert opts.paper_data is not None
                try:
                    ids = paper_dataset_ids(opts.paper_data, lm.removeprefix(PAPER_PREFIX))
                except PaperDataError as exc:
                    raise pytest.UsageError(f"--lm {lm}: {exc}") from None
                if len(ids) < opts.n_datasets:
                    raise pytest.UsageError(
                        f"--n-datasets {opts.n_datasets}: {lm} has only {len(ids)} released datasets"
                    )

    # -- data -------------------------------------------------------------------------------------

    def datasets(self, lm: str, variant: str | None = None) -> list[SDSCMDataset]:
        """The LM's (and variant's) datasets, loaded or generated on first use and kept for the session."""
        if (lm, variant) not in self._datasets:
            opts = self._opts()
            if lm.startswith(PAPER_PREFIX):
                from sdscm_bench.paper_data import load_paper_dataset, paper_dataset_ids

                assert opts.paper_data is not None
                name = lm.removeprefix(PAPER_PREFIX)
                ids = paper_dataset_ids(opts.paper_data, name)[: opts.n_datasets]
                self._datasets[lm, variant] = [load_paper_dataset(opts.paper_data, name, i) for i in ids]
            else:
                from sdscm_bench.families import FamilyRequest, load_or_generate

                request = FamilyRequest(
                    spec=opts.family,
                    lm=lm,
                    n_datasets=opts.n_datasets,
                    n_units=opts.units,
                    dtype=opts.dtype,
                    cache_dir=opts.cache_dir,
                    variant=variant,
                    require_quality=opts.require_quality,
                )
                with self._visible_output() as visible:
                    self._datasets[lm, variant] = load_or_generate(request, progress=visible)
        return self._datasets[lm, variant]

    @contextlib.contextmanager
    def _visible_output(self) -> Iterator[bool]:
        """Show the generation progress bar (minutes for real LMs) through pytest's output capture."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if self.is_worker or capman is None:
            yield False
            return
        with capman.global_and_fixture_disabled():
            sys.stderr.write("\n")
            yield True

    # -- the work ---------------------------------------------------------------------------------

    def evaluate(self, case: Case, datasets: Sequence[SDSCMDataset]) -> list[dict[str, Any]]:
        """Fit and score ``case.estimator`` on every dataset; one record each, failures included."""
        from sdscm_bench.estimators.registry import available, get_adapter

        adapter = None
        try:
            adapter = get_adapter(case.estimator)
            ident = adapter_ident(adapter, case.estimator)
            setup_error = None
        except Exception as exc:  # a broken adapter class fails its rows, not the session
            cls = available().get(case.estimator)
            ident = {
                "estimator": case.estimator,
                "library": getattr(cls, "library", None),
                "library_version": None,
                "adapter_fingerprint": "unavailable",
                "versions": None,
            }
            setup_error = error_text(exc)
        ident |= {"lm": case.lm, "setting": case.setting, "variant": case.variant}
        records = []
        for ds in case.select(datasets):
            stored = self.stored_result(ident, ds) if setup_error is None else None
            if stored is not None:
                record = stored | {"variant": case.variant, REUSED_FLAG: True}
            else:
                record = score_dataset(adapter, ds, case.setting, ident, setup_error=setup_error)
                record |= self.provenance()
                self.journal().append(record)
            records.append(record)
        self.records.extend(records)
        return records

    def provenance(self) -> dict[str, Any]:
        """Run id, commit, dirty flag and machine (computed once), and the time of this record."""
        if self._provenance is None:
            from sdscm_bench.provenance import run_provenance

            self._provenance = run_provenance(self.run_id)
        from sdscm_bench.provenance import now

        return {**self._provenance, "date": now()}

    # -- reuse ------------------------------------------------------------------------------------

    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(journal_dir(self._opts().results_json))
        return self._journal

    def stored_result(self, ident: Mapping[str, Any], ds: SDSCMDataset) -> dict[str, Any] | None:
        """An earlier result for this adapter fingerprint, LM, setting and dataset, unless --recompute."""
        opts = self._opts()
        if opts.recompute:
            return None
        if self._stored is None:
            from sdscm_bench.results_file import read_results

            results = read_results(opts.results_json, missing_ok=True)["records"]
            self._stored = stored_index(results, self.journal().records())
        key = reuse_key({**ident, "dataset_fingerprint": dataset_fingerprint(ds)})
        return self._stored.get(key)

    def check_pairing(self, case: Case, records: Sequence[Mapping[str, Any]]) -> None:
        """``--compare``: warn when the baseline has none of this item's datasets (nothing to gate).

        The gate itself decides at the end of the session, over every paired dataset of an estimator
        (:mod:`sdscm_bench.gate`): one item's few datasets are too few for its paired test.
        """
        if self.baseline is None:
            return
        from sdscm_bench.gate import pair_records

        if not pair_records(self.baseline, records):
            warnings.warn(
                SdscmBenchWarning(
                    f"--compare {self._opts().compare}: the baseline shares no datasets with {case.id} "
                    "(same estimator, LM, setting and dataset fingerprint); nothing was compared"
                ),
                stacklevel=2,
            )

    # -- threads ----------------------------------------------------------------------------------

    def limit_threads(self) -> None:
        """On an xdist worker, give each worker its share of the cores (oversubscription is ~4x slower)."""
        count = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
        if not (self.is_worker and count and count.isdigit() and int(count) > 0):
            return
        n = max(1, (os.cpu_count() or 1) // int(count))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(n))  # for libraries loaded later (torch reads it on import)
        if importlib.util.find_spec("threadpoolctl") is not None:
            from threadpoolctl import threadpool_limits

            self._thread_limiter = threadpool_limits(limits=n)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)


_STATE = pytest.StashKey[BenchSession]()


def bench_session(config: pytest.Config) -> BenchSession:
    return config.stash[_STATE]


# ---------------------------------------------------------------------------------------------------
# Hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "benchmark: an sdscm-bench benchmark item (estimator × LM × setting); run with --estimator"
    )
    enabled = bool(config.getoption("sdscm_estimator") or config.getoption("sdscm_benchmark"))
    state = BenchSession(config=config, options=None)
    config.stash[_STATE] = state
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(RUN_ID_KEY):
        state.run_id = str(workerinput[RUN_ID_KEY])
    else:
        from sdscm_bench.provenance import new_run_id

        state.run_id = new_run_id()
    state.limit_threads()
    if not enabled:
        return
    _check_rootdir(config)
    state.options = resolve_options(config)
    for lm in state.options.lms:
        state.settings(lm)  # checks --family and --setting now, not at the first item
        state.variants(lm)  # and --variant
    state.check_paper_sizes()
    from sdscm_bench.results_file import ResultsFileError, read_results

    legacy = state.options.results_json.with_name("results.json")
    if not state.options.results_json.exists() and legacy.exists():
        config.issue_config_time_warning(
            SdscmBenchWarning(
                f"{legacy} is a results file of the earlier JSON format and is not read for reuse; convert it "
                f"with: sdscm-bench migrate-results {legacy} {state.options.results_json}"
            ),
            stacklevel=2,
        )
    try:
        read_results(state.options.results_json, missing_ok=True)
    except ResultsFileError as exc:
        raise pytest.UsageError(
            f"--leaderboard: {exc}; fix or move it, or pass another --leaderboard path"
        ) from None
    if state.options.compare is not None:
        from sdscm_bench.gate import BaselineError, load_baseline

        try:
            state.baseline = load_baseline(state.options.compare)
        except BaselineError as exc:
            raise pytest.UsageError(f"--compare: {exc}") from None


PATH_OPTIONS = ("--compare", "--leaderboard", "--paper-data", "--family", "--sdscm-cache-dir", "--lm")


def _check_rootdir(config: pytest.Config) -> None:
    """Refuse a run whose rootdir pytest guessed from one of our option values.

    pytest picks its rootdir and ini file before plugins register their options, so the value of
    ``--compare /elsewhere/results.parquet`` looks like a test path: the project's configuration is
    then not read and the leaderboard would land next to that path. ``--compare=/elsewhere/...``
    is read correctly.
    """
    if config.inipath is not None:
        return
    args = list(config.invocation_params.args)
    following = [*args[1:], ""]
    split = [
        a for a, nxt in zip(args, following, strict=True) if a in PATH_OPTIONS and nxt and Path(nxt).exists()
    ]
    if split:
        raise pytest.UsageError(
            f"pytest found no configuration file because it took the value of {split[0]} for a test path "
            f"(rootdir became {config.rootpath}); write the option with '=', e.g. {split[0]}=VALUE"
        )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(_STATE, None)
    if state is None or state.options is None:
        return None
    o = state.options
    data = f"sdscm-bench: LMs {', '.join(o.lms)}; {o.n_datasets} datasets per LM"
    if any(not lm.startswith(PAPER_PREFIX) for lm in o.lms):
        data += f", {o.units} units per generated dataset (family {o.family})"
        if o.variants:
            data += f", variants {', '.join(o.variants)}"
    lines = [
        f"sdscm-bench: estimators {', '.join(o.estimators)}",
        data,
        f"sdscm-bench: leaderboard {o.leaderboard_md}",
    ]
    if o.compare is not None:
        lines.append(f"sdscm-bench: comparing against {o.compare}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sdscm_case" not in metafunc.fixturenames:
        return
    state = bench_session(metafunc.config)
    argnames = ["sdscm_case", "sdscm_datasets"]
    if not state.enabled:
        skip = pytest.mark.skip(reason=BENCHMARK_REASON)
        params = [pytest.param(None, None, marks=[skip, pytest.mark.benchmark], id="benchmark-mode-off")]
    else:
        params = [
            pytest.param(case, case.lm if case.variant is None else (case.lm, case.variant),
                         marks=pytest.mark.benchmark, id=case.id)
            for case in state.cases()
        ]  # fmt: skip
    # Session scope: pytest groups the items by LM (and variant) and sets their datasets up once.
    metafunc.parametrize(argnames, params, indirect=["sdscm_datasets"], scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmark mode runs the benchmark items only."""
    if not bench_session(config).enabled:
        return
    keep, drop = [], []
    for item in items:
        (keep if item.get_closest_marker("benchmark") is not None else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def sdscm_bench(pytestconfig: pytest.Config) -> BenchSession:
    """The session's benchmark state: ``evaluate`` a case on datasets, ``check_pairing`` against --compare."""
    return bench_session(pytestconfig)


@pytest.fixture(scope="session")
def sdscm_datasets(request: pytest.FixtureRequest, sdscm_bench: BenchSession) -> list[SDSCMDataset]:
    """The datasets of one LM or (LM, variant) (``request.param``), loaded or generated once per session."""
    from sdscm_bench.errors import SdscmError

    lm = getattr(request, "param", None)
    if lm is None:
        raise pytest.UsageError("sdscm_datasets is parametrized by the sdscm_bench plugin with an LM name")
    lm, variant = lm if isinstance(lm, tuple) else (lm, None)
    try:
        return sdscm_bench.datasets(lm, variant)
    except SdscmError as exc:  # a clean one-line message (missing model, bad cache ...), no traceback
        pytest.fail(f"cannot get the datasets of LM {lm}: {exc}", pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None or not state.enabled:
        return
    if state.is_worker:
        session.config.workeroutput[WORKER_OUTPUT_KEY] = json.dumps(state.records, default=json_default)
        return
    if state.records:
        _write_outputs(state)
        if state.written.get("error"):
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    if state.baseline is not None and state.records:
        from sdscm_bench.gate import compare

        own = [{k: v for k, v in r.items() if k != REUSED_FLAG} for r in state.records]
        state.gate = compare(state.baseline, own)
        if any(v.regression for v in state.gate) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: give each worker this run's id."""
    node.workerinput[RUN_ID_KEY] = bench_session(node.config).run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the records a worker made (sent in its workeroutput)."""
    output = getattr(node, "workeroutput", None) or {}
    payload = output.get(WORKER_OUTPUT_KEY)
    if payload:
        bench_session(node.config).records.extend(json.loads(payload))


def _header_packages(records: Sequence[Mapping[str, Any]]) -> list[str]:
    libraries = sorted({str(r["library"]) for r in records if r.get("library")})
    return list(dict.fromkeys([*libraries, *HEADER_PACKAGES]))


def _write_outputs(state: BenchSession) -> None:
    """Merge the records into the results file, re-render the leaderboard and the optional box plots.

    A failure here must not lose hours of fits: the records are then dumped next to the results file.
    """
    from filelock import FileLock

    from sdscm_bench.leaderboard import box_plots, write_leaderboard
    from sdscm_bench.paths import cache_root
    from sdscm_bench.provenance import collect_header

    opts = state._opts()
    header = collect_header(
        command=shlex.join(["pytest", *sys.argv[1:]]),
        packages=_header_packages(state.records),
        run_id=state.run_id,
    )
    header["benchmark"] = opts.as_header()
    lock_dir = cache_root(opts.cache_dir) / "locks"
    lock_name = hashlib.sha256(str(opts.results_json.resolve()).encode()).hexdigest()[:16]
    own = [{k: v for k, v in r.items() if k != REUSED_FLAG} for r in state.records]
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"leaderboard-{lock_name}.lock"), timeout=600):
            journal = state.journal()
            # Journaled records of killed runs or crashed workers first; this run's own records win.
            doc = write_leaderboard(
                opts.results_json, opts.leaderboard_md, [*journal.records(), *own], header
            )
            journal.compact(doc["records"])
        state.written.update(md=opts.leaderboard_md, json=opts.results_json, n_total=len(doc["records"]))
        if opts.box_plots:
            state.written["plots"] = box_plots(doc["records"], opts.leaderboard_md.parent)
    except Exception as exc:
        dump = opts.results_json.with_name(f"results.unmerged-{os.getpid()}.json")
        with contextlib.suppress(OSError):
            dump.parent.mkdir(parents=True, exist_ok=True)
            dump.write_text(json.dumps({"runs": [header], "records": state.records}, default=json_default))
            state.written["dump"] = dump
        state.written["error"] = error_text(exc)


def _fmt(x: Any) -> str:
    from sdscm_bench.leaderboard import fmt_number

    return fmt_number(x)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.enabled or state.is_worker or not state.records:
        return
    from sdscm_bench.metrics import aggregate

    tr = terminalreporter
    tr.write_sep("-", "sdscm-bench")
    written = state.written
    if written.get("error"):
        tr.write_line(f"could not write the leaderboard: {written['error']}", red=True)
        if written.get("dump"):
            tr.write_line(f"this run's records were saved to {written['dump']}", red=True)
    else:
        tr.write_line(
            f"leaderboard: {written['md']}  results: {written['json']} "
            f"({len(state.records)} records from this run, {written['n_total']} in the file)"
        )
        for plot in written.get("plots", []):
            tr.write_line(f"box plot: {plot}")
    reused = sum(1 for r in state.records if r.get(REUSED_FLAG))
    total = len(state.records)
    tr.write_line(
        f"results reused from earlier runs: {reused} of {total} ({100.0 * reused / total:.1f}%); "
        f"computed now: {total - reused}" + (" (--recompute)" if state._opts().recompute else "")
    )
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for rec in state.records:
        key = (rec["lm"], rec.get("variant") or "", rec["setting"])
        groups.setdefault(key, {}).setdefault(rec["estimator"], []).append(rec)
    width = max(len(r["estimator"]) for r in state.records)
    for (lm, variant, setting), by_estimator in sorted(groups.items()):
        tr.write_line(f"LM {lm}" + (f" · variant {variant}" if variant else "") + f" · setting {setting}:")
        rows = []
        for estimator, recs in by_estimator.items():
            agg = aggregate(recs, n_boot=0)
            rows.append((agg["ate_rmse"] is None, agg["ate_rmse"] or 0.0, estimator, agg))
        for _, _, estimator, agg in sorted(rows):
            line = (
                f"  {estimator:<{width}}  ATE RMSE {_fmt(agg['ate_rmse']):>7}  "
                f"median PEHE/sd(ITE) {_fmt(agg['metrics']['pehe_sd_ite']['median']):>7}  "
                f"failures {agg['n_failures']}/{agg['n_datasets']}"
            )
            tr.write_line(line, red=bool(agg["n_failures"]))
    _quality_summary(tr, state)
    _gate_summary(tr, state)


def _gate_summary(tr: Any, state: BenchSession) -> None:
    """The gate's verdicts: every regression in red with its numbers and items, then one line per pass."""
    if state.gate is None:
        return
    opts = state._opts()
    tr.write_sep("-", f"sdscm-bench gate against {opts.compare}")
    if not state.gate:
        tr.write_line("nothing to compare: the baseline shares no datasets with this run", yellow=True)
        return
    for v in state.gate:
        if v.regression:
            items = ", ".join(Case(v.estimator, s.lm, s.setting, variant=s.variant).id for s in v.strata)
            tr.write_line(f"REGRESSION {v.message}" + (f" [items: {items}]" if items else ""), red=True)
    for v in state.gate:
        if not v.regression:
            tr.write_line(("" if v.decided else "UNDECIDED ") + v.message, yellow=not v.decided)
    bad = sorted({v.estimator for v in state.gate if v.regression})
    if bad:
        tr.write_line(f"gate FAILED for {', '.join(bad)}: pytest exits with status 1", red=True, bold=True)
    else:
        tr.write_line("gate passed: no estimator regressed", green=True)


def _quality_summary(tr: Any, state: BenchSession) -> None:
    """Warn about datasets unfit to rank estimators (no overlap, degenerate effects or outcome), by name."""
    from sdscm_bench.diagnostics import RECORD_FIELDS, quality_problems, thresholds_for

    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in state.records:
        seen.setdefault((str(rec["lm"]), str(rec["dataset"])), rec)
    lines = []
    for (lm, dataset), rec in sorted(seen.items()):
        diag = {k: rec.get(f"data_{k}") for k in RECORD_FIELDS}
        try:
            thresholds = thresholds_for(state.family(lm))
        except pytest.UsageError:
            thresholds = thresholds_for(None)
        lines += [f"{lm} · {dataset}: {problem}" for problem in quality_problems(diag, thresholds)]
    if lines:
        n_bad = len({line.split(": ", 1)[0] for line in lines})
        tr.write_sep("-", f"sdscm-bench data quality: {n_bad} of {len(seen)} datasets violate a threshold")
        for line in lines:
            tr.write_line(line, yellow=True)
        tr.write_line(
            "see `sdscm-bench diagnose` for every diagnostic; thresholds: the spec's `quality:` mapping"
        )
