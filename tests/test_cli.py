"""The ``sdscm-bench`` command line: validate, show, generate, and clean errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sdscm_bench.cli import main
from sdscm_bench.spec import load_family

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
SCRIPT = Path(sys.executable).with_name("sdscm-bench")


def write_spec(path: Path, edit) -> Path:  # noqa: ANN001
    """The confounder spec with one edit applied, written to ``path``."""
    data = yaml.safe_load((DATASETS / "confounder.yaml").read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def variable(data: dict, name: str) -> dict:
    return next(v for v in data["variables"] if v["name"] == name)


def test_validate_shipped_specs(capsys: pytest.CaptureFixture[str]) -> None:
    specs = sorted(str(p) for p in DATASETS.glob("*.yaml"))
    assert main(["validate", *specs]) == 0
    out = capsys.readouterr().out
    for spec in specs:
        assert f"{spec}: ok" in out


def test_validate_reports_a_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def make_cycle(data: dict) -> None:
        variable(data, "weather")["parents"] = ["arrival"]

    bad = write_spec(tmp_path / "cycle.yaml", make_cycle)
    assert main(["validate", str(bad)]) != 0
    captured = capsys.readouterr()
    err = captured.err
    assert str(bad) in err
    assert "cycle" in err
    for name in ("weather", "arrival"):
        assert name in err
    assert "Traceback" not in err + captured.out


def test_validate_reports_an_unknown_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def add_ghost(data: dict) -> None:
        variable(data, "commute")["parents"] = ["weather", "ghost"]

    bad = write_spec(tmp_path / "ghost.yaml", add_ghost)
    assert main(["validate", str(bad)]) != 0
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "commute" in err  # the variable
    assert "unknown parent" in err and "ghost" in err  # the problem


def test_validate_stops_at_the_bad_spec_among_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_ghost(data: dict) -> None:
        variable(data, "arrival")["parents"] = ["ghost"]

    bad = write_spec(tmp_path / "ghost.yaml", add_ghost)
    assert main(["validate", str(DATASETS / "collider.yaml"), str(bad)]) != 0
    assert str(bad) in capsys.readouterr().err


def test_show_prints_the_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "oncology"]) == 0
    out = capsys.readouterr().out
    family = load_family(DATASETS / "oncology.yaml")
    lines = out.splitlines()
    order_lines = lines[lines.index("order:") + 1 :]
    for i, name in enumerate(family.order()):
        assert re.match(rf"\s*{i}\. {re.escape(name)}\b", order_lines[i]), (i, name, order_lines[i])
    assert family.treatment.variable in out and family.outcome.variable in out


def test_show_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "plots" / "dag.png"
    assert main(["show", str(DATASETS / "agriculture.yaml"), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1000
    assert str(png) in capsys.readouterr().out


def test_generate_with_tiny_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], torch_single_thread: None
) -> None:
    cache = tmp_path / "cache"
    argv = ["generate", "confounder", "--lm", "tiny-random", "--units", "20", "--datasets", "2"]
    argv += ["--cache-dir", str(cache), "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "->" in line]
    assert len(lines) == 2, captured.out
    paths = [Path(line.rsplit("-> ", 1)[1].strip()) for line in lines]
    assert len(set(paths)) == 2
    for line, path in zip(lines, paths, strict=True):
        assert "20 units" in line
        assert path.is_dir() and path.is_relative_to(cache)
        assert (path / "data.parquet").exists() and (path / "manifest.json").exists()
    assert "%|" not in captured.err  # --quiet: no progress bar
    # A second run is served from the cache and reports the same paths.
    assert main(argv) == 0
    again = [line for line in capsys.readouterr().out.splitlines() if "->" in line]
    assert again == lines


@pytest.mark.parametrize(
    "command",
    [["generate", "{missing}", "--lm", "tiny-random"], ["show", "{missing}"], ["validate", "{missing}"]],
)
def test_missing_spec_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = str(tmp_path / "no-such-spec.yaml")
    argv = [missing if a == "{missing}" else a for a in command]
    assert main(argv) != 0
    captured = capsys.readouterr()
    assert missing in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) == 1, captured.err


def test_unknown_spec_name_is_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "no-such-family"]) != 0
    err = capsys.readouterr().err
    assert "no-such-family" in err and "Traceback" not in err


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )


def test_console_script_help() -> None:
    assert SCRIPT.exists(), f"console script missing at {SCRIPT}; reinstall the project (pip install -e .)"
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    for command in ("generate", "show", "validate"):
        assert command in result.stdout


def test_console_script_missing_spec_exits_nonzero_without_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.yaml")
    result = run_script("validate", missing)
    assert result.returncode != 0
    assert missing in result.stderr
    assert "Traceback" not in result.stderr
