"""pytest plugin: benchmark causal effect estimators on SD-SCM data, one test item per estimator × LM × setting.

Usage::

    pytest --estimator=xlearner,diff_in_means --lm paper-gpt2      # benchmark mode
    pytest --benchmark -n 2                                        # every available estimator
    pytest --estimator=xlearner --compare=leaderboard/results.parquet  # regression gate, exit 1 on a regression

Benchmark mode (``--estimator`` or ``--benchmark``) collects the package's own item module
(:mod:`sdscm_bench.bench_items`) instead of the project's tests, so any project (or an empty folder)
can run the benchmark without a test file. Without it, nothing changes: ``pytest`` runs the project's
tests.

Every option also has an ini key in ``[tool.pytest.ini_options]`` (``sdscm_<option>``); precedence is
command line > environment variable (``SDSCM_PAPER_DATA``, ``SDSCM_BENCH_CACHE``) > ini > built-in default.
The ini estimator list is only the default list: benchmark mode still needs ``--estimator`` or
``--benchmark``, so that a configured project keeps running its unit tests by default.

This module is glue: options, parametrization, fixtures, hooks, the terminal summary and xdist. The
plan is :mod:`sdscm_bench.plan`, the work :mod:`sdscm_bench.session` (shared with ``sdscm_bench.run``).
At the end of the session the controller (the only writer under pytest-xdist) merges the rows into
the results file and re-renders the markdown leaderboard next to it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sdscm_bench.plan import (
    CACHE_ENV,
    DEFAULT_COMPARE_LEADERBOARD,
    DEFAULT_FAMILY,
    DEFAULT_GENERATED_LM,
    DEFAULT_LEADERBOARD,
    DEFAULT_N_DATASETS,
    DEFAULT_UNITS,
    PAPER_DATA_ENV,
    PAPER_PREFIX,
    RESULTS_NAME,
    BenchmarkUsageError,
    Case,
    Options,
)
from sdscm_bench.plan import resolve_options as plan_options
from sdscm_bench.session import BenchSession, SdscmBenchWarning

if TYPE_CHECKING:
    from sdscm_bench.dataset import SDSCMDataset

__all__ = ["PAPER_PREFIX", "BenchSession", "Case", "Options", "SdscmBenchWarning", "bench_session"]

BENCHMARK_REASON = "benchmark items run with --estimator or --benchmark"
WORKER_OUTPUT_KEY = "sdscm_bench_records"
RUN_ID_KEY = "sdscm_bench_run_id"  # sent to xdist workers so that all records of a run share one id
ITEMS_MODULE = "sdscm_bench.bench_items"
ITEMS_NODE_ID = "sdscm_bench/bench_items.py"

#: The flag of each option of :func:`sdscm_bench.plan.resolve_options`, for usage errors.
FLAGS = {
    "estimators": "--estimator",
    "lms": "--lm",
    "settings": "--setting",
    "variants": "--variant",
    "family": "--family",
    "n_datasets": "--n-datasets",
    "units": "--units",
    "datasets_per_item": "--datasets-per-item",
    "paper_data": "--paper-data",
    "leaderboard": "--leaderboard",
    "compare": "--compare",
    "cache_dir": "--sdscm-cache-dir",
    "dtype": "--dtype",
    "fit_timeout": "--fit-timeout",
}


def usage_error(exc: BenchmarkUsageError) -> pytest.UsageError:
    """The API's error, worded with the plugin's flag (``n_datasets`` -> ``--n-datasets``)."""
    flag = FLAGS.get(exc.option, exc.option)
    subject = flag if exc.subject is None else f"{flag} {exc.subject}"
    return pytest.UsageError(f"{subject}: {exc.problem}")


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
        "HF id/local path (generated with --family; a local path is named <dir>-<weights fingerprint>). "
        "Default: both paper LMs when the paper data exist, "
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
        help=f"Spec file, or the name of a shipped spec (confounder, oncology ...), for generated LMs "
        f"(default {DEFAULT_FAMILY}). "
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
        "--fit-timeout", "sdscm_fit_timeout", "string", "default --fit-timeout", metavar="SECONDS",
        help="Stop a fit that runs longer than this and record it as failed (failure_reason 'timeout'); the "
        "item fails and the run goes on. Default: no limit.",
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


def _family(config: pytest.Config) -> Path | None:
    """``--family``: a shipped name, or a path relative to where it was given (command line or ini)."""
    from sdscm_bench.plan import resolve_family

    value, base = _raw(config, "sdscm_family")
    if value is None:
        return None
    family = resolve_family(str(value))
    if not family.is_absolute() and base is not None and not family.exists():
        family = base / family
    return family


def resolve_options(config: pytest.Config) -> Options:
    """Read every option (command line > environment > ini) and check it; errors name the flag."""
    lms, lm_base = _raw(config, "sdscm_lm")
    values = {
        name: _raw(config, f"sdscm_{name}")[0]
        for name in (
            "estimator",
            "setting",
            "variant",
            "n_datasets",
            "units",
            "datasets_per_item",
            "dtype",
            "fit_timeout",
        )
    }
    flags = {
        name: bool(_raw(config, f"sdscm_{name}")[0]) for name in ("box_plots", "recompute", "require_quality")
    }
    try:
        return plan_options(
            estimators=values["estimator"],
            lms=lms,
            family=_family(config),
            settings=values["setting"],
            variants=values["variant"],
            n_datasets=values["n_datasets"],
            units=values["units"],
            datasets_per_item=values["datasets_per_item"],
            paper_data=_path(config, "sdscm_paper_data", PAPER_DATA_ENV),
            leaderboard=_path(config, "sdscm_leaderboard"),
            compare=_path(config, "sdscm_compare"),
            cache_dir=_path(config, "sdscm_cache_dir", CACHE_ENV),
            dtype=values["dtype"],
            fit_timeout=values["fit_timeout"],
            root=config.rootpath,
            base=lm_base or config.invocation_params.dir,
            **flags,
        )
    except BenchmarkUsageError as exc:
        raise usage_error(exc) from None


# ---------------------------------------------------------------------------------------------------
# Session state


@dataclass
class PluginState:
    """Per pytest process: the run id, the benchmark session (None outside benchmark mode), thread limits."""

    config: pytest.Config
    run_id: str
    session: BenchSession | None = None
    _thread_limiter: Any = None

    @property
    def enabled(self) -> bool:
        return self.session is not None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    @contextlib.contextmanager
    def visible_output(self) -> Iterator[bool]:
        """Show the generation progress bar (minutes for real LMs) through pytest's output capture."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if self.is_worker or capman is None:
            yield False
            return
        with capman.global_and_fixture_disabled():
            sys.stderr.write("\n")
            yield True

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


