"""Where the engine's memory and head time go on CPU (issue 13): per-pass RSS, and the head's cost per dtype.

    python benchmarks/engine_memory.py passes --lm smollm2 --dtype bfloat16 --units 64 \\
        --paper-config ../shared/sdscm-paper-data/breast_cancer_config.json
    python benchmarks/engine_memory.py head --lm smollm2 --rows 2730 --chunks 2730 341

``passes`` prints, for every forward pass, its shape (contexts, cached width, new tokens), the bytes of
cache the state it continues keeps alive, and the process's RSS before, at its highest during (a thread
samples it every 5 ms) and after the pass; then the peak. ``head`` times the vocabulary head (matmul,
then log-softmax of float32 logits) over ``--rows`` random hidden states, in bfloat16 and float32, in
chunks of each ``--chunks`` rows, three times each.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb() -> float:
    """Current resident set size (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def state_mb(state) -> float:
    return (
        sum(t.numel() * t.element_size() for seg in state.segments() for pair in seg.layers for t in pair)
        / 2**20
    )


def passes(args: argparse.Namespace) -> None:
    import torch
    from generation_speed import speed_family
    from tabulate import tabulate

    from sdscm_bench import scoring
    from sdscm_bench.generate import GenerationSettings, generate_dataset
    from sdscm_bench.lm import load_lm

    torch.set_num_threads(1)
    lm = load_lm(args.lm, args.dtype, "cpu")
    loaded = rss_mb()
    highest = [0.0]

    def sample() -> None:
        while True:
            highest[0] = max(highest[0], rss_mb())
            time.sleep(0.005)

    rows = []
    extend = scoring.CandidateScorer.extend

    def measured(self, state, groups):
        packed = [scoring._pack(state.tokens[p], targets) for p, targets in groups]
        before = highest[0] = rss_mb()
        new_state, scores = extend(self, state, groups)
        rows.append([
            len(rows) + 1, len(groups), max(pk.keep for pk in packed), max(len(pk.tokens) for pk in packed),
            f"{state_mb(state):.0f}", f"{before:.0f}", f"{highest[0]:.0f}", f"{rss_mb():.0f}",
        ])  # fmt: skip
        return new_state, scores

    scoring.CandidateScorer.extend = measured
    threading.Thread(target=sample, daemon=True).start()
    family = speed_family(args.paper_config) if args.lm != "tiny-random" else _tiny_family()
    generate_dataset(family, lm, GenerationSettings(args.units, args.seed))
    scoring.CandidateScorer.extend = extend
    headers = [
        "pass",
        "contexts",
        "cached width",
        "new tokens",
        "state kept MB",
        "RSS before",
        "RSS highest",
        "after",
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{args.lm}, {args.dtype}, {args.units} units: RSS after loading {loaded:,.0f} MB; peak {peak:,.0f} MB"
    )


def _tiny_family():
    from sdscm_bench.paths import spec_dir
    from sdscm_bench.spec import load_family

    return load_family(spec_dir() / "oncology.yaml")


def head(args: argparse.Namespace) -> None:
    import torch

    from sdscm_bench.lm import load_lm

    torch.set_num_threads(1)
    weight = load_lm(args.lm, "float32", "cpu").model.get_output_embeddings().weight.detach()
    hidden = torch.randn(args.rows, weight.shape[1])
    for dtype in (torch.bfloat16, torch.float32):
        w, x = weight.to(dtype), hidden.to(dtype)
        for chunk in args.chunks:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                for at in range(0, args.rows, chunk):
                    torch.log_softmax(torch.nn.functional.linear(x[at : at + chunk], w).float(), dim=-1)
                times.append(time.perf_counter() - start)
            flops = 2 * args.rows * weight.shape[0] * weight.shape[1]
            print(
                f"{str(dtype).removeprefix('torch.')}, {args.rows} rows in chunks of {chunk}: "
                + ", ".join(f"{t:.3f}" for t in times)
                + f" s ({flops / min(times) / 1e9:.1f} GFLOP/s with the log-softmax)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("passes", help="RSS per forward pass of one dataset's generation")
    p.add_argument("--lm", default="smollm2")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--paper-config", default=None, metavar="JSON", help="the paper's phrasings (read at run time)"
    )
    h = sub.add_parser("head", help="the vocabulary head's time per dtype and chunk size")
    h.add_argument("--lm", default="smollm2")
    h.add_argument("--rows", type=int, default=2730)
    h.add_argument("--chunks", type=int, nargs="+", default=[2730, 341])
    args = parser.parse_args(argv)
    passes(args) if args.what == "passes" else head(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
