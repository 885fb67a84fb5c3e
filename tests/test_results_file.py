"""The results file (format 2, parquet): exact round trip, merge by key, run headers, format 1, atomicity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sdscm_bench import results_file
from sdscm_bench.cli import N_RECORDS_NOTE, main
from sdscm_bench.metrics import METRIC_KEYS
from sdscm_bench.results_file import (
    FORMAT_VERSION,
    META_FORMAT,
    META_JSON_COLUMNS,
    META_RUNS,
    ResultsFileError,
    merge_results,
    read_results,
)

HEADER = {"date": "2025-01-02T03:04:05+00:00", "git_commit": "abc123", "packages": {"numpy": "2.0.0"}}


def record(estimator="A", dataset="d1", lm="lm1", setting="s1", ate=1.0, family="fam", **kw):
    rec = {
        "estimator": estimator,
        "library": "lib",
        "library_version": "1.0",
        "adapter_fingerprint": "f" * 8,
        "lm": lm,
        "setting": setting,
        "family": family,
        "dataset": dataset,
        "dataset_fingerprint": f"fp-{dataset}",
        **dict.fromkeys(METRIC_KEYS),
        "ate": ate,
        "sate": 0.5,
        "failed": False,
        "error": None,
    }
    rec.update(kw)
    return rec


def as_text(rec, columns):
    """JSON text of a record over ``columns`` (absent = None): tells 1, 1.0 and True apart."""
    return json.dumps({k: rec.get(k) for k in columns}, sort_keys=True)


def key(rec):
    return (rec["estimator"], rec["lm"], rec["setting"], rec["dataset"])


# ---------------------------------------------------------------------------------------------------
# Round trip


def test_round_trip_is_exact(tmp_path):
    tricky = [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, 1 / 3]
    records = [
        record(
            "A",
            f"d{i}",
            ate=x,
            seed=2**40 + i,
            n_units=100,
            ate_covered=[True, False, None, True, None][i],
            pehe=None if i % 2 else x,  # mixed None / float
            versions={"econml": "0.15.1", "nested": {"k": [1, 2.5, None]}},  # dict-valued: a JSON column
            mixed=[1, 2.0, "3", None, True][i],
            fit_seconds=[3, 2.5, 0, None, 1e-3][
                i
            ],  # ints and floats: ints stay ints  # mixed types: a JSON column, each value keeps its type
            error="λ → ünïcödé" if i == 1 else None,
            failed=i == 1,
        )  # fmt: skip
        for i, x in enumerate(tricky)
    ]
    del records[3]["seed"]  # a key missing from one record reads back as None
    path = tmp_path / "results.parquet"
    merge_results(path, records, HEADER)
    doc = read_results(path)

    assert doc["format_version"] == FORMAT_VERSION == 2
    assert doc["runs"] == [{**HEADER, "n_records": 5}]
    back = {key(r): r for r in doc["records"]}
    columns = set().union(*doc["records"])
    assert columns == set().union(*records)
    for rec in records:
        got = back[key(rec)]
        assert as_text(got, columns) == as_text(rec, columns)
        assert got["ate"].hex() == rec["ate"].hex()  # bit-identical, -0.0 included
        assert type(got["failed"]) is bool and type(got["n_units"]) is int
    assert back[("A", "lm1", "s1", "d3")]["seed"] is None
    assert [type(back[("A", "lm1", "s1", f"d{i}")]["mixed"]) for i in range(5)] == [
        int, float, str, type(None), bool
    ]  # fmt: skip
    assert [type(back[("A", "lm1", "s1", f"d{i}")]["fit_seconds"]) for i in range(5)] == [
        int, float, int, type(None), float
    ]  # fmt: skip
    assert back[("A", "lm1", "s1", "d0")]["versions"]["nested"] == {"k": [1, 2.5, None]}
    assert back[("A", "lm1", "s1", "d1")]["pehe"] is None  # None, never NaN
    assert [back[("A", "lm1", "s1", f"d{i}")]["ate_covered"] for i in range(5)] == [
        True,
        False,
        None,
        True,
        None,
    ]
    assert all(r["cate_r2"] is None for r in doc["records"])  # an all-None column

    schema = pq.read_schema(path)
    assert schema.field("ate").type == pa.float64() and schema.field("pehe").type == pa.float64()
    assert schema.field("ate_covered").type == pa.bool_() and schema.field("failed").type == pa.bool_()
    assert schema.field("seed").type == pa.int64() and schema.field("cate_r2").type == pa.null()
    assert schema.field("versions").type == pa.string()
    assert set(json.loads(schema.metadata[META_JSON_COLUMNS])) == {"versions", "mixed", "fit_seconds"}
    assert json.loads(schema.metadata[META_RUNS]) == doc["runs"] and schema.metadata[META_FORMAT] == b"2"
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 5
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {"ZSTD"}


def test_rows_are_sorted_and_the_bytes_deterministic(tmp_path):
    records = [
        record(e, f"{fam}-{d}", lm=lm, family=fam)
        for fam in ("zeta", "alpha")
        for lm in ("lm2", "lm1")
        for e in ("B", "A")
        for d in ("d2", "d1")
    ]
    merge_results(tmp_path / "one.parquet", records)
    merge_results(tmp_path / "two.parquet", records[::-1])
    order = [(r["family"], r["lm"], r["setting"], r["estimator"], r["dataset_fingerprint"]) for r in records]
    doc = read_results(tmp_path / "one.parquet")
    assert [
        (r["family"], r["lm"], r["setting"], r["estimator"], r["dataset_fingerprint"]) for r in doc["records"]
    ] == sorted(order)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()


def test_numpy_scalars_and_non_finite_floats_are_stored_as_plain_values(tmp_path):
    rec = record(
        ate=np.float64(1.5), pehe=np.float32(0.25), ate_covered=np.bool_(True), fit_seconds=float("nan"),
        n_units=np.int64(7), cate_width=float("inf"),
    )  # fmt: skip
    merge_results(tmp_path / "r.parquet", [rec])
    (r,) = read_results(tmp_path / "r.parquet")["records"]
    assert r["ate"] == 1.5 and r["pehe"] == 0.25 and r["ate_covered"] is True
    assert r["fit_seconds"] is None and r["cate_width"] is None and type(r["n_units"]) is int


# ---------------------------------------------------------------------------------------------------
# Merge and run headers


def test_merge_keeps_other_rows_and_replaces_same_key_rows(tmp_path):
    path = tmp_path / "results.parquet"
    merge_results(path, [record(e, d, ate=1.0, seed=1) for e in ("A", "B") for d in ("d1", "d2")], HEADER)
    # The same key twice in one run: the last wins. Its new record lacks "seed": None, not the old 1.
    second = [record("A", "d1", ate=4.0, seed=2), record("C", "d1", ate=2.0), record("A", "d1", ate=5.0)]
    doc = merge_results(path, second, {**HEADER, "git_commit": "def"})
    assert doc == read_results(path)  # merge returns what is read back
    recs = {key(r): r for r in doc["records"]}
    assert len(doc["records"]) == 5
    assert recs[("A", "lm1", "s1", "d1")]["ate"] == 5.0 and recs[("A", "lm1", "s1", "d1")]["seed"] is None
    assert recs[("A", "lm1", "s1", "d2")]["ate"] == 1.0 and recs[("A", "lm1", "s1", "d2")]["seed"] == 1
    assert recs[("B", "lm1", "s1", "d1")]["ate"] == 1.0
    assert recs[("C", "lm1", "s1", "d1")]["ate"] == 2.0
    assert [run["git_commit"] for run in doc["runs"]] == ["abc123", "def"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]  # no temp files left


def test_n_records_counts_distinct_keys(tmp_path):
    """The plugin passes journal records and then this run's own: the same keys twice count once."""
    own = [record(e, d) for e in ("A", "B") for d in ("d1", "d2", "d3")]
    journal = [dict(r) for r in own]
    doc = merge_results(tmp_path / "r.parquet", [*journal, *own, record("C", "d1")], HEADER)
    assert doc["runs"][-1]["n_records"] == 7
    assert len(doc["records"]) == 7