_STATE = pytest.StashKey[PluginState]()


def bench_session(config: pytest.Config) -> BenchSession:
    """The benchmark session of this pytest process (a usage error outside benchmark mode)."""
    session = config.stash[_STATE].session
    if session is None:
        raise pytest.UsageError(BENCHMARK_REASON)
    return session


def _state(config: pytest.Config) -> PluginState | None:
    return config.stash.get(_STATE, None)


# ---------------------------------------------------------------------------------------------------
# Hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "benchmark: an sdscm-bench benchmark item (estimator × LM × setting); run with --estimator"
    )
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(RUN_ID_KEY):
        run_id = str(workerinput[RUN_ID_KEY])
    else:
        from sdscm_bench.provenance import new_run_id

        run_id = new_run_id()
    state = PluginState(config=config, run_id=run_id)
    config.stash[_STATE] = state
    state.limit_threads()
    if not (config.getoption("sdscm_estimator") or config.getoption("sdscm_benchmark")):
        return
    _check_rootdir(config)
    session = BenchSession(resolve_options(config), run_id=run_id, progress=state.visible_output)
    try:
        # The family, settings, variants, paper data, results file and baseline; --co writes nothing.
        notices = session.prepare(check_outputs=not config.option.collectonly)
    except BenchmarkUsageError as exc:
        raise usage_error(exc) from None
    for notice in notices:
        config.issue_config_time_warning(SdscmBenchWarning(notice), stacklevel=2)
    state.session = session
    _collect_benchmark_items(config)


def items_module_path() -> Path:
    """The file of :mod:`sdscm_bench.bench_items` in the installed (or checked-out) package."""
    spec = importlib.util.find_spec(ITEMS_MODULE)
    assert spec is not None and spec.origin is not None, f"{ITEMS_MODULE} is missing from the package"
    return Path(spec.origin)


