"""LM backends by local path and hub id, offline, with the provenance that enters cache keys."""

from __future__ import annotations

import pytest

from sdscm_bench.errors import ModelLoadError
from sdscm_bench.lm import build_tiny_random_lm, lm_identity, load_lm
from sdscm_bench.lm_names import lm_key
from sdscm_bench.scoring import CandidateScorer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny random GPT-2 saved as an ordinary HF checkpoint directory."""
    path = tmp_path_factory.mktemp("tiny-ckpt")
    model, tokenizer = build_tiny_random_lm()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_local_path_loads_and_scores_like_the_in_memory_model(checkpoint):
    from_path = load_lm(str(checkpoint), "float32", "cpu")
    in_memory = load_lm("tiny-random", "float32", "cpu")
    context, candidates = "The weather is ", ["sunny", "rainy", "snowy"]
    a = CandidateScorer(from_path).score(context, candidates)
    b = CandidateScorer(in_memory).score(context, candidates)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-6
    assert from_path.describe() == lm_identity(str(checkpoint), "float32", "cpu")
    assert from_path.describe()["lm"] == lm_key(str(checkpoint))  # name + weights, not the path


def test_weights_fingerprint_follows_the_weights(checkpoint, tmp_path):
    model, tokenizer = build_tiny_random_lm(seed=1)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (
        lm_identity(str(tmp_path))["weights_fingerprint"]
        != lm_identity(str(checkpoint))["weights_fingerprint"]
    )


def test_dtype_is_recorded(checkpoint):
    assert load_lm(str(checkpoint), "bfloat16", "cpu").describe()["dtype"] == "bfloat16"
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        load_lm(str(checkpoint), "float8", "cpu")


def test_unavailable_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="local checkpoint path"):
        load_lm("no-such-org/no-such-model-sdscm", "float32", "cpu")
