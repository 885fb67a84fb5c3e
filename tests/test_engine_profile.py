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
    # matrix products (aten::mm and aten::addmm: which one a side uses depends on its input shapes)
    rows = [
        line.strip("| ").split("|")
        for line in out.splitlines()
        if line.startswith("| aten::mm ") or line.startswith("| aten::addmm ")
    ]
    assert rows
    engine_ms, plain_ms = (sum(float(r[i]) for r in rows) for i in (1, 2))
    assert engine_ms > 0 and plain_ms > 0