def _collect_benchmark_items(config: pytest.Config) -> None:
    """Collect the package's item module instead of the project's tests (they would all be deselected).

    Arguments that name the item module, by its path or by its node id (``sdscm_bench/bench_items.py::
    test_estimator[...]``, as reports print it, wherever the package lies), are kept, so node ids
    still select items. xdist workers run this hook too, on the controller's arguments.
    """
    module = items_module_path().resolve()
    keep = []
    for arg in config.args:
        name, sep, rest = arg.partition("::")
        path = Path(name)
        path = path if path.is_absolute() else config.invocation_params.dir / path
        if name == ITEMS_NODE_ID or (path.exists() and path.resolve() == module):
            keep.append(f"{module}{sep}{rest}")
    config.args = keep or [str(module)]
    config.args_source = pytest.Config.ArgsSource.ARGS
    # Collecting a file loads the conftest.py files of its parent folders that lie outside the rootdir's
    # ancestry. In an editable install the package sits in a checkout whose own conftest.py is then
    # imported as a non-root conftest (an error when it sets pytest_plugins). The items need no
    # conftest: stop the search at the package. pytest has no public setter; skip it if the name moved.
    if isinstance(getattr(config.pluginmanager, "_confcutdir", None), Path):
        config.pluginmanager._confcutdir = module.parent


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> pytest.Module | None:
    """Give the item module the node id ``sdscm_bench/bench_items.py`` wherever the package lies, and
    collect its item whatever name patterns the project configures.

    Outside the rootdir pytest would name it ``""`` (ids ``::test_estimator[...]``, an empty JUnit
    classname); inside, by a path through the virtual environment. One id keeps reports comparable.
    """
    state = _state(parent.config)
    if state is None or not state.enabled or module_path.resolve() != items_module_path().resolve():
        return None
    return ItemsModule.from_parent(parent, path=module_path, nodeid=ITEMS_NODE_ID)


