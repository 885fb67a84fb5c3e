"""benchmarks/gpu_generation.py, the prepared GPU run, smoke-tested on CPU with a tiny config (issue 13)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_generation  # noqa: E402


@pytest.mark.parametrize(("arch", "params"), [("llama-3-8b", 8_030_261_248), ("smollm2-135m", 134_515_008)])
def test_architectures_have_their_published_sizes(arch: str, params: int) -> None:
    """Built on the meta device (no memory): the configs are the real models' (Llama-3-8B, SmolLM2-135M)."""
    _, n = gpu_generation.build_model(arch, vocab=100, dtype="bfloat16", device="meta")
    assert n == params


def test_tiny_run_on_cpu_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    args = ["--arch", "tiny", "--units", "6", "--dtype", "float32", "--device", "cpu", "--tokenizer", "tiny",
            "--plain-batch", "4", "--plain-length", "32", "--json", str(out)]  # fmt: skip
    assert gpu_generation.main(args) == 0
    (row,) = json.loads(out.read_text())
    assert row["arch"] == "tiny" and row["units"] == 6 and row["rows_valid"]
    assert row["tokens_per_unit"] > 0 and row["plain_forward_tokens_per_s"] > 0 and row["peak_memory_mb"] > 0
    assert row["tokens_per_s"] == pytest.approx(row["tokens_per_unit"] * row["units_per_s"])
    assert row["engine_share_of_plain"] == pytest.approx(
        row["tokens_per_s"] / row["plain_forward_tokens_per_s"]
    )
    hours = gpu_generation.FAMILY_DATASETS * gpu_generation.FAMILY_UNITS / row["units_per_s"] / 3600
    assert row["family_hours_at_measured_rate"] == pytest.approx(hours)
    bound = 1e6 * row["tokens_per_unit"] * 2 * row["parameters"] / (row["peak_tflops_assumed"] * 1e12) / 3600
    assert row["family_hours_at_peak_matmul"] == pytest.approx(bound)


def test_a_missing_tokenizer_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a folder; save one with --save-tokenizer"):
        gpu_generation.load_tokenizer(str(tmp_path / "absent"))


def test_profile_prints_the_top_operators_once_per_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    """``--profile`` profiles the first size only and prints torch.profiler's table (CPU only here)."""
    args = ["--arch", "tiny", "--units", "4", "6", "--dtype", "float32", "--device", "cpu", "--tokenizer", "tiny",
            "--plain-batch", "2", "--plain-length", "16", "--profile"]  # fmt: skip
    assert gpu_generation.main(args) == 0
    out = capsys.readouterr().out
    assert out.count("profile, sorted by self_cpu_time_total") == 1
    assert "aten::" in out and "self_cuda_time_total" not in out
