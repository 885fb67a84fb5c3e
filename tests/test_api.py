"""The Python API, ``sdscm_bench.run``: the benchmark without pytest, on the shipped confounder family
with the tiny random LM (two datasets of 60 units, generated once per module into a shared cache)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import sdscm_bench
from sdscm_bench.errors import SdscmError
from sdscm_bench.lm_names import lm_key
from sdscm_bench.results_file import read_results

ESTIMATORS = ["diff_in_means", "ols_slearner"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api-cache")


def bench(cache: Path, **kwargs: Any) -> sdscm_bench.BenchmarkResult:
    args = dict(
        lms="tiny-random", family="confounder", n_datasets=2, units=60, cache_dir=cache, progress=False
    )
    return sdscm_bench.run(**({"estimators": ESTIMATORS} | args | kwargs))


def test_importing_the_package_stays_cheap() -> None:
    code = (
        "import sys, sdscm_bench; "
        "heavy = [m for m in ('torch', 'sklearn', 'econml', 'pandas', 'sdscm_bench.api') if m in sys.modules]; "
        "assert not heavy, heavy; "
        "from sdscm_bench import run; import sdscm_bench.api as api; assert run is api.run"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_writes_the_leaderboard_and_a_rerun_reuses_it(cache: Path, tmp_path: Path) -> None:
    board = tmp_path / "out" / "board.md"
    result = bench(cache, leaderboard=board)
    assert len(result.records) == 8 and result.reused == 0 and result.ok
    assert result.leaderboard == board and result.results_file == board.with_name("results.parquet")
    stored = read_results(result.results_file)
    assert len(stored["records"]) == 8
    assert stored["runs"][0]["command"].startswith(
        "sdscm_bench.run(estimators=['diff_in_means', 'ols_slearner']"
    )
    assert {r["estimator"] for r in result.records} == set(ESTIMATORS)
    assert {r["setting"] for r in result.records} == {"all covariates", "hidden confounding"}
    assert all(r["lm"] == "tiny-random" and r["family"] == "confounder" for r in result.records)
    assert "_reused" not in result.records[0]

    summary = result.summary()
    assert len(summary) == 4
    row = summary[(summary.estimator == "ols_slearner") & (summary.setting == "hidden confounding")].iloc[0]
    recs = [
        r for r in result.records if r["estimator"] == "ols_slearner" and r["setting"] == "hidden confounding"
    ]
    rmse = math.sqrt(sum((r["ate"] - r["sate"]) ** 2 for r in recs) / len(recs))
    assert row.datasets == 2 and row.failures == 0 and row.ate_rmse == pytest.approx(rmse)
    assert row.pehe_mean == pytest.approx(sum(r["pehe"] for r in recs) / 2)
    assert len(result.to_frame()) == 8
    assert {(t.lm, t.setting) for t in result.tables} == {
        ("tiny-random", "all covariates"),
        ("tiny-random", "hidden confounding"),
    }

    again = bench(cache, leaderboard=board)
    assert again.reused == 8
    key = ("estimator", "setting", "dataset")
    before = {tuple(r[k] for k in key): r["fit_seconds"] for r in result.records}
    assert {tuple(r[k] for k in key): r["fit_seconds"] for r in again.records} == before  # not refitted
    assert bench(cache, leaderboard=board, recompute=True).reused == 0


def test_write_false_reuses_but_writes_nothing(cache: Path, tmp_path: Path) -> None:
    board = tmp_path / "board.md"
    first = bench(cache, leaderboard=board, write=False, estimators="diff_in_means")
    assert first.leaderboard is None and first.results_file is None and first.reused == 0
    assert list(tmp_path.iterdir()) == []  # no leaderboard, no results file, no journal
    bench(cache, leaderboard=board, estimators="diff_in_means")
    written = board.with_name("results.parquet").read_bytes()
    second = bench(cache, leaderboard=board, write=False, estimators="diff_in_means")
    assert second.reused == 4 and board.with_name("results.parquet").read_bytes() == written


def test_compare_runs_the_gate(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = bench(cache, estimators="diff_in_means", leaderboard="base/leaderboard.md")
    baseline = base.results_file
    assert baseline == tmp_path / "base" / "results.parquet"  # relative to the current directory
    result = bench(cache, estimators="diff_in_means", compare=baseline)
    # The same adapter on the same datasets: nothing regressed; results went to the compare folder.
    assert result.gate and not result.regressions and result.ok
    assert result.results_file == tmp_path / ".sdscm-bench" / "compare" / "results.parquet"
    assert {v.estimator for v in result.gate} == {"diff_in_means"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"estimators": "no_such_thing"},
            "estimators: unknown estimator 'no_such_thing'. Available estimators: ",
        ),
        ({"settings": "nope"}, "settings: unknown setting 'nope' for LM tiny-random (family confounder)"),
        ({"n_datasets": 0}, "n_datasets: expected a positive integer, got 0"),
        ({"leaderboard": "out.txt"}, "leaderboard: expected the markdown file's path (ending in .md)"),
        ({"family": "no-such-family"}, "family: spec "),
        ({"variants": "nope"}, "variants: "),
        ({"lms": "paper-gpt5"}, "lms: unknown paper LM 'paper-gpt5'"),
        ({"fit_timeout": -1}, "fit_timeout: expected a positive number of seconds, got -1"),
        ({"dtype": "int3"}, "dtype: expected one of auto, float32, bfloat16, float16, got 'int3'"),
    ],
)
def test_bad_options_raise_one_line_usage_errors(
    cache: Path, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(sdscm_bench.BenchmarkUsageError) as info:
        bench(cache, **({"leaderboard": tmp_path / "board.md"} | kwargs))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert isinstance(info.value, SdscmError)
    assert not (tmp_path / "board.md").exists()


def test_an_unwritable_leaderboard_folder_stops_the_run_before_any_fit(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    board = tmp_path / "a-file" / "board.md"
    with pytest.raises(
        sdscm_bench.BenchmarkUsageError, match=r"^leaderboard: .*a-file.*pass another leaderboard"
    ):
        bench(cache, leaderboard=board, estimators="diff_in_means")
    assert len(bench(cache, leaderboard=board, estimators="diff_in_means", write=False).records) == 4


def test_a_local_checkpoint_runs_under_its_stable_key(cache: Path, tmp_path: Path) -> None:
    from sdscm_bench.lm import build_tiny_random_lm

    model, tokenizer = build_tiny_random_lm()
    folder = tmp_path / "models" / "tiny-local"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    key = lm_key(str(folder))
    assert key.startswith("tiny-local-") and len(key) == len("tiny-local-") + 8

    result = bench(
        cache, estimators="diff_in_means", lms=str(folder), leaderboard=tmp_path / "lb" / "board.md"
    )
    assert len(result.records) == 4 and not result.failures
    assert {r["lm"] for r in result.records} == {key}
    assert key in (tmp_path / "lb" / "board.md").read_text()
    assert read_results(result.results_file)["runs"][0]["benchmark"]["lm_paths"] == {key: str(folder)}


@pytest.mark.parametrize(
    "spec", ["confounder", "oncology", "employment", "no-such-family", "datasets/collider.yaml", "x.yaml"]
)
def test_family_names_resolve_as_the_generator_resolves_them(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan.resolve_family repeats families.resolve_spec so that planning imports no torch."""
    from sdscm_bench.families import resolve_spec
    from sdscm_bench.paths import repo_root
    from sdscm_bench.plan import resolve_family

    monkeypatch.chdir(repo_root())
    assert resolve_family(spec) == resolve_spec(spec)
    if spec in ("confounder", "employment"):
        assert resolve_family(spec).is_file()


def test_results_made_before_an_lm_fails_to_load_are_still_written(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdscm_bench.errors import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the unknown hub id fails at once, without the network
    board = tmp_path / "board.md"
    with pytest.raises(ModelLoadError, match="cannot find LM 'nobody/no-such-model'"):
        bench(cache, estimators="diff_in_means", lms="tiny-random,nobody/no-such-model", leaderboard=board)
    records = read_results(board.with_name("results.parquet"))["records"]
    assert len(records) == 4 and {r["lm"] for r in records} == {"tiny-random"}
