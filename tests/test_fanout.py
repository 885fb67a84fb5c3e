"""Generation fanned out over 2 local Dask worker processes meets the caller in the cache (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="fanning out needs Dask: pip install 'sdscm-bench[fanout]'")

from sdscm_bench import families  # noqa: E402
from sdscm_bench.families import FamilyRequest, load_or_generate  # noqa: E402
from sdscm_bench.fanout import generate_fanned_out  # noqa: E402


def request(cache: Path) -> FamilyRequest:
    return FamilyRequest("confounder", lm="tiny-random", n_datasets=4, n_units=40, seed=3, cache_dir=cache)


def test_two_workers_generate_what_one_process_generates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequential = load_or_generate(request(tmp_path / "one"), progress=False)

    def refuse(*args, **kwargs):  # the caller only reads: every dataset comes from a worker
        raise AssertionError("the calling process generated a dataset")

    monkeypatch.setattr(families, "generate_dataset", refuse)
    fanned = generate_fanned_out(request(tmp_path / "two"), workers=2, progress=False)
    assert [d.name for d in fanned] == [d.name for d in sequential]
    for a, b in zip(fanned, sequential, strict=True):
        assert a.meta["cache_key"] == b.meta["cache_key"]
        assert a.table.equals(b.table)
    assert len(list((tmp_path / "two").rglob("manifest.json"))) == 4
