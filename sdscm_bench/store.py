"""Resumable results: a journal of per-dataset records, written the moment each fit is scored.

A benchmark run can take hours; a killed run (Ctrl-C, OOM, a lost machine) must not lose finished
fits. Every process (the pytest controller and each xdist worker) appends its records to its own
JSON-lines shard in a journal folder next to the results file, flushing and fsyncing each line.
The next run reads the results file and the journal and reuses every stored record whose
:func:`reuse_key` matches, so it computes only what is missing or stale. The key holds the adapter
fingerprint (code, hyperparameters, library versions; see ``EstimatorAdapter.fingerprint``), so a
changed adapter reruns only that adapter.

When a run has merged the journal into the results file, shards whose records are all in that file
are deleted. A torn last line (a process killed mid-write) is skipped with a warning.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

JOURNAL_DIR_NAME = ".sdscm-journal"

#: A stored record answers a new request only if all of these match.
REUSE_FIELDS: tuple[str, ...] = ("estimator", "adapter_fingerprint", "lm", "setting", "dataset_fingerprint")


class JournalWarning(UserWarning):
    """A journal line could not be read (a torn write); that one result will be recomputed."""


def reuse_key(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(record.get(f)) for f in REUSE_FIELDS)


def reusable(record: Mapping[str, Any]) -> bool:
    """Failed fits are not reused: a failure may come from the environment, so it is retried."""
    return not record.get("failed", False) and record.get("adapter_fingerprint") not in (None, "unavailable")


def journal_dir(results_json: Path) -> Path:
    return Path(results_json).parent / JOURNAL_DIR_NAME


class Journal:
    """The journal folder of one results file; each process appends to its own shard."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._shard: Path | None = None

    @property
    def shard(self) -> Path:
        """This process's shard (host and pid in the name, so processes never share a file)."""
        if self._shard is None:
            host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
            self._shard = self.folder / f"{host}-{os.getpid()}.jsonl"
        return self._shard

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record durably before the next fit starts."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=json_default, allow_nan=False) + "\n"
        with open(self.shard, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def _read_shard(self, path: Path) -> Iterator[dict[str, Any]]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            warnings.warn(JournalWarning(f"{path}: unreadable journal shard ({exc}); skipped"), stacklevel=3)
            return
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(
                    JournalWarning(f"{path}:{number}: torn journal line skipped; that result is recomputed"),
                    stacklevel=3,
                )
                continue
            if isinstance(record, dict):
                yield record

    def records(self) -> list[dict[str, Any]]:
        """Every readable record of every shard, oldest shard first."""
        return [rec for path in self.shards() for rec in self._read_shard(path)]

    def compact(self, merged: Iterable[Mapping[str, Any]]) -> int:
        """Delete shards whose every record is in ``merged`` (the results file); returns how many."""
        present = {reuse_key(r) for r in merged}
        removed = 0
        for path in self.shards():
            if all(reuse_key(r) in present for r in self._read_shard(path)):
                path.unlink(missing_ok=True)
                removed += 1
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
        return removed


def stored_index(*sources: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Reusable records by :func:`reuse_key`; a later source wins over an earlier one."""
    index: dict[tuple[str, ...], dict[str, Any]] = {}
    for source in sources:
        for record in source:
            if reusable(record):
                index[reuse_key(record)] = dict(record)
    return index


def json_default(obj: Any) -> Any:
    """JSON fallback for numpy scalars and paths in records."""
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
