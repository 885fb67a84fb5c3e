"""benchmarks/engine_work.py: the FLOP counts behind the engine's ceiling (issue 13)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import engine_work  # noqa: E402
import gpu_generation  # noqa: E402


@pytest.mark.parametrize("arch", ["smollm2-135m", "llama-3-8b"])
def test_decoder_flops_are_the_closed_form_for_llama_models(arch: str) -> None:
    """Per token, the decoder's weight matrices do one multiply-add per weight: on the meta device, the count
    equals 2 x layers x (q and o, k and v, three MLP matrices), with the embeddings and head left out."""
    model, _ = gpu_generation.build_model(arch, vocab=100, dtype="bfloat16", device="meta")
    c = model.config
    head_dim = c.hidden_size // c.num_attention_heads
    per_layer = (
        2 * c.hidden_size * c.num_attention_heads * head_dim
        + 2 * c.hidden_size * c.num_key_value_heads * head_dim
        + 3 * c.hidden_size * c.intermediate_size
    )
    assert engine_work.decoder_flops_per_token(model) == 2 * c.num_hidden_layers * per_layer


def test_counts_and_report_on_the_tiny_model(capsys: pytest.CaptureFixture[str]) -> None:
    """The hooks count exactly the engine's own token count (the script asserts it) and the report prints
    the bound and the measured shares."""
    assert (
        engine_work.main(["--lm", "tiny-random", "--units", "4", "--plain-batch", "2", "--plain-length", "8"])
        == 0
    )
    out = capsys.readouterr().out
    assert "bound: an engine doing this work at plain forward's FLOP rate reaches" in out
    assert "measured: engine at" in out and "of its FLOP rate" in out
