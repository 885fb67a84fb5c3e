"""Shared fixtures for the engine, cache, CLI and independence tests.

Models are loaded once per session. ``torch_single_thread`` pins torch to one intra-op
thread for a test. Measured on this 2-core machine: while another process kept a core busy,
torch's default of two OpenMP threads made a 31-token forward of the tiny model ~200x
slower (0.2 s instead of 1 ms) and SmolLM2 generation 6-9x slower; on an idle machine two
threads are at most ~1.5x faster. One thread keeps test times predictable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sdscm_bench.lm import LanguageModel, load_lm
from sdscm_bench.spec import Family, load_family

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def torch_single_thread() -> Iterator[None]:
    """Run the test with one torch thread, restoring the previous setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_lm() -> LanguageModel:
    """The tiny random GPT-2 (offline, deterministic)."""
    return load_lm("tiny-random")


@pytest.fixture(scope="session")
def smollm2_lm() -> LanguageModel:
    """The embedded SmolLM2-135M in float32 on the CPU (converted into the cache on first use)."""
    return load_lm("smollm2", "float32", "cpu")


@pytest.fixture(scope="session")
def families() -> dict[str, Family]:
    """The shipped spec files of datasets/, by name, parsed once."""
    return {p.stem: load_family(p) for p in sorted((REPO / "datasets").glob("*.yaml"))}
