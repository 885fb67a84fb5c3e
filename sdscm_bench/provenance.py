"""Provenance of a run: date, commit, machine and package versions, so a result can be reproduced."""

from __future__ import annotations

import os
import platform
import secrets
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def _git(*args: str, cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def new_run_id() -> str:
    """A run id that sorts by time and does not collide: UTC timestamp plus 8 random hex digits."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def machine_name() -> str:
    """Host, architecture, CPU model and count: where a record's fit (and its fit time) was measured."""
    return f"{socket.gethostname()} ({platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPUs)"


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """``git_commit`` (None outside a checkout) and ``git_dirty`` (tracked files changed) of ``cwd``,
    by default this package's directory."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    commit = _git("rev-parse", "HEAD", cwd=where)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=where) if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def run_provenance(run_id: str, cwd: str | Path | None = None) -> dict[str, Any]:
    """The fields every record of a run carries: run id, commit, dirty flag and machine."""
    return {"run_id": run_id, **git_state(cwd), "machine": machine_name()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def collect_header(
    command: str, packages: Sequence[str], cwd: str | Path | None = None, run_id: str | None = None
) -> dict[str, Any]:
    """Provenance of a run: what produced these numbers, so a leaderboard row can be reproduced.

    ``cwd`` is where git is asked for the commit (see :func:`git_state`).
    """
    return {
        "run_id": run_id,
        "date": now(),
        **git_state(cwd),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": {p: _package_version(p) for p in packages},
        "command": command,
        "argv": list(sys.argv),
    }