def test_merge_rejects_records_missing_schema_fields(tmp_path):
    rec = record()
    del rec["adapter_fingerprint"]
    with pytest.raises(ValueError, match="adapter_fingerprint"):
        merge_results(tmp_path / "r.parquet", [rec])
    assert not (tmp_path / "r.parquet").exists()


def test_no_records_is_a_readable_file(tmp_path):
    doc = merge_results(tmp_path / "r.parquet", [], HEADER)
    assert doc["records"] == [] and doc["runs"][0]["n_records"] == 0
    assert read_results(tmp_path / "r.parquet") == doc


# ---------------------------------------------------------------------------------------------------
# Format 1 and broken files


def test_format_1_json_is_still_read_and_merged_into_parquet(tmp_path):
    old = [record("A", "d1", ate=1.0), record("B", "d1", ate=2.0)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format_version": 1, "runs": [HEADER], "records": old}, indent=1))
    doc = read_results(path)
    assert doc["format_version"] == 1 and doc["records"] == old and doc["runs"] == [HEADER]
    merge_results(path, [record("A", "d1", ate=3.0)], HEADER)
    assert path.read_bytes()[:4] == b"PAR1"  # rewritten as format 2, whatever the name
    doc = read_results(path)
    assert doc["format_version"] == 2 and len(doc["runs"]) == 2
    assert {key(r): r["ate"] for r in doc["records"]} == {
        ("A", "lm1", "s1", "d1"): 3.0,
        ("B", "lm1", "s1", "d1"): 2.0,
    }


def test_truncated_parquet_names_the_file(tmp_path):
    path = tmp_path / "results.parquet"
    merge_results(path, [record()])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsFileError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        read_results(path)
    with pytest.raises(ResultsFileError, match=re.escape(str(path))):
        merge_results(path, [record("B")])
    assert path.read_bytes() == data[: len(data) // 2]  # left alone
    path.write_bytes(b"")
    with pytest.raises(ResultsFileError, match=re.escape(str(path))):
        read_results(path)


def test_malformed_files_name_the_file(tmp_path):
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1]}), foreign)
    with pytest.raises(ResultsFileError, match=re.escape(str(foreign)) + ".*metadata"):
        read_results(foreign)
    keyless = tmp_path / "keyless.parquet"
    table = pa.table({"estimator": ["A", None], "lm": ["l", "l"], "setting": ["s", "s"]})
    pq.write_table(table.replace_schema_metadata({META_FORMAT: b"2"}), keyless)
    with pytest.raises(ResultsFileError, match=re.escape(str(keyless)) + ".*dataset_fingerprint"):
        read_results(keyless)
    pq.write_table(table.append_column("dataset_fingerprint", pa.array(["f", "g"])).replace_schema_metadata(
        {META_FORMAT: b"2"}), keyless)  # fmt: skip
    with pytest.raises(ResultsFileError, match=re.escape(str(keyless)) + r".*records \[1\]"):
        read_results(keyless)
    newer = tmp_path / "newer.parquet"
    pq.write_table(table.replace_schema_metadata({META_FORMAT: b"3"}), newer)
    with pytest.raises(ResultsFileError, match="newer"):
        read_results(newer)
    bad_json = tmp_path / "r.json"
    bad_json.write_text("{not json")
    with pytest.raises(ResultsFileError, match=re.escape(str(bad_json)) + ".*not valid JSON"):
        read_results(bad_json)
    with pytest.raises(ResultsFileError, match="not found"):
        read_results(tmp_path / "absent.parquet")
    assert read_results(tmp_path / "absent.parquet", missing_ok=True)["records"] == []


