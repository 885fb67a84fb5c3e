"""Tests of the pytest plugin (``sdscm_bench.plugin``) through pytester runs of the package's own item module.

Runs are in-process (fast) on a tiny spec written to a temporary folder, with the tiny random LM and
two datasets of 60 units, cached once per module. The modules a run imports (torch, transformers,
the estimators) are imported before any run, because pytester drops modules first imported inside an
in-process run and torch cannot be imported twice. The xdist test runs in a subprocess.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sdscm_bench.estimators import registry
from sdscm_bench.paper_data import default_paper_data_dir
from sdscm_bench.results_file import merge_results, read_results

pytest_plugins = ["pytester"]

TOY_SPEC = """\
name: toy
description: Tiny family for the plugin tests (its words are in the tiny random LM's corpus).
separator: " "
variables:
  - name: grade
    exogenous: true
    candidates: ["low", "high"]
    phrasings: ["Levels are {value}."]
  - name: season
    exogenous: true
    candidates: ["summer", "winter"]
    phrasings: ["The season is {value}."]
  - name: therapy
    parents: [grade]
    candidates: ["started", "stopped"]
    phrasings: ["Treatment is {value}."]
  - name: result
    parents: [grade, season, therapy]
    candidates: ["positive", "negative"]
    phrasings: ["The result is {value}."]
treatment: {variable: therapy, control: stopped, treated: started}
outcome: {variable: result, definition: category, candidate: positive}
settings:
  all covariates: [grade, season]
  hidden confounding: [season]
"""

FAILING_ADAPTERS = """
import numpy as np
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class Broken(EstimatorAdapter):
    name = "broken"
    library = "numpy"

    def estimate(self, X, t, y, seed):
        raise RuntimeError("boom")


@register
class NanAte(EstimatorAdapter):
    name = "nan_ate"
    library = "numpy"

    def estimate(self, X, t, y, seed):
        return EffectEstimate(ate=float("nan"))
"""


@pytest.fixture(scope="module", autouse=True)
def _preimported() -> None:
    """Import what an in-process run imports, so pytester keeps these modules between runs."""
    import sklearn.linear_model  # noqa: F401
    import threadpoolctl  # noqa: F401
    import torch  # noqa: F401

    from sdscm_bench import families, leaderboard, lm  # noqa: F401

    registry.available()
    lm.load_lm("tiny-random", device="cpu")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The toy spec and a dataset cache shared by every run of this module (generated once)."""
    root = tmp_path_factory.mktemp("plugin")
    spec = root / "toy.yaml"
    spec.write_text(TOY_SPEC)
    return {"spec": spec, "cache": root / "cache"}


@pytest.fixture
def bench(pytester: pytest.Pytester, shared: dict[str, Path]) -> pytest.Pytester:
    """A pytester folder holding one unit test and no benchmark module: the plugin brings its own."""
    pytester.makepyfile(test_unit="def test_unit():\n    assert True\n")
    return pytester


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapters registered during a test (by a pytester conftest) vanish afterwards."""
    registry.available()
    for name in ("_decorated", "_adapters", "_unavailable"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))


def toy_args(
    shared: dict[str, Path], *extra: str, estimators: str = "diff_in_means,ols_slearner"
) -> list[str]:
    return [
        "-p",
        "sdscm_bench.plugin",
        f"--estimator={estimators}",
        "--lm=tiny-random",
        f"--family={shared['spec']}",
        "--units=60",
        "--n-datasets=2",
        f"--sdscm-cache-dir={shared['cache']}",
        *extra,
    ]


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_items_have_ids_and_k_selects_them(bench: pytest.Pytester, shared: dict[str, Path]) -> None:
    result = bench.runpytest(*toy_args(shared, "--collect-only", "-q"))
    result.stdout.fnmatch_lines(
        [
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-all_covariates]",
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-hidden_confounding]",
            "sdscm_bench/bench_items.py::test_estimator[ols_slearner-tiny-random-all_covariates]",
            "sdscm_bench/bench_items.py::test_estimator[ols_slearner-tiny-random-hidden_confounding]",
            "4 tests collected*",
        ]
    )
    selected = bench.runpytest(*toy_args(shared, "--collect-only", "-q", "-k", "ols_slearner and hidden"))
    selected.stdout.fnmatch_lines(
        [
            "sdscm_bench/bench_items.py::test_estimator[ols_slearner-tiny-random-hidden_confounding]",
            "1/4 tests collected (3 deselected)*",
        ]
    )
    assert not (bench.path / "leaderboard").exists()  # nothing ran, nothing written
    # A node id as reports print it selects its item, though the package lies outside this folder.
    node = "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-hidden_confounding]"
    by_id = bench.runpytest(*toy_args(shared, "--collect-only", "-q"), node)
    by_id.stdout.fnmatch_lines([node, "1 test collected*"])


def test_without_benchmark_mode_only_unit_tests_run(bench: pytest.Pytester) -> None:
    result = bench.runpytest("-p", "sdscm_bench.plugin", "-rs", "-v")
    result.assert_outcomes(passed=1)  # the project's own test; no benchmark placeholder
    assert "bench_items" not in result.stdout.str()
    assert not (bench.path / "leaderboard").exists()


def test_leaderboard_is_written_and_a_second_run_merges(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    first = bench.runpytest(*toy_args(shared, estimators="diff_in_means"))
    first.assert_outcomes(passed=2)
    md, js = bench.path / "leaderboard" / "leaderboard.md", bench.path / "leaderboard" / "results.parquet"
    first.stdout.fnmatch_lines([f"leaderboard: {md}  results: {js} (4 records from this run, 4 in the file)"])
    first.stdout.fnmatch_lines(["LM tiny-random · setting all covariates:", "  diff_in_means  ATE RMSE*"])

    second = bench.runpytest(*toy_args(shared, "-k", "all_covariates", estimators="ols_slearner"))
    second.assert_outcomes(passed=1, deselected=1)
    doc = read_results(js)
    assert len(doc["runs"]) == 2
    keys = {(r["estimator"], r["setting"]) for r in doc["records"]}
    assert keys == {
        ("diff_in_means", "all covariates"),
        ("diff_in_means", "hidden confounding"),
        ("ols_slearner", "all covariates"),
    }
    assert len(doc["records"]) == 6
    rec = next(r for r in doc["records"] if r["estimator"] == "ols_slearner")
    assert rec["lm"] == "tiny-random" and rec["family"] == "toy" and rec["failed"] is False
    assert rec["n_units"] > 0 and rec["fit_seconds"] >= 0 and isinstance(rec["seed"], int)
    text = md.read_text()
    assert "| diff_in_means" in text and "| ols_slearner" in text and "tiny-random" in text


def test_failing_adapter_fails_its_item_only(
    bench: pytest.Pytester, shared: dict[str, Path], isolated_registry: None
) -> None:
    bench.makeconftest(FAILING_ADAPTERS)
    result = bench.runpytest(
        *toy_args(shared, "--setting=all covariates", estimators="broken,nan_ate,diff_in_means")
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*broken-tiny-random-all_covariates: failed on 2 of 2 datasets:*",
            "toy/seed0: RuntimeError('boom')",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "nan_ate-tiny-random-all_covariates: failed on 2 of 2 datasets:",
            "toy/seed0: ValueError('ATE is not finite: nan')",
        ]
    )
    records = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    by_estimator: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_estimator.setdefault(rec["estimator"], []).append(rec)
    assert all(r["failed"] and r["error"] == "RuntimeError('boom')" for r in by_estimator["broken"])
    assert all(
        r["failed"] and r["ate"] is None and "not finite" in r["error"] for r in by_estimator["nan_ate"]
    )
    assert all(r["sate"] is not None for r in by_estimator["nan_ate"])
    assert not any(r["failed"] for r in by_estimator["diff_in_means"])
    result.stdout.fnmatch_lines(["  broken *failures 2/2"])


def test_compare_gates_against_a_baseline(bench: pytest.Pytester, shared: dict[str, Path]) -> None:
    # 4 datasets x 2 settings = 8 paired datasets: enough for the paired test to reach p < 0.01.
    args = toy_args(shared, "--n-datasets=4", estimators="diff_in_means")
    bench.runpytest(*args).assert_outcomes(passed=2)
    results = bench.path / "leaderboard" / "results.parquet"
    published = results.read_bytes()

    # The unchanged adapter on the same datasets: every paired difference is 0; the gate passes and
    # this run's results go to the compare folder, not into the baseline.
    result = bench.runpytest(*args, f"--compare={results}")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*gate passed: no estimator regressed*"])
    assert results.read_bytes() == published
    assert len(read_results(bench.path / ".sdscm-bench" / "compare" / "results.parquet")["records"]) == 8

    # Against a baseline whose ATE errors were 10x smaller this run regressed: pytest exits 1 and
    # says which metric, the baseline and new values and the test; no baseline file changes.
    doc = read_results(results)
    for rec in doc["records"]:
        rec["ate_error"] /= 10
    better = bench.path / "better.parquet"
    merge_results(better, doc["records"], doc["runs"][0])
    better_bytes = better.read_bytes()
    result = bench.runpytest(*args, f"--compare={better}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*REGRESSION diff_in_means: ATE RMSE REGRESSION: x10 of the baseline *Wilcoxon signed-rank "
            "p = 0.0039 over 8 paired datasets*tiny-random · all covariates: *items: "
            "diff_in_means-tiny-random-all_covariates, diff_in_means-tiny-random-hidden_confounding*",
            "*gate FAILED for diff_in_means: pytest exits with status 1*",
        ]
    )
    assert better.read_bytes() == better_bytes and results.read_bytes() == published

    # A run that would write into the baseline it compares against is refused.
    result = bench.runpytest(
        *args, f"--compare={results}", f"--leaderboard={results.with_name('leaderboard.md')}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*would write its results into the baseline it compares against*"])

    for rec in doc["records"]:
        rec["dataset_fingerprint"] = "other-" + rec["dataset_fingerprint"]
    unrelated = bench.path / "unrelated.parquet"
    merge_results(unrelated, doc["records"])
    result = bench.runpytest(*args, f"--compare={unrelated}")
    # Count only our warning: pytest adds PytestAssertRewriteWarnings in some installs (fresh clones).
    result.assert_outcomes(passed=2, warnings=result.parseoutcomes().get("warnings", 0))
    result.stdout.fnmatch_lines(
        ["*SdscmBenchWarning: the baseline *unrelated.parquet shares no datasets with diff_in_means-*"]
    )
    assert str(result.stdout).count("SdscmBenchWarning") == 2  # one per item


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--estimator=no_such_thing"],
            "*--estimator: unknown estimator 'no_such_thing'. Available estimators: *",
        ),
        (["--setting=nope"], "*--setting: unknown setting 'nope' for LM tiny-random (family toy)*"),
        (["--lm=paper-gpt2", "--paper-data=missing-dir"], "*--lm paper-gpt2: the paper data folder *"),
        (["--lm=paper-gpt5"], "*--lm: unknown paper LM 'paper-gpt5'*"),
        (["--compare=missing.json"], "*--compare: *missing.json: baseline results file not found*"),
        (["--family=missing.yaml"], "*--family: spec *missing.yaml not found*"),
        (["--n-datasets=0"], "*--n-datasets: expected a positive integer, got '0'*"),
        (["--leaderboard=out.txt"], "*--leaderboard: expected the markdown file's path*"),
        (["--fit-timeout=0"], "*--fit-timeout: expected a positive number of seconds, got '0'*"),
    ],
)
def test_bad_options_are_usage_errors(
    bench: pytest.Pytester, shared: dict[str, Path], extra: list[str], message: str
) -> None:
    result = bench.runpytest(*toy_args(shared, "--collect-only"), *extra)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_keys_set_the_defaults(bench: pytest.Pytester, shared: dict[str, Path]) -> None:
    shutil.copy(shared["spec"], bench.path / "toy.yaml")
    bench.makeini(
        """
        [pytest]
        sdscm_estimator = ols_slearner
        sdscm_lm = tiny-random
        sdscm_family = toy.yaml
        sdscm_setting = hidden_confounding
        sdscm_leaderboard = out/board.md
        """
    )
    result = bench.runpytest("-p", "sdscm_bench.plugin", "--benchmark", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["sdscm_bench/bench_items.py::test_estimator[ols_slearner-tiny-random-hidden_confounding]"]
    )
    plain = bench.runpytest("-p", "sdscm_bench.plugin", "-q")  # the ini list alone is not benchmark mode
    plain.assert_outcomes(passed=1)


def test_items_are_collected_whatever_name_patterns_the_project_sets(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    bench.makeini("[pytest]\npython_files = check_*.py\npython_functions = check_*\npython_classes = Check\n")
    result = bench.runpytest(*toy_args(shared, "--collect-only", "-q", estimators="diff_in_means"))
    result.stdout.fnmatch_lines(
        [
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-all_covariates]",
            "2 tests collected*",
        ]
    )


def test_records_survive_a_failed_leaderboard_write(
    bench: pytest.Pytester, shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdscm_bench import leaderboard

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(leaderboard, "write_leaderboard", refuse)
    result = bench.runpytest(*toy_args(shared, "-k", "all_covariates", estimators="diff_in_means"))
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["could not write the leaderboard: OSError('disk full')", "*were saved to *"])
    (dump,) = (bench.path / "leaderboard").glob("sdscm-results-unsaved-results-*.json")
    assert len(read_json(dump)["records"]) == 2
    result.stdout.fnmatch_lines(["*sdscm-bench merge-saved*"])


@pytest.mark.paper_data
@pytest.mark.skipif(default_paper_data_dir() is None, reason="the released paper data are not present")
def test_paper_lm_items(bench: pytest.Pytester) -> None:
    result = bench.runpytest(
        "-p", "sdscm_bench.plugin", "--estimator=diff_in_means", "--lm=paper-gpt2", "--n-datasets=1",
        "-v", "-k", "hidden", "--box-plots",
    )  # fmt: skip
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*test_estimator?diff_in_means-paper-gpt2-hidden_confounding? PASSED*"])
    assert (bench.path / "leaderboard" / "oncology_paper-gpt2_cate_r2.png").is_file()
    result.stdout.fnmatch_lines(["box plot: *paper-gpt2_cate_r2.png"])
    (rec,) = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    assert rec["lm"] == "paper-gpt2" and rec["dataset"] == "paper-gpt2/0" and rec["family"] == "oncology"


def test_xdist_workers_send_records_to_the_controller(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    pytest.importorskip("xdist")
    bench.runpytest(*toy_args(shared, estimators="diff_in_means")).assert_outcomes(passed=2)
    result = bench.runpytest_subprocess(*toy_args(shared, "-n", "2"))
    result.assert_outcomes(passed=4)  # xdist reports no deselected count from the workers
    result.stdout.fnmatch_lines(["*(8 records from this run, 8 in the file)*"])
    doc = read_results(bench.path / "leaderboard" / "results.parquet")
    assert len(doc["records"]) == 8 and len(doc["runs"]) == 2  # the workers wrote nothing themselves
    assert {r["estimator"] for r in doc["records"]} == {"diff_in_means", "ols_slearner"}


def test_split_path_option_that_hijacks_the_rootdir_is_refused(
    pytester: pytest.Pytester, shared: dict[str, Path]
) -> None:
    """`--family /elsewhere/spec.yaml` makes pytest skip the project's ini; the plugin says how to write it."""
    args = [a for a in toy_args(shared) if not a.startswith("--family")] + ["--family", str(shared["spec"])]
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*took the value of --family for a test path*--family=VALUE*"])


# ---------------------------------------------------------------------------------------------------
# Resumable, incremental runs


def reuse_line(result: pytest.RunResult) -> str:
    (line,) = [ln for ln in result.outlines if ln.startswith("results reused from earlier runs:")]
    return line


def test_a_rerun_reuses_every_stored_result(bench: pytest.Pytester, shared: dict[str, Path]) -> None:
    first = bench.runpytest(*toy_args(shared))
    first.assert_outcomes(passed=4)
    assert reuse_line(first) == "results reused from earlier runs: 0 of 8 (0.0%); computed now: 8"
    js = bench.path / "leaderboard" / "results.parquet"
    before = {
        (r["estimator"], r["dataset"], r["setting"]): r["fit_seconds"] for r in read_results(js)["records"]
    }
    assert not (bench.path / "leaderboard" / ".sdscm-journal").exists()  # merged, then compacted

    second = bench.runpytest(*toy_args(shared))
    second.assert_outcomes(passed=4)
    assert reuse_line(second) == "results reused from earlier runs: 8 of 8 (100.0%); computed now: 0"
    doc = read_results(js)
    after = {(r["estimator"], r["dataset"], r["setting"]): r["fit_seconds"] for r in doc["records"]}
    assert after == before  # the same records, not refits (fit times would differ)
    assert not any("_reused" in r for r in doc["records"])

    third = bench.runpytest(*toy_args(shared, "--recompute"))
    assert reuse_line(third).endswith("computed now: 8 (--recompute)")


def test_changing_one_adapter_reruns_that_adapter_only(
    bench: pytest.Pytester, shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench.runpytest(*toy_args(shared)).assert_outcomes(passed=4)
    js = bench.path / "leaderboard" / "results.parquet"
    old = {r["estimator"]: r["adapter_fingerprint"] for r in read_results(js)["records"]}

    # A new hyperparameter is a new adapter version (its fingerprint covers the hyperparameters).
    ols = registry.available()["ols_slearner"]
    monkeypatch.setattr(ols, "default_params", {**ols.default_params, "revision": 2})
    second = bench.runpytest(*toy_args(shared))
    second.assert_outcomes(passed=4)
    assert reuse_line(second) == "results reused from earlier runs: 4 of 8 (50.0%); computed now: 4"
    records = read_results(js)["records"]
    assert len(records) == 8
    new = {r["estimator"]: r["adapter_fingerprint"] for r in records}
    assert new["diff_in_means"] == old["diff_in_means"] and new["ols_slearner"] != old["ols_slearner"]


def test_journaled_results_of_a_killed_run_are_reused(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    """A run that dies after some fits (here: its journal survives, its results file was never written)."""
    bench.runpytest(*toy_args(shared)).assert_outcomes(passed=4)
    lb = bench.path / "leaderboard"
    records = read_results(lb / "results.parquet")["records"]
    # Simulate the kill: only the journal of the first 3 fits exists, one of them torn mid-line.
    (lb / "results.parquet").unlink()
    (lb / "leaderboard.md").unlink()
    journal = lb / ".sdscm-journal"
    journal.mkdir()
    lines = [json.dumps(r) for r in records[:3]]
    (journal / "host-1.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])

    resumed = bench.runpytest(*toy_args(shared))
    resumed.assert_outcomes(passed=4)
    resumed.stdout.fnmatch_lines(["*host-1.jsonl:3: torn journal line skipped; that result is recomputed*"])
    assert reuse_line(resumed) == "results reused from earlier runs: 2 of 8 (25.0%); computed now: 6"
    doc = read_results(lb / "results.parquet")
    assert len(doc["records"]) == 8
    by_key = {(r["estimator"], r["dataset"], r["setting"]): r for r in doc["records"]}
    for rec in records[:2]:
        assert by_key[(rec["estimator"], rec["dataset"], rec["setting"])]["fit_seconds"] == rec["fit_seconds"]
    assert not journal.exists()


SLOW_ADAPTER = """
import time
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class Sleepy(EstimatorAdapter):
    name = "sleepy"
    library = "numpy"

    def estimate(self, X, t, y, seed):
        time.sleep(0.7)
        return EffectEstimate(ate=float(y[t == 1].mean() - y[t == 0].mean()))
"""


def test_a_sigkilled_run_resumes_without_refitting(bench: pytest.Pytester, shared: dict[str, Path]) -> None:
    """Kill -9 a real run mid-way (xdist, 2 workers); the rerun refits only what no journal line holds."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("xdist")
    bench.makeconftest(SLOW_ADAPTER)
    args = toy_args(shared, "-n", "2", "--n-datasets=2", estimators="sleepy")
    args = [a for a in args if a not in ("--n-datasets=2", "-p", "sdscm_bench.plugin")]
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *args,
        "--n-datasets=6",
        "--datasets-per-item=2",
        "-p",
        "sdscm_bench.plugin",
    ]
    journal = bench.path / "leaderboard" / ".sdscm-journal"

    def journaled() -> int:
        return (
            sum(len(p.read_text().splitlines()) for p in journal.glob("*.jsonl")) if journal.exists() else 0
        )

    proc = subprocess.Popen(cmd, cwd=bench.path, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while journaled() < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = journaled()
    assert 3 <= done < 12, f"kill came too late or too early ({done} of 12 fits journaled)"
    assert not (bench.path / "leaderboard" / "results.parquet").exists()

    rerun = subprocess.run(cmd, cwd=bench.path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    expected = f"results reused from earlier runs: {done} of 12 ({100.0 * done / 12:.1f}%); computed now: {12 - done}"
    assert expected in rerun.stdout
    assert len(read_results(bench.path / "leaderboard" / "results.parquet")["records"]) == 12
    assert not journal.exists()


def test_fit_timeout_fails_a_slow_fit_and_the_run_goes_on(
    bench: pytest.Pytester, shared: dict[str, Path], isolated_registry: None
) -> None:
    bench.makeconftest(SLOW_ADAPTER)  # sleeps 0.7 s per fit
    args = toy_args(
        shared, "--setting=all covariates", "--fit-timeout=0.2", estimators="sleepy,diff_in_means"
    )
    result = bench.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*sleepy-tiny-random-all_covariates: failed on 2 of 2 datasets:*"])
    records = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    sleepy = [r for r in records if r["estimator"] == "sleepy"]
    assert len(sleepy) == 2 and all(r["failure_reason"] == "timeout" for r in sleepy)
    assert all(r["fit_seconds"] < 0.6 for r in sleepy)
    assert not any(r["failed"] for r in records if r["estimator"] == "diff_in_means")


def test_every_option_of_the_plan_has_a_flag(pytester: pytest.Pytester) -> None:
    """A usage error of sdscm_bench.plan names the plugin's flag: every option must have one, and exist."""
    import inspect

    from sdscm_bench.plan import resolve_options
    from sdscm_bench.plugin import FLAGS

    named = set(inspect.signature(resolve_options).parameters) - {"root", "base"}
    assert named - {"box_plots", "recompute", "require_quality"} == set(FLAGS)  # flags without a value
    usage = pytester.runpytest("-p", "sdscm_bench.plugin", "--help").stdout.str()
    assert all(f"{flag}=" in usage or f"{flag} " in usage for flag in FLAGS.values())


def junit_properties(path: Path) -> dict[str, dict[str, str]]:
    """Test case name -> its properties, from a JUnit XML report."""
    import xml.etree.ElementTree as ET

    cases = ET.parse(path).getroot().iter("testcase")
    return {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}


def test_junit_xml_carries_each_items_headline_metrics(
    bench: pytest.Pytester, shared: dict[str, Path], isolated_registry: None
) -> None:
    bench.makeconftest(FAILING_ADAPTERS)
    report = bench.path / "report.xml"
    # The shipped confounder family (by name): its ITEs vary, so PEHE / sd(ITE) is defined.
    args = [a for a in toy_args(shared, estimators="diff_in_means,broken") if not a.startswith("--family=")]
    args += ["--family=confounder", "--setting=all covariates", f"--junitxml={report}"]
    bench.runpytest(*args).assert_outcomes(passed=1, failed=1)
    props = junit_properties(report)
    records = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    ok = props["test_estimator[diff_in_means-tiny-random-all_covariates]"]
    recs = [r for r in records if r["estimator"] == "diff_in_means"]
    rmse = (sum((r["ate"] - r["sate"]) ** 2 for r in recs) / len(recs)) ** 0.5
    assert float(ok.pop("ate_rmse")) == pytest.approx(rmse, rel=1e-12)
    assert float(ok.pop("pehe_mean")) == pytest.approx(sum(r["pehe"] for r in recs) / 2, rel=1e-12)
    assert float(ok.pop("fit_seconds")) == pytest.approx(sum(r["fit_seconds"] for r in recs), rel=1e-12)
    covered = [r["ate_covered"] for r in recs]
    assert None not in covered and float(ok.pop("ate_coverage")) == sum(covered) / 2
    ratios = [r["pehe_sd_ite"] for r in recs]
    assert None not in ratios
    assert float(ok.pop("pehe_sd_ite_median")) == pytest.approx(sum(ratios) / 2, rel=1e-12)
    assert ok == {
        "estimator": "diff_in_means",
        "lm": "tiny-random",
        "setting": "all covariates",
        "datasets": "2",
        "failures": "0",
        "reused": "0",
        "adapter_fingerprint": recs[0]["adapter_fingerprint"],
        "library_version": str(recs[0]["library_version"]),
    }  # no ate_coverage: diff_in_means gives no interval
    broken = props["test_estimator[broken-tiny-random-all_covariates]"]
    assert broken["datasets"] == "2" and broken["failures"] == "2" and "ate_rmse" not in broken

    bench.runpytest(*args)  # a rerun reuses the stored results, and says so
    assert (
        junit_properties(report)["test_estimator[diff_in_means-tiny-random-all_covariates]"]["reused"] == "2"
    )


def test_a_local_lm_directory_gets_a_stable_id(
    bench: pytest.Pytester, shared: dict[str, Path], tmp_path: Path
) -> None:
    from sdscm_bench.lm_names import lm_key

    model = tmp_path / "mymodel"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"not really weights")
    args = [
        a
        for a in toy_args(shared, "--collect-only", "-q", "--setting=all_covariates")
        if a != "--lm=tiny-random"
    ]
    result = bench.runpytest(*args, f"--lm={model}")
    key = lm_key(str(model))
    result.stdout.fnmatch_lines(
        [f"sdscm_bench/bench_items.py::test_estimator[diff_in_means-{key}-all_covariates]"]
    )
    assert str(tmp_path) not in "".join(line for line in result.outlines if "::" in line)


def test_datasets_per_item_splits_items(bench: pytest.Pytester, shared: dict[str, Path]) -> None:
    result = bench.runpytest(*toy_args(shared, "--datasets-per-item=1", "-v", estimators="diff_in_means"))
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_estimator?diff_in_means-tiny-random-all_covariates-datasets0-0? PASSED*",
            "*test_estimator?diff_in_means-tiny-random-all_covariates-datasets1-1? PASSED*",
        ]
    )
    records = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    assert len(records) == 4 and len({(r["dataset"], r["setting"]) for r in records}) == 4


def test_a_legacy_json_results_file_is_named_with_the_migration_command(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    (bench.path / "leaderboard").mkdir()
    (bench.path / "leaderboard" / "results.json").write_text('{"records": []}')
    result = bench.runpytest(*toy_args(shared, "--collect-only"))
    result.stdout.fnmatch_lines(
        ["*results.json is a results file of the earlier JSON format*sdscm-bench migrate-results*"]
    )


def test_the_summary_names_datasets_that_violate_quality_thresholds(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    result = bench.runpytest(*toy_args(shared, estimators="diff_in_means"))
    records = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    assert all(r["data_treated_share"] is not None and r["data_sd_ite"] is not None for r in records)
    from sdscm_bench.diagnostics import DEFAULT_THRESHOLDS, RECORD_FIELDS, quality_problems

    expected = {
        f"tiny-random · {r['dataset']}: {p}"
        for r in records
        for p in quality_problems({k: r[f"data_{k}"] for k in RECORD_FIELDS}, DEFAULT_THRESHOLDS)
    }
    out = str(result.stdout)
    assert expected and all(line in out for line in expected)  # the tiny random LM's toy data are lopsided
    result.stdout.fnmatch_lines(["*sdscm-bench data quality: * of 2 datasets violate a threshold*"])


def test_variant_option_parametrizes_items_and_records_carry_the_variant(
    bench: pytest.Pytester, shared: dict[str, Path]
) -> None:
    spec = shared["spec"].with_name("toy_variants.yaml")
    spec.write_text(TOY_SPEC + "variants:\n  strong confounding:\n    temperature: {therapy: 0.05}\n")
    args = [
        f"--family={spec}" if a.startswith("--family=") else a
        for a in toy_args(shared, estimators="diff_in_means")
    ]
    collected = bench.runpytest(*args, "--variant=strong_confounding,base", "--collect-only", "-q")
    collected.stdout.fnmatch_lines(
        [
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-strong_confounding-all_covariates]",
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-strong_confounding-hidden_confounding]",
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-all_covariates]",
            "sdscm_bench/bench_items.py::test_estimator[diff_in_means-tiny-random-hidden_confounding]",
            "4 tests collected*",
        ]
    )
    default = bench.runpytest(*args, "--collect-only", "-q")  # default: the base family only
    default.stdout.fnmatch_lines(["2 tests collected*"])
    assert "strong_confounding" not in default.stdout.str()

    run = bench.runpytest(*args, "--variant=strong confounding,base", "--setting=all_covariates")
    run.assert_outcomes(passed=2)
    run.stdout.fnmatch_lines(
        ["LM tiny-random · setting all covariates:", "LM tiny-random · variant strong confounding ·*"]
    )
    records = read_results(bench.path / "leaderboard" / "results.parquet")["records"]
    by_variant: dict[Any, set[str]] = {}
    for rec in records:
        by_variant.setdefault(rec["variant"], set()).add(rec["dataset_fingerprint"])
    assert set(by_variant) == {None, "strong confounding"} and len(records) == 4
    assert not by_variant[None] & by_variant["strong confounding"]  # each variant has its own datasets
    assert {r["dataset"] for r in records if r["variant"]} == {
        "toy/strong confounding/seed0",
        "toy/strong confounding/seed1",
    }

    unknown = bench.runpytest(*args, "--variant=nope", "--collect-only")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*--variant: *variant 'nope': is not defined*'strong confounding'*base*"])
    if default_paper_data_dir() is not None:
        paper = bench.runpytest(
            "-p", "sdscm_bench.plugin", "--estimator=diff_in_means", "--lm=paper-gpt2",
            "--variant=strong_confounding", "--collect-only",
        )  # fmt: skip
        assert paper.ret == pytest.ExitCode.USAGE_ERROR
        paper.stderr.fnmatch_lines(
            ["*--variant: the released data of paper-gpt2 have no variants; drop the variants*"]
        )

    shutil.copy(spec, bench.path / "toy_variants.yaml")
    bench.makeini("[pytest]\nsdscm_variant = strong_confounding\n")
    ini = bench.runpytest(*[a for a in args if not a.startswith("--family=")], "--family=toy_variants.yaml",
                          "--collect-only", "-q")  # fmt: skip
    ini.stdout.fnmatch_lines(["*diff_in_means-tiny-random-strong_confounding-all_covariates*"])


MISSING_LIBRARY_ADAPTER = """
from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter
from sdscm_bench.estimators.registry import register


@register
class NeedsMissing(EstimatorAdapter):
    name = "needs_missing"
    library = "no-such-library"
    requires = ("no_such_module_xyz",)
    extra = "nosuch"

    def estimate(self, X, t, y, seed):
        raise AssertionError("never fitted: its library is missing")
"""


def test_all_lists_adapters_without_their_library_as_skipped_items(
    bench: pytest.Pytester, shared: dict[str, Path], isolated_registry: None
) -> None:
    """--estimator=all skips, naming the extra, what it cannot run here, instead of silently covering less."""
    bench.makeconftest(MISSING_LIBRARY_ADAPTER)
    result = bench.runpytest(*toy_args(shared, "--co", "-q", estimators="all"))
    result.stdout.fnmatch_lines(["*test_estimator?needs_missing-unavailable?*"])
    assert "needs_missing-tiny-random" not in result.stdout.str()
    result = bench.runpytest(
        *toy_args(shared, "-rs", "-k", "needs_missing or diff_in_means and all_covariates", estimators="all")
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*needs_missing: *no_such_module_xyz*pip install 'sdscm-bench?nosuch?'*"]
    )
