"""Resumable results: a journal of per-dataset records, written the moment each fit is scored.

A benchmark run can take hours; a killed run (Ctrl-C, OOM, a lost machine) must not lose finished
fits. Every process (the pytest controller and each xdist worker) appends its records to its own
JSON-lines shard in a journal folder next to the results file, flushing and fsyncing each line.
The next run reads the results file and the journal and reuses every stored record whose
:func:`reuse_key` matches, so it computes only what is missing or stale. The key holds the adapter
fingerprint (code, hyperparameters, library versions; see ``EstimatorAdapter.fingerprint``), so a
changed adapter reruns only that adapter.

When a run has merged the journal into the results file, shards whose records are all in that file
are deleted. A torn last line (a process killed mid-write) is skipped with a warning. A line that is
valid JSON but not a result record (missing fields, e.g. written by another tool or edited by hand) is
skipped with a warning naming the shard and line, so it never blocks later writes of the results file;
its shard is kept as ``<shard>.jsonl.rejected`` once its other records are merged.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

JOURNAL_DIR_NAME = ".sdscm-journal"
#: Suffix of a merged shard that held malformed lines (kept, no longer read).
REJECTED_SUFFIX = ".rejected"

#: A stored record answers a new request only if all of these match.
REUSE_FIELDS: tuple[str, ...] = ("estimator", "adapter_fingerprint", "lm", "setting", "dataset_fingerprint")


class JournalWarning(UserWarning):
    """A journal line could not be read (a torn write); that one result will be recomputed."""


def reuse_key(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(record.get(f)) for f in REUSE_FIELDS)


#: Adapter fingerprints that identify no adapter code: such a record could match any adapter, so never reused.
NO_FINGERPRINT: tuple[Any, ...] = (None, "", "unavailable")


def reusable(record: Mapping[str, Any]) -> bool:
    """Failed fits are not reused (a failure may come from the environment, so it is retried), nor
    records without an adapter fingerprint (nothing shows they came from the adapter's current code)."""
    return not record.get("failed", False) and record.get("adapter_fingerprint") not in NO_FINGERPRINT


def journal_dir(results_json: Path) -> Path:
    return Path(results_json).parent / JOURNAL_DIR_NAME


class Journal:
    """The journal folder of one results file; each process appends to its own shard."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._shard: Path | None = None
        self._fallback: Path | None = None  # where appends go once the folder cannot be written

    @property
    def shard(self) -> Path:
        """This process's shard (host and pid in the name, so processes never share a file)."""
        if self._shard is None:
            host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
            self._shard = self.folder / f"{host}-{os.getpid()}.jsonl"
        return self._shard

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record durably before the next fit starts.

        If the journal folder cannot be written (it went read-only, the disk filled up), the record goes
        to a shard in the system temp folder instead, with a warning naming it, rather than raising in
        the middle of a benchmark and losing the fit.
        """
        from sdscm_bench.results_file import _jsonable

        # The values the results file would store (numpy scalars unwrapped, NaN/inf as None): a NaN in an
        # extra field must not make the append raise in the middle of a benchmark.
        line = json.dumps(_jsonable(record), default=json_default, allow_nan=False) + "\n"
        try:
            self._append_line(self.shard, line)
        except OSError as exc:
            if self._fallback is None:
                self._fallback = Path(tempfile.gettempdir()) / JOURNAL_DIR_NAME / self.shard.name
                warnings.warn(
                    JournalWarning(
                        f"{self.shard}: cannot write the results journal ({exc.strerror or exc}); journaling "
                        f"to {self._fallback} instead; the results file still gets them at the end of the "
                        "run, but a rerun after a kill does not reuse them; make the folder writable"
                    ),
                    stacklevel=2,
                )
            self._append_line(self._fallback, line)

    @staticmethod
    def _append_line(shard: Path, line: str) -> None:
        shard.parent.mkdir(parents=True, exist_ok=True)
        with open(shard, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []

    def _read_shard(self, path: Path, rejected: list[int] | None = None) -> Iterator[dict[str, Any]]:
        """The shard's valid records; the numbers of lines that are JSON but no record go to ``rejected``."""
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
            problem = record_problem(record)
            if problem is not None:
                # Passing it on would make every later merge into the results file fail on it.
                warnings.warn(
                    JournalWarning(
                        f"{path}:{number}: journal line is not a result record ({problem}); skipped, so later "
                        f"results are still written; once the shard's other records are merged it is kept "
                        f"as {path.name}{REJECTED_SUFFIX} for inspection (delete it when done)"
                    ),
                    stacklevel=3,
                )
                if rejected is not None:
                    rejected.append(number)
                continue
            yield record

    def records(self) -> list[dict[str, Any]]:
        """Every valid record of every shard, oldest shard first (torn and malformed lines are skipped)."""
        return [rec for path in self.shards() for rec in self._read_shard(path)]

    def compact(self, merged: Iterable[Mapping[str, Any]]) -> int:
        """Delete shards whose every record is in ``merged`` (the results file); returns how many.

        A merged shard that held malformed lines is not deleted but renamed ``<shard>.jsonl.rejected``
        (no longer read), so what it held is never lost silently.
        """
        present = {reuse_key(r) for r in merged}
        removed = 0
        for path in self.shards():
            rejected: list[int] = []
            if all(reuse_key(r) in present for r in self._read_shard(path, rejected)):
                if rejected:
                    kept = path.with_name(path.name + REJECTED_SUFFIX)
                    os.replace(path, kept)
                    warnings.warn(
                        JournalWarning(
                            f"{path}: merged into the results file except lines {rejected}, which are not "
                            f"result records; the shard is kept as {kept}"
                        ),
                        stacklevel=2,
                    )
                else:
                    path.unlink(missing_ok=True)
                removed += 1
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
        return removed


def record_problem(record: Any) -> str | None:
    """Why a journal line's JSON value is not a result record the results file can merge (None: it is)."""
    from sdscm_bench.results_file import RECORD_KEY, REQUIRED_FIELDS

    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        return f"lacks the fields {missing}"
    empty = [k for k in RECORD_KEY if record[k] in (None, "")]
    if empty:
        return f"has empty key fields {empty}"
    return None


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
