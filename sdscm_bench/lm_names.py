"""Stable LM names: the key an LM has in test ids, records, reuse keys and the leaderboard.

Hub ids (``gpt2``), the built-in aliases (``smollm2``, ``tiny-random``) and the paper LMs
(``paper-gpt2``) are their own key. A local checkpoint directory would otherwise be keyed by its path,
which differs between machines and checkouts: its ids would not match, and results stored under one
path would never be reused under another. It is keyed ``<directory name>-<8 hex digits>`` instead,
the digits being the start of the weights fingerprint that generated datasets record
(``sdscm_bench.lm``), so the same weights get the same key wherever they lie and new weights a new key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sdscm_bench.errors import ModelLoadError

PAPER_PREFIX = "paper-"
#: ``sdscm_bench.lm``'s aliases, repeated here so that naming needs no torch import (a test checks them).
BUILTIN_ALIASES = ("smollm2", "embedded", "tiny-random", "tiny-gpt2")
#: The weight files ``sdscm_bench.lm.lm_identity`` fingerprints in a local checkpoint.
WEIGHT_SUFFIXES = (".safetensors", ".bin")
FINGERPRINT_CHARS = 8


@dataclass(frozen=True)
class LmRef:
    """An LM as the benchmark uses it: ``key`` names it everywhere, ``source`` is what to load."""

    key: str
    source: str  # a paper LM name, an alias, a hub id, or a local checkpoint's absolute path
    paper: bool = False  # the paper's released datasets (``paper-<name>``), not a generating LM


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "lm"


def weights_fingerprint(directory: Path) -> str:
    """The fingerprint ``sdscm_bench.lm`` records for a local checkpoint (torch is imported only here)."""
    from sdscm_bench.lm import _file_fingerprint

    weights = [p for p in directory.glob("*") if p.suffix in WEIGHT_SUFFIXES]
    if not weights:
        kinds = ", ".join(f"*{s}" for s in WEIGHT_SUFFIXES)
        raise ModelLoadError(f"LM directory {directory} holds no weight files ({kinds})")
    return _file_fingerprint(weights)


def local_key(directory: Path) -> str:
    """``<directory name>-<fingerprint prefix>``, e.g. ``mymodel-3fa2b1c0``."""
    directory = directory.resolve()
    name = _slug(directory.name)
    if name.startswith(PAPER_PREFIX):  # a key read as a paper LM would select the released data
        name = "local-" + name
    return f"{name}-{weights_fingerprint(directory)[:FINGERPRINT_CHARS]}"


def resolve_lm(name: str, base: Path | None = None) -> LmRef:
    """The key and source of an LM name as given (a relative directory is looked up under ``base``).

    The order follows ``sdscm_bench.lm.load_lm``: aliases win over a directory of the same name.
    """
    name = name.strip()
    if name.startswith(PAPER_PREFIX):
        return LmRef(name, name, paper=True)
    if name in BUILTIN_ALIASES:
        return LmRef(name, name)
    path = Path(name).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if path.is_dir():
        return LmRef(local_key(path), str(path.resolve()))
    return LmRef(name, name)


def lm_key(name: str, base: Path | None = None) -> str:
    """The stable key of an LM name (see the module docstring)."""
    return resolve_lm(name, base).key