# ---------------------------------------------------------------------------------------------------
# Atomic writes


def test_a_record_that_cannot_be_stored_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "results.parquet"
    merge_results(path, [record()], HEADER)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        merge_results(path, [record("B", versions={"x": object()})], HEADER)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]


def test_a_write_failing_halfway_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "results.parquet"
    merge_results(path, [record()], HEADER)
    before = path.read_bytes()

    def half_then_fail(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        merge_results(path, [record("B")], HEADER)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]
    monkeypatch.undo()
    assert [r["estimator"] for r in read_results(path)["records"]] == ["A"]


def test_text_writes_are_atomic_and_readable(tmp_path):
    path = tmp_path / "sub" / "page.md"
    results_file._atomic_write_text(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n" and path.stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------------------------------
# Migration from format 1


def test_migrate_results_recounts_n_records(tmp_path, capsys):
    bench = {
        "estimators": ["A", "B"],
        "lms": ["smollm2"],
        "settings": "all",
        "family": "oncology",
        "n_datasets": 3,
    }
    runs = [
        {**HEADER, "benchmark": bench, "n_records": 24},  # double counted by format 1
        {**HEADER, "benchmark": {**bench, "settings": ["s1"]}, "n_records": 9},
        {**HEADER, "benchmark": {**bench, "estimators": "all"}, "n_records": 5},
        {**HEADER, "n_records": 1},  # no options stored at all
    ]
    records = [record(e, f"d{i}", seed=i) for e in ("A", "B") for i in range(3)]
    del records[0]["seed"]
    old = tmp_path / "results.json"
    old.write_text(json.dumps({"format_version": 1, "runs": runs, "records": records}))
    new = tmp_path / "results.parquet"
    assert main(["migrate-results", str(old), str(new)]) == 0
    assert "6 records, 4 runs" in capsys.readouterr().out
    doc = read_results(new)
    assert [r["n_records"] for r in doc["runs"]] == [12, 6, None, None]  # oncology has two settings
    assert [r["n_records_note"] == N_RECORDS_NOTE for r in doc["runs"]] == [True, True, False, False]
    assert all(r["n_records_note"] for r in doc["runs"])
    columns = set().union(*doc["records"])
    assert sorted(as_text(r, columns) for r in doc["records"]) == sorted(as_text(r, columns) for r in records)
    assert main(["migrate-results", str(new), str(tmp_path / "again.parquet")]) == 2  # already format 2


def test_published_results_file_is_format_2():
    path = Path(__file__).resolve().parents[1] / "leaderboard" / "results.parquet"
    if not path.exists():
        pytest.skip(f"{path} not present")
    doc = read_results(path)
    assert doc["format_version"] == 2 and doc["records"]
    assert all(run.get("n_records_note") or run.get("n_records") is not None for run in doc["runs"])
