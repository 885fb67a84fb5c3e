"""Fault injection (issue 11): each bad input or broken environment gives a clear error naming the file,
the item and the fix, nothing written earlier is lost, and no data are silently wrong.

Every test here reproduces one fault that the code before issue 11 mishandled (a traceback, an unclear
message, lost results or a hang) and checks the clear error, and that what was stored before survives.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import warnings
from pathlib import Path

import pytest
import yaml

from sdscm_bench.cache import CorruptCacheWarning, DatasetCache
from sdscm_bench.errors import CacheError, SpecError
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity
from sdscm_bench.spec import Family, load_family, parse_family

REPO = Path(__file__).resolve().parents[1]
CONFOUNDER = REPO / "datasets" / "confounder.yaml"
BASE = yaml.safe_load(CONFOUNDER.read_text())


# --- 1. an exogenous variable with parents ---------------------------------------------------------


def test_exogenous_variable_with_parents_is_a_spec_error(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    commute = next(v for v in data["variables"] if v["name"] == "commute")
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
    commute_parents = commute["parents"]
    arrival["intervenable"] = False
    family = parse_family(data, str(spec))
    assert family.by_name["arrival"].exogenous and family.by_name["commute"].parents == tuple(commute_parents)


def test_intervenable_flag_is_checked() -> None:
    data = copy.deepcopy(BASE)
    data["variables"][0]["intervenable"] = "no"
    with pytest.raises(SpecError, match=r"variable 'weather'.*'intervenable: 'no'' must be true or false"):
        parse_family(data, "spec.yaml")
    data["variables"][0]["intervenable"] = True  # weather is exogenous
    with pytest.raises(SpecError, match=r"variable 'weather'.*exogenous and 'intervenable: true'"):
        parse_family(data, "spec.yaml")


def test_oncology_keeps_the_papers_non_intervenable_variables(families: dict[str, Family]) -> None:
    """The paper's 'exogenous' variables with parents are 'intervenable: false' (same fingerprint)."""
    onc = families["oncology"]
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
