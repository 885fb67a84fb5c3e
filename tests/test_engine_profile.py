"""`benchmarks/engine_profile.py` runs end to end on the tiny random model and prints its per-token table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "engine_profile.py"


def test_profile_prints_matrix_products_per_token_for_both_sides() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--lm", "tiny-random", "--dtype", "float32", "--units", "4"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    assert "self CPU ms per token: engine" in out
    row = next(
        line for line in out.splitlines() if line.startswith("| aten::mm") or line.startswith("| aten::addmm")
    )
    engine_ms, plain_ms = (float(x) for x in row.strip("| ").split("|")[1:3])
    assert engine_ms > 0 and plain_ms > 0
