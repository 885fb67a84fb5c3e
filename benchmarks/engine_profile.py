"""Where the engine's time goes against the plain forward, operator by operator, per token.

    python benchmarks/engine_profile.py --lm smollm2 --dtype bfloat16 --units 64 \\
        --paper-config ../shared/sdscm-paper-data/breast_cancer_config.json

torch's profiler over one engine generation and over plain batched forwards of the same model (16 x 128
tokens, as the ceiling in generation_speed.py); each operator's self CPU time divided by the tokens each
side ran. The profiler adds overhead of its own, so read shares and differences, not absolute speeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def per_token(prof, tokens: int) -> dict[str, float]:
    """Self CPU milliseconds per token of each operator."""
    return {e.key: e.self_cpu_time_total / 1e3 / tokens for e in prof.key_averages()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lm", default="smollm2")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--paper-config", default=None, metavar="JSON")
    parser.add_argument("--rows", type=int, default=20, help="operators shown")
    args = parser.parse_args()

    import torch
    from generation_speed import speed_family
    from tabulate import tabulate
    from torch.profiler import ProfilerActivity, profile

    from sdscm_bench.generate import GenerationSettings, generate_dataset
    from sdscm_bench.lm import load_lm

    torch.set_num_threads(1)
    lm = load_lm(args.lm, args.dtype, "cpu")
    family = speed_family(args.paper_config)
    generate_dataset(family, lm, GenerationSettings(4, 1))  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ds = generate_dataset(family, lm, GenerationSettings(args.units, 0))
    engine_s, engine_tokens = time.perf_counter() - start, ds.meta["tokens_computed"]
    engine = per_token(prof, engine_tokens)

    ids = torch.randint(0, min(10_000, lm.model.config.vocab_size), (16, 128))
    with torch.inference_mode():
        lm.model.base_model(input_ids=ids)  # warm-up
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(2):
                lm.model.base_model(input_ids=ids)
    plain_s, plain_tokens = time.perf_counter() - start, 2 * ids.numel()
    plain = per_token(prof, plain_tokens)

    print(
        f"engine: {engine_tokens} tokens in {engine_s:.1f} s under the profiler ({engine_tokens / engine_s:.1f}/s)"
    )
    print(
        f"plain forward: {plain_tokens} tokens in {plain_s:.1f} s under the profiler ({plain_tokens / plain_s:.1f}/s)"
    )
    print(
        f"self CPU ms per token: engine {sum(engine.values()):.3f}, plain forward {sum(plain.values()):.3f}\n"
    )
    # the costliest operators of either side (an operator only the plain forward runs is not cut off), to
    # 3 significant digits: a tiny model's per-token times are well below a microsecond
    ops = sorted(set(engine) | set(plain), key=lambda k: -max(engine.get(k, 0.0), plain.get(k, 0.0)))
    rows = [[op, f"{engine.get(op, 0.0):.3g}", f"{plain.get(op, 0.0):.3g}"] for op in ops[: args.rows]]
    print(tabulate(rows, headers=["operator", "engine ms/token", "plain ms/token"], tablefmt="github",
                   disable_numparse=True))  # fmt: skip


if __name__ == "__main__":
    main()
