"""Where sdscm-bench keeps its cache: option > SDSCM_BENCH_CACHE > the user's cache directory."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import platformdirs

CACHE_ENV = "SDSCM_BENCH_CACHE"


def cache_root(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("sdscm-bench"))


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def spec_dir() -> Path:
    """The shipped spec files: package data (``sdscm_bench/specs``, a link to the repository's
    ``datasets/`` folder in a checkout), so installed wheels find them too."""
    return Path(str(importlib.resources.files("sdscm_bench") / "specs"))


def resolve_spec(spec: str | os.PathLike[str]) -> Path:
    """A spec path, or the name of a shipped spec (e.g. ``oncology``); here, so that torch-free
    callers (planning a run on the released data) resolve names exactly as generation does."""
    path = Path(spec)
    if path.exists() or path.suffix:
        return path
    for ext in (".yaml", ".yml", ".toml", ".json"):
        if (spec_dir() / f"{spec}{ext}").exists():
            return spec_dir() / f"{spec}{ext}"
    return path
