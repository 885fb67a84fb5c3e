"""How close to plain forward the engine can get at all: the work it must do per token, counted.

    python benchmarks/engine_work.py --lm smollm2 --units 128 --dtype float32

Plain batched forward (the ceiling in generation_speed.py) runs every token through the decoder
only, each attending to ~L/2 earlier tokens of its own sequence. The engine runs the same decoder on
each new token, but each attends to the whole cached context (dense SDPA scores every cached column
of the forward, masked or not), and every position that predicts a candidate token also goes through
the vocabulary head (the full-vocabulary normaliser is part of each exact log-likelihood). Forward
hooks count, over one generation: tokens, head rows and query-key pairs; from them and the model's
shapes, the FLOPs per token of each, and so the highest share of plain-forward tokens/s an engine
doing exactly this work could reach at plain forward's FLOP rate. Also timed: the achieved shares of
tokens/s and of FLOP rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def decoder_flops_per_token(model: Any) -> float:
    """2 x the multiply-adds of the decoder's weight matrices for one token (linear and GPT-2's Conv1D
    layers; embeddings, norms and biases excluded; no attention scores)."""
    import torch

    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    matrices = [p for p in model.base_model.parameters() if p.dim() == 2 and id(p) not in embeddings]
    return 2.0 * sum(p.numel() for p in matrices)


def attention_flops_per_pair(config: Any) -> float:
    """2 x the multiply-adds of one query-key pair in every layer (scores and the weighted values)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2.0 * 2 * config.num_hidden_layers * config.num_attention_heads * head_dim


class WorkCounter:
    """Forward hooks on the decoder and the vocabulary head that count what each forward computes."""

    def __init__(self, model: Any) -> None:
        self.tokens = self.pairs = self.head_rows = 0
        self.handles = [
            model.base_model.register_forward_pre_hook(self._decoder, with_kwargs=True),
            model.get_output_embeddings().register_forward_pre_hook(self._head),
        ]

    def _decoder(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows, new = ids.shape
        cache = kwargs.get("cache") or kwargs.get("past_key_values")
        width = cache.get_seq_length() if cache is not None else 0
        self.tokens += rows * new
        self.pairs += rows * new * (width + new)  # dense: every cached and new column, per query

    def _head(self, module: Any, args: tuple) -> None:
        self.head_rows += args[0].reshape(-1, args[0].shape[-1]).shape[0]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def main(argv: list[str] | None = None) -> int:
    import torch
    from tabulate import tabulate

    from sdscm_bench.generate import GenerationSettings, generate_dataset
    from sdscm_bench.lm import load_lm
    from sdscm_bench.paths import spec_dir
    from sdscm_bench.spec import load_family

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plain-batch", type=int, default=16)
    parser.add_argument("--plain-length", type=int, default=128)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    lm = load_lm(args.lm, args.dtype, "cpu")
    config = lm.model.config
    family = load_family(spec_dir() / "oncology.yaml")
    generate_dataset(family, lm, GenerationSettings(4, 1))  # warm-up

    counter = WorkCounter(lm.model)
    start = time.perf_counter()
    ds = generate_dataset(family, lm, GenerationSettings(args.units, 0))
    engine_s = time.perf_counter() - start
    counter.remove()
    assert counter.tokens == ds.meta["tokens_computed"]

    batch, length = args.plain_batch, args.plain_length
    ids = torch.randint(0, min(10_000, config.vocab_size), (batch, length))
    with torch.inference_mode():
        lm.model.base_model(input_ids=ids)  # warm-up
        timings = []
        for _ in range(3):  # the ceiling: the best of three
            start = time.perf_counter()
            lm.model.base_model(input_ids=ids)
            timings.append(time.perf_counter() - start)
        plain_s = min(timings)

    body, per_pair = decoder_flops_per_token(lm.model), attention_flops_per_pair(config)
    head_row = 2.0 * config.hidden_size * config.vocab_size
    plain_pairs = batch * length * (length + 1) / 2  # causal: each query and the keys before it
    plain_per_token = body + per_pair * plain_pairs / (batch * length)
    engine_per_token = (
        body + per_pair * counter.pairs / counter.tokens + head_row * counter.head_rows / counter.tokens
    )
    plain_tps = batch * length / plain_s
    engine_tps = counter.tokens / engine_s
    rows = [
        ["tokens through the decoder", f"{counter.tokens:,}", f"{batch * length:,}"],
        ["keys attended per token (mean)", f"{counter.pairs / counter.tokens:,.1f}", f"{(length + 1) / 2:,.1f}"],
        ["vocabulary-head rows per token", f"{counter.head_rows / counter.tokens:.3f}", "0"],
        ["GFLOPs per token", f"{engine_per_token / 1e9:.4f}", f"{plain_per_token / 1e9:.4f}"],
        ["tokens/s", f"{engine_tps:,.0f}", f"{plain_tps:,.0f}"],
        ["GFLOP/s", f"{engine_tps * engine_per_token / 1e9:,.1f}", f"{plain_tps * plain_per_token / 1e9:,.1f}"],
    ]  # fmt: skip
    print(f"\n{args.lm}, {args.dtype}, {args.threads} thread(s), oncology family, {args.units} units")
    print(tabulate(rows, headers=["", "engine", f"plain forward ({batch} x {length})"], tablefmt="github"))
    print(
        f"\nbound: an engine doing this work at plain forward's FLOP rate reaches "
        f"{plain_per_token / engine_per_token:.0%} of plain-forward tokens/s"
    )
    print(
        f"measured: engine at {engine_tps / plain_tps:.0%} of plain-forward tokens/s, "
        f"{engine_tps * engine_per_token / (plain_tps * plain_per_token):.0%} of its FLOP rate"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
