"""Merging records into the results file (``results_file.merge_records``), key field by key field.

A merge that kept the wrong duplicate, or keyed on too few fields, would silently show a stale or a
different estimator's number on the leaderboard (issue 14, item 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sdscm_bench import results_file
from sdscm_bench.metrics import METRIC_KEYS
from sdscm_bench.results_file import RECORD_KEY, merge_records, merge_results, read_results, record_key

# Written out, not read from RECORD_KEY: a field dropped from the key must fail these tests.
KEY_FIELDS = ("estimator", "lm", "setting", "dataset_fingerprint")


def rec(ate: float = 1.0, **kw: Any) -> dict[str, Any]:
    return {
        "estimator": "ols",
        "library": "lib",
        "library_version": "1",
        "adapter_fingerprint": "fp1",
        "lm": "smollm2",
        "setting": "confounded",
        "family": "fam",
        "dataset": "d",
        "dataset_fingerprint": "ds1",
        **dict.fromkeys(METRIC_KEYS),
        "ate": ate,
        "sate": 0.5,
        "failed": False,
        "error": None,
        **kw,
    }


def test_the_record_key_is_exactly_those_fields() -> None:
    assert RECORD_KEY == KEY_FIELDS
    assert record_key(rec()) == ("ols", "smollm2", "confounded", "ds1")


@pytest.mark.parametrize("field", KEY_FIELDS)
def test_records_differing_in_a_key_field_are_both_kept(field: str) -> None:
    merged = merge_records([rec(1.0)], [rec(2.0, **{field: "other"})])
    assert [(r[field], r["ate"]) for r in merged] == [(rec()[field], 1.0), ("other", 2.0)]


@pytest.mark.parametrize("field", ["adapter_fingerprint", "dataset", "family", "library_version"])
def test_records_differing_outside_the_key_replace_each_other(field: str) -> None:
    """A changed adapter's new result replaces its old row: the leaderboard shows the current code."""
    merged = merge_records([rec(1.0)], [rec(2.0, **{field: "changed"})])
    assert len(merged) == 1 and merged[0]["ate"] == 2.0 and merged[0][field] == "changed"


def test_the_last_of_duplicates_in_a_run_wins() -> None:
    run = [rec(1.0, seed=1), rec(2.0, seed=2), rec(3.0)]
    merged = merge_records([], run)
    assert merged == [rec(3.0)]  # the last one whole: no field of an earlier duplicate survives
    # as the plugin passes them: journaled records first, then this run's own, which win
    journal, own = [rec(1.0), rec(5.0, dataset_fingerprint="ds2")], [rec(9.0)]
    merged = merge_records([], [*journal, *own])
    assert [(r["dataset_fingerprint"], r["ate"]) for r in merged] == [("ds1", 9.0), ("ds2", 5.0)]


def test_existing_rows_keep_their_place_and_new_keys_follow() -> None:
    existing = [rec(1.0, dataset_fingerprint=d) for d in ("a", "b", "c")]
    merged = merge_records(existing, [rec(7.0, dataset_fingerprint="d"), rec(8.0, dataset_fingerprint="b")])
    assert [(r["dataset_fingerprint"], r["ate"]) for r in merged] == [
        ("a", 1.0),
        ("b", 8.0),
        ("c", 1.0),
        ("d", 7.0),
    ]
    assert existing[1]["ate"] == 1.0  # the caller's records are not changed


def test_merged_records_are_plain_json_values(tmp_path: Any) -> None:
    merged = merge_records([], [rec(np.float64(0.25), n_units=np.int64(40), width=float("nan"))])
    assert type(merged[0]["ate"]) is float and type(merged[0]["n_units"]) is int
    assert merged[0]["width"] is None
    doc = merge_results(tmp_path / "r.parquet", [rec(2.0)])
    doc = merge_results(tmp_path / "r.parquet", [rec(3.0), rec(4.0, lm="other")])
    assert [(r["lm"], r["ate"]) for r in read_results(tmp_path / "r.parquet")["records"]] == [
        ("other", 4.0),
        ("smollm2", 3.0),
    ]
    assert doc == read_results(tmp_path / "r.parquet")


@pytest.mark.parametrize("field", KEY_FIELDS)
@pytest.mark.parametrize("empty", [None, ""])
def test_a_record_with_an_empty_key_field_is_refused(field: str, empty: str | None) -> None:
    with pytest.raises(ValueError, match=rf"empty key fields \['{field}'\]"):
        merge_records([], [rec(**{field: empty})])


@pytest.mark.parametrize(
    ("value", "column"),
    [(2**63 - 1, "int"), (-(2**63), "int"), (2**63, "json"), (-(2**63) - 1, "json")],
    ids=["int64-max", "int64-min", "above", "below"],
)
def test_integers_are_stored_as_int64_up_to_its_bounds_and_exactly_beyond(
    tmp_path: Any, value: int, column: str
) -> None:
    """Both sides of the int64 range: inside it an int column, outside it JSON text, read back exactly."""
    assert results_file._column_type([value, None]) == column
    merge_results(tmp_path / "r.parquet", [rec(big=value)])
    (back,) = read_results(tmp_path / "r.parquet")["records"]
    assert back["big"] == value and type(back["big"]) is int
