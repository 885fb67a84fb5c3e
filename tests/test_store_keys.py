"""Reuse keys and journal reads (``sdscm_bench.store``), field by field and line by line.

A wrong reuse key silently reports one adapter's, LM's or dataset's results for another; a wrong journal
read silently drops finished fits. Each test here fails if one of those behaviours breaks (issue 14).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdscm_bench import store
from sdscm_bench.results_file import REQUIRED_FIELDS
from sdscm_bench.store import (
    Journal,
    JournalWarning,
    json_default,
    record_problem,
    reusable,
    reuse_key,
    stored_index,
)

# Written out, not read from REUSE_FIELDS: a field dropped from the key must fail these tests.
KEY_FIELDS = ("estimator", "adapter_fingerprint", "lm", "setting", "dataset_fingerprint")


def rec(**kw: Any) -> dict[str, Any]:
    return {
        **dict.fromkeys(REQUIRED_FIELDS),
        "estimator": "ols",
        "adapter_fingerprint": "fp1",
        "lm": "smollm2",
        "setting": "confounded",
        "dataset_fingerprint": "ds1",
        "failed": False,
        "ate": 1.5,
        **kw,
    }


def line(record: Any) -> str:
    return json.dumps(record) + "\n"


@pytest.mark.parametrize("field", KEY_FIELDS)
def test_every_reuse_field_separates_results(field: str) -> None:
    """A request that differs from a stored record in any key field must not get that record."""
    stored = rec()
    index = stored_index([stored])
    assert index[reuse_key(rec())]["ate"] == 1.5  # the same request is answered
    other = rec(**{field: "something-else"})
    assert reuse_key(other) != reuse_key(stored)
    assert reuse_key(other) not in index
    # ...and two stored records differing only in that field are both kept, each for its own request
    both = stored_index([stored, rec(**{field: "something-else"}, ate=9.0)])
    assert len(both) == 2
    assert both[reuse_key(stored)]["ate"] == 1.5 and both[reuse_key(other)]["ate"] == 9.0


def test_the_reuse_key_is_exactly_those_fields() -> None:
    assert store.REUSE_FIELDS == KEY_FIELDS
    assert reuse_key(rec()) == ("ols", "fp1", "smollm2", "confounded", "ds1")
    # Fields outside the key (the estimate, the variant, when it ran) do not split results.
    assert reuse_key(rec(ate=7.0, variant="v2", date="2026-01-01")) == reuse_key(rec())


@pytest.mark.parametrize("fingerprint", [None, "", "unavailable"], ids=["none", "empty", "unavailable"])
def test_records_without_an_adapter_fingerprint_are_never_reused(fingerprint: str | None) -> None:
    stored = rec(adapter_fingerprint=fingerprint)
    assert not reusable(stored)
    assert stored_index([stored]) == {}
    missing = rec()
    del missing["adapter_fingerprint"]
    assert not reusable(missing) and stored_index([missing]) == {}


def test_failed_records_are_retried_and_absent_failed_means_success() -> None:
    assert not reusable(rec(failed=True))
    assert stored_index([rec(failed=True)]) == {}
    ok = rec()
    del ok["failed"]  # a results-file row without the column reads back as absent/None: not a failure
    assert reusable(ok) and reusable(rec(failed=None))
    assert reusable(rec())


def test_a_later_source_wins_and_a_failure_does_not_replace_a_success() -> None:
    index = stored_index([rec(ate=1.0)], [rec(ate=2.0), rec(ate=3.0)])
    assert index[reuse_key(rec())]["ate"] == 3.0
    index = stored_index([rec(ate=1.0)], [rec(ate=None, failed=True)])
    assert index[reuse_key(rec())]["ate"] == 1.0
    # the index holds copies: changing one does not change the caller's record
    original = rec()
    stored_index([original])[reuse_key(original)]["ate"] = 99.0
    assert original["ate"] == 1.5


def test_a_torn_line_in_the_middle_drops_only_that_line(tmp_path: Path) -> None:
    shard = tmp_path / "host-1.jsonl"
    torn = json.dumps(rec(dataset_fingerprint="torn"))[:25] + "\n"
    shard.write_text(line(rec(dataset_fingerprint="d1")) + torn + line(rec(dataset_fingerprint="d2")) + "\n")
    (tmp_path / "host-2.jsonl").write_text(line(rec(dataset_fingerprint="d3")))
    with pytest.warns(JournalWarning) as caught:
        records = Journal(tmp_path).records()
    assert [r["dataset_fingerprint"] for r in records] == ["d1", "d2", "d3"]
    assert [str(w.message).split(": ")[0] for w in caught] == [f"{shard}:2"]


def test_blank_lines_are_skipped_silently(tmp_path: Path) -> None:
    (tmp_path / "h-1.jsonl").write_text("\n" + line(rec(dataset_fingerprint="d1")) + "  \n" + line(rec()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["dataset_fingerprint"] for r in Journal(tmp_path).records()] == ["d1", "ds1"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([1, 2], "a JSON list, not an object"),
        ("text", "a JSON str, not an object"),
        (42, "a JSON int, not an object"),
        (None, "a JSON NoneType, not an object"),
        ({"estimator": "ols"}, "lacks the fields"),
        ({**rec(), "lm": ""}, "has empty key fields ['lm']"),
        ({**rec(), "dataset_fingerprint": None}, "has empty key fields ['dataset_fingerprint']"),
    ],
)
def test_lines_that_are_not_records_are_skipped_with_the_reason(
    tmp_path: Path, value: Any, problem: str
) -> None:
    shard = tmp_path / "h-1.jsonl"
    shard.write_text(line(rec(dataset_fingerprint="d1")) + line(value) + line(rec(dataset_fingerprint="d2")))
    assert record_problem(value) is not None and problem in record_problem(value)
    with pytest.warns(
        JournalWarning, match=rf"h-1.jsonl:2: journal line is not a result record \({problem[:12]}"
    ):
        records = Journal(tmp_path).records()
    assert [r["dataset_fingerprint"] for r in records] == ["d1", "d2"]
    assert all(isinstance(r, dict) for r in records)


def test_a_full_record_has_no_problem() -> None:
    assert record_problem(rec()) is None
    missing = rec()
    del missing["family"]
    assert record_problem(missing) == "lacks the fields ['family']"


def test_compact_keeps_a_merged_shard_with_rejected_lines_for_inspection(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.folder.mkdir()
    shard = journal.folder / "h-1.jsonl"
    shard.write_text(line(rec()) + line([1]) + line(rec(dataset_fingerprint="d2")) + line("x"))
    with pytest.warns(JournalWarning) as caught:
        assert journal.compact([rec(), rec(dataset_fingerprint="d2")]) == 1
    assert not shard.exists()
    kept = journal.folder / "h-1.jsonl.rejected"
    assert kept.read_text() == line(rec()) + line([1]) + line(rec(dataset_fingerprint="d2")) + line("x")
    assert any("except lines [2, 4]" in str(w.message) and str(kept) in str(w.message) for w in caught)
    assert journal.shards() == [] and journal.records() == []  # a .rejected file is no longer read
    assert journal.folder.is_dir()  # it holds the rejected shard, so it stays


def test_compact_keeps_shards_with_unmerged_records_and_counts_the_deleted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.folder.mkdir()
    for n, datasets in enumerate([["d1"], ["d1", "d2"], ["d3"]]):
        (journal.folder / f"h-{n}.jsonl").write_text(
            "".join(line(rec(dataset_fingerprint=d)) for d in datasets)
        )
    assert journal.compact([rec(dataset_fingerprint="d1"), rec(dataset_fingerprint="d3")]) == 2
    assert [p.name for p in journal.shards()] == ["h-1.jsonl"]
    # a merged record with another adapter fingerprint is not this record: its shard stays
    assert journal.compact([rec(dataset_fingerprint=d, adapter_fingerprint="fp2") for d in ("d1", "d2")]) == 0
    assert journal.compact([rec(dataset_fingerprint=d) for d in ("d1", "d2")]) == 1
    assert not journal.folder.exists()


def test_compact_tolerates_a_shard_deleted_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may compact the same journal: a shard listed but gone is no error."""
    journal = Journal(tmp_path / "j")
    journal.folder.mkdir()
    present = journal.folder / "h-1.jsonl"
    present.write_text(line(rec()))
    gone = journal.folder / "h-2.jsonl"
    monkeypatch.setattr(journal, "shards", lambda: [present, gone])
    with pytest.warns(JournalWarning, match="unreadable journal shard"):
        assert journal.compact([rec()]) == 2
    assert not present.exists()


