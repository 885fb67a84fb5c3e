"""The results journal (``sdscm_bench.store``): durable appends, tolerant reads, reuse keys, compaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdscm_bench.results_file import REQUIRED_FIELDS
from sdscm_bench.store import Journal, JournalWarning, journal_dir, reusable, reuse_key, stored_index


def rec(estimator: str = "a", dataset: str = "d1", fp: str = "f1", **kw: object) -> dict[str, object]:
    return {
        **dict.fromkeys(REQUIRED_FIELDS),  # a journal keeps only lines that are full result records
        "estimator": estimator,
        "adapter_fingerprint": fp,
        "lm": "lm",
        "setting": "s",
        "dataset_fingerprint": dataset,
        "failed": False,
        **kw,
    }


def test_append_then_read_back(tmp_path: Path) -> None:
    journal = Journal(journal_dir(tmp_path / "leaderboard" / "results.json"))
    assert journal.records() == [] and journal.shards() == []
    journal.append(rec(dataset="d1"))
    journal.append(rec(dataset="d2", ate=0.5))
    assert [r["dataset_fingerprint"] for r in journal.records()] == ["d1", "d2"]
    assert journal.shard.parent == tmp_path / "leaderboard" / ".sdscm-journal"
    assert str(__import__("os").getpid()) in journal.shard.name


def test_a_torn_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    (tmp_path / "other-7.jsonl").write_text(json.dumps(rec()) + "\n" + '{"estimator": "a", "adap')
    with pytest.warns(JournalWarning, match=r"other-7.jsonl:2: torn journal line"):
        assert len(journal.records()) == 1


def test_reuse_key_and_index() -> None:
    old, new = rec(fp="f1", ate=1.0), rec(fp="f1", ate=2.0)
    changed = rec(fp="f2")
    failed = rec(dataset="d9", failed=True)
    index = stored_index([old], [new, changed, failed])
    assert index[reuse_key(new)]["ate"] == 2.0  # later source wins
    assert reuse_key(changed) in index and reuse_key(changed) != reuse_key(new)  # fingerprint in the key
    assert reuse_key(failed) not in index and not reusable(failed)  # failures are retried
    assert not reusable(rec(fp="unavailable"))


def test_compact_deletes_only_fully_merged_shards(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.folder.mkdir()
    (journal.folder / "a-1.jsonl").write_text(json.dumps(rec(dataset="d1")) + "\n")
    (journal.folder / "b-2.jsonl").write_text(
        json.dumps(rec(dataset="d1")) + "\n" + json.dumps(rec(dataset="d2"))
    )
    assert journal.compact([rec(dataset="d1")]) == 1
    assert [p.name for p in journal.shards()] == ["b-2.jsonl"]
    assert journal.compact([rec(dataset="d1"), rec(dataset="d2")]) == 1
    assert not journal.folder.exists()