class ItemsModule(pytest.Module):
    """The item module, collected whatever the project's ``python_functions``/``python_classes`` say."""

    def funcnamefilter(self, name: str) -> bool:
        return name == "test_estimator"

    def classnamefilter(self, name: str) -> bool:
        return False


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
    state = _state(config)
    if state is None or state.session is None:
        return None
    o = state.session.options
    data = f"sdscm-bench: LMs {', '.join(o.lms)}; {o.n_datasets} datasets per LM"
    if any(not o.is_paper(lm) for lm in o.lms):
        data += f", {o.units} units per generated dataset (family {o.family})"
        if o.variants:
            data += f", variants {', '.join(o.variants)}"
    lines = [f"sdscm-bench: estimators {', '.join(o.estimators)}", data]
    lines += [f"sdscm-bench: LM {key} is {ref.source}" for key, ref in o.lm_refs.items() if ref.source != key]
    lines.append(f"sdscm-bench: leaderboard {o.leaderboard_md}")
    if o.compare is not None:
        lines.append(f"sdscm-bench: comparing against {o.compare}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sdscm_case" not in metafunc.fixturenames:
        return
    state = _state(metafunc.config)
    argnames = ["sdscm_case", "sdscm_datasets"]
    if state is None or state.session is None:
        # Only reached when a project collects a module of its own that uses the benchmark fixtures.
        skip = pytest.mark.skip(reason=BENCHMARK_REASON)
        params = [pytest.param(None, None, marks=[skip, pytest.mark.benchmark], id="benchmark-mode-off")]
    else:
        params = [
            pytest.param(case, case.lm if case.variant is None else (case.lm, case.variant),
                         marks=pytest.mark.benchmark, id=case.id)
            for case in state.session.cases()
        ]  # fmt: skip
        # Adapters that --estimator=all / --benchmark cannot run here: one skipped item each, reason and extra.
        params += [
            pytest.param(None, None, marks=[pytest.mark.skip(reason=f"{name}: {why}"), pytest.mark.benchmark],
                         id=f"{name}-unavailable")
            for name, why in state.session.options.unavailable.items()
        ]  # fmt: skip
    # Session scope: pytest groups the items by LM (and variant) and sets their datasets up once.
    metafunc.parametrize(argnames, params, indirect=["sdscm_datasets"], scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmark mode runs the benchmark items only (e.g. not items a conftest adds)."""
    state = _state(config)
    if state is None or not state.enabled:
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
    state = _state(session.config)
    if state is None or state.session is None:
        return
    bench = state.session
    if state.is_worker:
        from sdscm_bench.store import json_default

        session.config.workeroutput[WORKER_OUTPUT_KEY] = json.dumps(bench.records, default=json_default)
        return
    bench.finish(command=shlex.join(["pytest", *sys.argv[1:]]))
    if bench.written.get("error"):
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    if any(v.regression for v in bench.gate or []) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: give each worker this run's id."""
    node.workerinput[RUN_ID_KEY] = node.config.stash[_STATE].run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect the records a worker made (sent in its workeroutput)."""
    output = getattr(node, "workeroutput", None) or {}
    payload = output.get(WORKER_OUTPUT_KEY)
    state = _state(node.config)
    if payload and state is not None and state.session is not None:
        state.session.records.extend(json.loads(payload))


# ---------------------------------------------------------------------------------------------------
# Terminal summary


def _fmt(x: Any) -> str:
    from sdscm_bench.leaderboard import fmt_number

    return fmt_number(x)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or state.session is None or state.is_worker or not state.session.records:
        return
    from sdscm_bench.metrics import aggregate

    bench, tr = state.session, terminalreporter
    tr.write_sep("-", "sdscm-bench")
    written = bench.written
    if written.get("error"):
        tr.write_line(f"could not write the leaderboard: {written['error']}", red=True)
        if written.get("dump"):
            tr.write_line(f"this run's records were saved to {written['dump']}", red=True)
            tr.write_line(
                f"merge them once the folder can be written: sdscm-bench merge-saved {written['dump']} "
                f"{bench.options.results_json}",
                red=True,
            )
        else:
            tr.write_line(written.get("saved", "this run's records could not be saved"), red=True)
    else:
        tr.write_line(
            f"leaderboard: {written['md']}  results: {written['json']} "
            f"({len(bench.records)} records from this run, {written['n_total']} in the file)"
        )
        for plot in written.get("plots", []):
            tr.write_line(f"box plot: {plot}")
    reused = bench.reused_count()
    total = len(bench.records)
    tr.write_line(
        f"results reused from earlier runs: {reused} of {total} ({100.0 * reused / total:.1f}%); "
        f"computed now: {total - reused}" + (" (--recompute)" if bench.options.recompute else "")
    )
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for rec in bench.records:
        key = (rec["lm"], rec.get("variant") or "", rec["setting"])
        groups.setdefault(key, {}).setdefault(rec["estimator"], []).append(rec)
    width = max(len(r["estimator"]) for r in bench.records)
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
    _quality_summary(tr, bench)
    _gate_summary(tr, bench)


def _gate_summary(tr: Any, bench: BenchSession) -> None:
    """The gate's verdicts: every regression in red with its numbers and items, then one line per pass."""
    if bench.gate is None:
        return
    tr.write_sep("-", f"sdscm-bench gate against {bench.options.compare}")
    if not bench.gate:
        tr.write_line("nothing to compare: the baseline shares no datasets with this run", yellow=True)
        return
    for v in bench.gate:
        if v.regression:
            items = ", ".join(Case(v.estimator, s.lm, s.setting, variant=s.variant).id for s in v.strata)
            tr.write_line(f"REGRESSION {v.message}" + (f" [items: {items}]" if items else ""), red=True)
    for v in bench.gate:
        if not v.regression:
            tr.write_line(("" if v.decided else "UNDECIDED ") + v.message, yellow=not v.decided)
    bad = sorted({v.estimator for v in bench.gate if v.regression})
    if bad:
        tr.write_line(f"gate FAILED for {', '.join(bad)}: pytest exits with status 1", red=True, bold=True)
    else:
        tr.write_line("gate passed: no estimator regressed", green=True)


def _quality_summary(tr: Any, bench: BenchSession) -> None:
    """Warn about datasets unfit to rank estimators (no overlap, degenerate effects or outcome), by name."""
    n_seen, lines = bench.quality_lines()
    if lines:
        n_bad = len({line.split(": ", 1)[0] for line in lines})
        tr.write_sep("-", f"sdscm-bench data quality: {n_bad} of {n_seen} datasets violate a threshold")
        for line in lines:
            tr.write_line(line, yellow=True)
        tr.write_line(
            "see `sdscm-bench diagnose` for every diagnostic; thresholds: the spec's `quality:` mapping"
        )