def test_the_shard_name_is_the_sanitised_host_and_the_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store.socket, "gethostname", lambda: "node-7_a.lab b/c")
    journal = Journal(tmp_path)
    assert journal.shard == tmp_path / f"node-7_a_lab_b_c-{os.getpid()}.jsonl"
    assert journal.shard is journal.shard  # computed once


def test_numpy_scalars_are_saved_as_numbers(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    values = {
        "ate": np.float64(0.25),
        "n_units": np.int64(40),
        "width": np.float32(0.5),
        "ok": np.bool_(True),
    }
    journal.append(rec(**values, where=tmp_path, nan=float("nan"), inf=np.float64("inf")))
    raw = json.loads(journal.shard.read_text())
    assert raw["ate"] == 0.25 and type(raw["ate"]) is float
    assert raw["n_units"] == 40 and type(raw["n_units"]) is int
    assert raw["width"] == 0.5 and type(raw["width"]) is float
    assert raw["ok"] is True
    assert raw["where"] == str(tmp_path)
    assert raw["nan"] is None and raw["inf"] is None  # as the results file stores them; no ValueError
    assert journal.records() == [raw]


def test_json_default_unwraps_numpy_and_stringifies_the_rest(tmp_path: Path) -> None:
    assert json_default(np.int32(3)) == 3 and type(json_default(np.int32(3))) is int
    assert json_default(np.bool_(False)) is False
    assert json_default(tmp_path) == str(tmp_path)
    assert json.loads(json.dumps({"n": np.int64(5), "p": tmp_path}, default=json_default)) == {
        "n": 5,
        "p": str(tmp_path),
    }


def test_an_unwritable_journal_falls_back_to_the_temp_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "results" / ".sdscm-journal"
    blocked.parent.mkdir()
    blocked.write_text("a file where the journal folder should be")
    monkeypatch.setattr(store.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    journal = Journal(blocked)
    with pytest.warns(JournalWarning, match="cannot write the results journal") as caught:
        journal.append(rec(dataset_fingerprint="d1"))
        journal.append(rec(dataset_fingerprint="d2"))
    assert len(caught) == 1  # warned once, not per record
    fallback = tmp_path / "tmp" / ".sdscm-journal" / journal.shard.name
    assert str(fallback) in str(caught[0].message)
    assert [json.loads(x)["dataset_fingerprint"] for x in fallback.read_text().splitlines()] == ["d1", "d2"]
    assert Journal(fallback.parent).records() == [
        rec(dataset_fingerprint="d1"),
        rec(dataset_fingerprint="d2"),
    ]
