"""`benchmarks/generation_speed.py` end to end on the tiny random model: the verdict line the speed issue
reads ("engine at N% of plain forward"), the median over repeated engine runs, and the agreement check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "generation_speed.py"


def test_repeated_runs_report_each_share_and_their_median() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--lm", "tiny-random", "--units", "4", "--naive-units", "1",
         "--repeats", "3", "--threads", "1"],  # fmt: skip
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    shares = [float(s) for s in re.findall(r"^\|\s+\d\s+\|.*\|\s+([\d.]+)%\s+\|$", out, flags=re.M)]
    assert len(shares) == 3
    verdict = re.search(r"engine at (\d+)% of plain forward \(median of 3 runs, range (\d+)%-(\d+)%\)", out)
    assert verdict, out
    # the table prints shares to 0.1%, the verdict to 1%
    assert abs(int(verdict[1]) - sorted(shares)[1]) <= 0.55
    assert abs(int(verdict[2]) - min(shares)) <= 0.55 and abs(int(verdict[3]) - max(shares)) <= 0.55
    assert "100% identical factual values" in out
