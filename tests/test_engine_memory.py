"""benchmarks/engine_memory.py: the per-pass memory table and the head timings run (issue 13)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import engine_memory  # noqa: E402


def test_per_pass_table_on_the_tiny_model(capsys: pytest.CaptureFixture[str]) -> None:
    """One row per forward pass, then the peak; the engine is restored afterwards."""
    from sdscm_bench import scoring

    extend = scoring.CandidateScorer.extend
    assert engine_memory.main(["passes", "--lm", "tiny-random", "--dtype", "float32", "--units", "3"]) == 0
    assert scoring.CandidateScorer.extend is extend
    out = capsys.readouterr().out
    table = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in table[0]][:2] == ["pass", "contexts"]
    numbers = [int(row[0]) for row in table[2:]]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 3  # the levels of the DAG
    assert "tiny-random, float32, 3 units: RSS after loading" in out and "peak" in out


def test_head_timings_on_the_tiny_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert engine_memory.main(["head", "--lm", "tiny-random", "--rows", "6", "--chunks", "6", "4"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "rows in chunks of" in line]
    assert [line.split(",")[0] for line in lines] == ["bfloat16", "bfloat16", "float32", "float32"]
