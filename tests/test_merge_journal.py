"""`sdscm-bench merge-journal`: a killed run's journaled fits become part of the results file without
refitting, so a long benchmark split across sessions can be committed at any point."""

from __future__ import annotations

import json
from pathlib import Path

from sdscm_bench.cli import main
from sdscm_bench.results_file import read_results, write_results
from sdscm_bench.store import Journal, journal_dir

FIXTURE = Path(__file__).parent / "fixtures" / "synthetic_records.json"


def _records() -> list[dict]:
    return json.loads(FIXTURE.read_text())["records"]


def test_merge_journal_adds_journaled_records_and_renders(tmp_path: Path, capsys) -> None:
    records = _records()
    results = tmp_path / "results.parquet"
    first, journaled = records[: len(records) // 2], records[len(records) // 2 :]
    write_results(results, {"runs": [{"run_id": "r0", "command": "earlier"}], "records": first})
    journal = Journal(journal_dir(results))
    for r in journaled:
        journal.append(r)

    assert main(["merge-journal", str(results)]) == 0
    out = capsys.readouterr().out
    assert f"merged {len(journaled)} journaled records" in out
    doc = read_results(results)
    assert len(doc["records"]) == len(records)
    assert {(r["estimator"], r["dataset"]) for r in doc["records"]} == {
        (r["estimator"], r["dataset"]) for r in records
    }
    assert any("merge-journal" in str(run.get("command")) for run in doc["runs"])
    md = (tmp_path / "leaderboard.md").read_text()
    assert "ols" in md
    # The journal is kept (a run may still append to it); merging again changes nothing.
    assert journal.shards()
    assert main(["merge-journal", str(results)]) == 0
    assert len(read_results(results)["records"]) == len(records)


def test_merge_journal_without_a_journal_says_so(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results.parquet"
    assert main(["merge-journal", str(results), "--leaderboard", str(tmp_path / "x.md")]) == 0
    assert "nothing to merge" in capsys.readouterr().out
    assert not results.exists()
