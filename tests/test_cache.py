"""The dataset cache: hits and misses, what the key depends on, corruption, concurrency, atomicity."""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sdscm_bench.cache import CorruptCacheWarning, DatasetCache, dataset_key, table_bytes
from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.families import FamilyRequest, load_or_generate
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity
from sdscm_bench.spec import Family, load_family, parse_family

REPO = Path(__file__).resolve().parents[1]
CONFOUNDER = REPO / "datasets" / "confounder.yaml"

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class CountingCreate:
    """A create function that generates with the tiny model and counts its calls."""

    def __init__(self, family: Family, lm: LanguageModel, settings: GenerationSettings) -> None:
        self.family, self.lm, self.settings = family, lm, settings
        self.calls = 0

    def __call__(self) -> SDSCMDataset:
        self.calls += 1
        return generate_dataset(self.family, self.lm, self.settings)


@pytest.fixture(scope="module")
def identity() -> dict[str, str]:
    return lm_identity("tiny-random", "float32", "cpu")


@pytest.fixture
def family() -> Family:
    return load_family(CONFOUNDER)


def tmp_dirs(root: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes (``<key>.tmp-<pid>``)."""
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def data_file(cache: DatasetCache, ds: SDSCMDataset) -> Path:
    return cache.path(ds.family, ds.meta["cache_key"]) / "data.parquet"


def test_miss_then_hit(tmp_path: Path, tiny_lm: LanguageModel, family: Family, identity: dict) -> None:
    cache = DatasetCache(tmp_path)
    settings = GenerationSettings(12, seed=1)
    create = CountingCreate(family, tiny_lm, settings)
    first, hit1 = cache.get_or_create(family, identity, settings, create)
    second, hit2 = cache.get_or_create(family, identity, settings, create)
    assert (hit1, hit2, create.calls) == (False, True, 1)
    assert table_bytes(first.table) == table_bytes(second.table)
    assert table_bytes(second.table) == table_bytes(generate_dataset(family, tiny_lm, settings).table)
    assert second.meta["cache_key"] == first.meta["cache_key"]
    assert data_file(cache, second).exists()
    # A fresh cache object on the same directory (another process, say) hits too.
    third, hit3 = DatasetCache(tmp_path).get_or_create(family, identity, settings, create)
    assert hit3 and create.calls == 1 and table_bytes(third.table) == table_bytes(first.table)
    assert tmp_dirs(tmp_path) == []


def rephrased(family: Family) -> Family:
    data = copy.deepcopy(yaml.safe_load(CONFOUNDER.read_text()))
    data["variables"][0]["phrasings"][0] = "Outside, the weather is {value}."
    return parse_family(data, str(CONFOUNDER))


def edited(edit: Callable[[dict], None]) -> Family:
    """The confounder family with one edit of its spec."""
    data = copy.deepcopy(yaml.safe_load(CONFOUNDER.read_text()))
    edit(data)
    return parse_family(data, str(CONFOUNDER))


@pytest.mark.parametrize(
    "change",
    [
        "seed", "n_units", "scoring", "temperature", "dtype", "lm", "weights", "phrasing",
        "spec scoring", "variable temperature", "variant",
    ],
)  # fmt: skip
def test_key_depends_on_every_input(
    tmp_path: Path, tiny_lm: LanguageModel, family: Family, identity: dict, change: str
) -> None:
    """Changing any input that changes the data is a miss with a new key; the old entry stays valid."""
    cache = DatasetCache(tmp_path)
    settings = GenerationSettings(6, seed=1)
    create = CountingCreate(family, tiny_lm, settings)
    base, _ = cache.get_or_create(family, identity, settings, create)
    fam2, ident2, settings2 = family, dict(identity), settings
    if change == "seed":
        settings2 = GenerationSettings(6, seed=2)
    elif change == "n_units":
        settings2 = GenerationSettings(7, seed=1)
    elif change == "scoring":  # an explicit scoring other than the spec's default
        other = "sum" if family.effective_scoring() == "mean" else "mean"
        settings2 = GenerationSettings(6, seed=1, scoring=other)
    elif change == "temperature":
        settings2 = GenerationSettings(6, seed=1, temperature=0.5)
    elif change == "dtype":
        ident2["dtype"] = "bfloat16"
    elif change == "lm":
        ident2["lm"] = "another-lm"
    elif change == "weights":
        ident2["weights_fingerprint"] = "0" * 16
    elif change == "phrasing":
        fam2 = rephrased(family)
    elif change == "spec scoring":  # the spec's default scoring is the effective one: flip it
        other = "sum" if family.effective_scoring() == "mean" else "mean"
        fam2 = edited(lambda d: d.update(scoring=other))
    elif change == "variable temperature":
        fam2 = edited(lambda d: d["variables"][2].update(temperature=0.5))
    elif change == "variant":  # a variant that changes only a quality threshold still has its own entries
        fam2 = edited(lambda d: d.update(variants={"strict": {"quality": {"min_ess_share": 0.5}}}))
        assert dataset_key(fam2, identity, settings) == base.meta["cache_key"]  # the base family: same key
        fam2 = fam2.variant("strict")
    create2 = CountingCreate(fam2, tiny_lm, settings2)
    other, hit = cache.get_or_create(fam2, ident2, settings2, create2)
    assert not hit and create2.calls == 1
    assert other.meta["cache_key"] != base.meta["cache_key"]
    again, hit_again = cache.get_or_create(family, identity, settings, create)
    assert hit_again and create.calls == 1
    assert table_bytes(again.table) == table_bytes(base.table)


def test_key_ignores_the_spec_path(
    tmp_path: Path, tiny_lm: LanguageModel, family: Family, identity: dict
) -> None:
    """The same spec content read from another file is the same dataset."""
    copy_path = tmp_path / "elsewhere" / "confounder.yaml"
    copy_path.parent.mkdir()
    copy_path.write_text(CONFOUNDER.read_text())
    cache = DatasetCache(tmp_path / "cache")
    settings = GenerationSettings(6, seed=1)
    create = CountingCreate(family, tiny_lm, settings)
    cache.get_or_create(family, identity, settings, create)
    _, hit = cache.get_or_create(load_family(copy_path), identity, settings, create)
    assert hit and create.calls == 1


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_middle_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def remove(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    "damage", [truncate, flip_middle_byte, remove], ids=["truncated", "flipped-byte", "missing"]
)
def test_corrupt_entry_is_regenerated_never_used(
    tmp_path: Path, tiny_lm: LanguageModel, family: Family, identity: dict, damage: Callable[[Path], None]
) -> None:
    cache = DatasetCache(tmp_path)
    settings = GenerationSettings(12, seed=3)
    create = CountingCreate(family, tiny_lm, settings)
    original, _ = cache.get_or_create(family, identity, settings, create)
    original_bytes = table_bytes(original.table)
    damage(data_file(cache, original))
    with pytest.warns(CorruptCacheWarning):
        regenerated, hit = cache.get_or_create(family, identity, settings, create)
    assert not hit and create.calls == 2
    assert table_bytes(regenerated.table) == original_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptCacheWarning)
        healed, hit = cache.get_or_create(family, identity, settings, create)
    assert hit and create.calls == 2 and table_bytes(healed.table) == original_bytes
    assert tmp_dirs(tmp_path) == []


def test_corrupt_manifest_is_regenerated(
    tmp_path: Path, tiny_lm: LanguageModel, family: Family, identity: dict
) -> None:
    cache = DatasetCache(tmp_path)
    settings = GenerationSettings(12, seed=3)
    create = CountingCreate(family, tiny_lm, settings)
    original, _ = cache.get_or_create(family, identity, settings, create)
    manifest = data_file(cache, original).with_name("manifest.json")
    manifest.write_text(manifest.read_text()[:40])
    with pytest.warns(CorruptCacheWarning):
        regenerated, hit = cache.get_or_create(family, identity, settings, create)
    assert not hit and create.calls == 2
    assert table_bytes(regenerated.table) == table_bytes(original.table)


def test_failed_generation_leaves_nothing_behind(
    tmp_path: Path, tiny_lm: LanguageModel, family: Family, identity: dict
) -> None:
    cache = DatasetCache(tmp_path)
    settings = GenerationSettings(6, seed=1)

    def boom() -> SDSCMDataset:
        raise RuntimeError("generation crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        cache.get_or_create(family, identity, settings, boom)
    assert tmp_dirs(tmp_path) == []
    assert not [p for p in tmp_path.rglob("*.parquet")]
    create = CountingCreate(family, tiny_lm, settings)
    _, hit = cache.get_or_create(family, identity, settings, create)
    assert not hit and create.calls == 1


# --- concurrency ---------------------------------------------------------------------------------


def _concurrent_worker(cache_dir: str, marker_dir: str, barrier, results) -> None:  # noqa: ANN001
    """One process asking for the dataset; every real generation leaves a marker file."""
    import time

    import torch

    import sdscm_bench.families as families_mod
    from sdscm_bench.cache import DatasetCache as Cache
    from sdscm_bench.cache import table_bytes as to_bytes

    torch.set_num_threads(1)
    real_generate = families_mod.generate_dataset
    real_get_or_create = Cache.get_or_create
    hits: list[bool] = []

    def counting_generate(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        Path(marker_dir, f"generated-{os.getpid()}-{time.monotonic_ns()}").touch()
        time.sleep(1.0)  # hold the lock long enough for the others to queue behind it
        return real_generate(*args, **kwargs)

    def recording_get_or_create(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        dataset, hit = real_get_or_create(self, *args, **kwargs)
        hits.append(hit)
        return dataset, hit

    families_mod.generate_dataset = counting_generate
    Cache.get_or_create = recording_get_or_create
    request = FamilyRequest(
        spec=str(CONFOUNDER), lm="tiny-random", n_datasets=1, n_units=20, seed=0,
        dtype="float32", device="cpu", cache_dir=cache_dir,
    )  # fmt: skip
    barrier.wait(timeout=120)
    (dataset,) = load_or_generate(request, progress=False)
    results.put((os.getpid(), hits, to_bytes(dataset.table), dataset.meta["cache_path"]))


def test_concurrent_requests_generate_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three processes ask for one dataset at once: one generates, two wait and read it."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the spawned children
    ctx = mp.get_context("spawn")
    cache_dir, marker_dir = tmp_path / "cache", tmp_path / "markers"
    marker_dir.mkdir()
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_concurrent_worker, args=(str(cache_dir), str(marker_dir), barrier, results))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    try:
        reports = [results.get(timeout=240) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    generated = list(marker_dir.iterdir())
    assert len(generated) == 1, generated
    assert all(len(h) == 1 for _, h, _, _ in reports), reports
    assert sorted(h[0] for _, h, _, _ in reports) == [False, True, True]
    blobs = {blob for _, _, blob, _ in reports}
    assert len(blobs) == 1
    paths = {path for _, _, _, path in reports}
    assert len(paths) == 1 and (Path(paths.pop()) / "data.parquet").exists()
    assert tmp_dirs(cache_dir) == []


def test_the_key_names_the_head_dtype_only_where_it_differs_from_the_weights(family: Family) -> None:
    """bfloat16 weights on CPU give float32 logits (``lm.head_dtype``), on a GPU bfloat16 ones: different
    values, so different keys; where head and weights agree the key is what it was before the head's dtype
    was recorded, so existing float32 entries (and the results that cite them) stay valid."""
    settings = GenerationSettings(6, seed=1)
    f32 = lm_identity("tiny-random", "float32", "cpu")
    assert f32["head_dtype"] == "float32"
    without = {k: v for k, v in f32.items() if k != "head_dtype"}
    assert dataset_key(family, f32, settings) == dataset_key(family, without, settings)
    bf16_cpu = lm_identity("tiny-random", "bfloat16", "cpu")
    assert bf16_cpu["head_dtype"] == "float32"
    bf16_gpu = bf16_cpu | {"device": "cuda", "head_dtype": "bfloat16"}
    assert dataset_key(family, bf16_cpu, settings) != dataset_key(family, bf16_gpu, settings)
