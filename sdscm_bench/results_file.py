"""The results file: every per-dataset record of every run, merged by key, written atomically.

Every per-dataset result is one record (schema: :data:`REQUIRED_FIELDS`, plus any extra fields such
as ``seed`` or ``n_units``). The results file keeps records from all runs; a run over a subset of
estimators, LMs, settings or datasets replaces only the records with its own key (:data:`RECORD_KEY`)
and keeps every other row, so partial runs never clobber the leaderboard. Files are written atomically
(temp file in the same folder + ``os.replace``) so an interrupted run leaves the previous file intact.

Results file layout (format 2, ``results.parquet``): one parquet file, zstd-compressed, one row per
record, rows sorted by :data:`SORT_KEY` so the same records always give the same bytes. The columns
are the union of all records' keys; a key a record lacks is stored as null, so **a key absent from a
record reads back as None** (absent and None are the same thing in this file). Columns whose values
are all bool, all int or all float are stored as such (all-None columns as null); string columns as
strings; any other column (dict or list values, or mixed types such as ints and floats) is stored as
JSON text and decoded on read. The parquet key-value metadata holds::

    sdscm_bench.format_version  "2"
    sdscm_bench.runs            JSON list of run headers (provenance.collect_header() dicts), oldest first,
                                each with n_records: the distinct record keys that write merged in
    sdscm_bench.json_columns    JSON list of the columns stored as JSON text

:func:`read_results` returns ``{"format_version", "runs": [header, ...], "records": [record, ...]}``.
It also reads format 1, a JSON file of that same shape (old baselines for ``--compare``); the format is
told by the file's content (parquet's ``PAR1`` magic), not its name.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from sdscm_bench.errors import SdscmError
from sdscm_bench.metrics import METRIC_KEYS

FORMAT_VERSION = 2

#: Two records with the same values of these fields are results for the same thing; the newer wins.
RECORD_KEY: tuple[str, ...] = ("estimator", "lm", "setting", "dataset_fingerprint")

#: Row order of the results file (it includes :data:`RECORD_KEY`, so the order is total).
SORT_KEY: tuple[str, ...] = ("family", "lm", "setting", "estimator", "dataset_fingerprint")

#: Fields every record must carry (values may be None where documented in metrics.FORMULAS).
REQUIRED_FIELDS: tuple[str, ...] = (
    "estimator",  # adapter name, e.g. "econml.CausalForestDML"
    "library",  # distribution the estimator comes from, e.g. "econml"
    "library_version",
    "adapter_fingerprint",  # hash of the adapter's code/config, so a changed adapter is visible
    "lm",  # language model that generated the data
    "setting",  # confounding setting (which covariates the estimator observes)
    "family",  # SD-SCM family name
    "dataset",  # dataset name/id, for humans
    "dataset_fingerprint",  # hash identifying the dataset's content
    "ate",
    "sate",
    *METRIC_KEYS,
    "failed",  # bool: the estimator raised, timed out or returned a non-finite/malformed estimate
    "error",  # str | None: why it failed
)
# Optional: ``failure_reason`` on failed records ("setup", "error" or "timeout"; runner.FAILURE_REASONS).

META_FORMAT = b"sdscm_bench.format_version"
META_RUNS = b"sdscm_bench.runs"
META_JSON_COLUMNS = b"sdscm_bench.json_columns"
PARQUET_MAGIC = b"PAR1"
_INT64 = (-(2**63), 2**63 - 1)


class ResultsFileError(SdscmError):
    """A results file is missing, unreadable or not in the expected layout."""


class ResultsNotSavedError(ResultsFileError):
    """The results could not be written where asked; ``fallback`` is where they are instead (None: nowhere)."""

    def __init__(self, message: str, target: Path, fallback: Path | None) -> None:
        super().__init__(message)
        self.target, self.fallback = target, fallback


#: The fix named when the results' folder cannot be written (the caller may pass its own option's name).
WHERE_HINT = "make the folder writable, or write the leaderboard elsewhere (pytest: --leaderboard PATH)"


# ---------------------------------------------------------------------------------------------------
# Records


def record_key(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(record[k]) for k in RECORD_KEY)


def _sort_key(record: Mapping[str, Any]) -> tuple[tuple[bool, str], ...]:
    return tuple((record.get(k) is not None, str(record.get(k))) for k in SORT_KEY)


def validate_record(record: Mapping[str, Any]) -> None:
    """Reject a record missing schema fields now, rather than render a half-empty leaderboard later."""
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise ValueError(f"result record for {record.get('dataset')!r} lacks fields {missing}")
    empty = [k for k in RECORD_KEY if record[k] in (None, "")]
    if empty:
        raise ValueError(f"result record for {record.get('dataset')!r} has empty key fields {empty}")


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; numpy scalars unwrapped and non-finite floats turned into None (valid JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---------------------------------------------------------------------------------------------------
# Atomic writes


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write via a temp file in the same directory and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a published leaderboard must be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    """:func:`_atomic_write` of UTF-8 text."""
    _atomic_write(Path(path), lambda fh: fh.write(text.encode("utf-8")))


# ---------------------------------------------------------------------------------------------------
# Format 2: parquet


def _column_type(values: list[Any]) -> str:
    """'null', 'bool', 'int', 'float', 'string' or 'json' for one column's values (None ignored)."""
    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int" if _INT64[0] <= v <= _INT64[1] else "json")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("string")
        else:
            kinds.add("json")
        if len(kinds) > 1:
            return "json"  # mixed (e.g. ints and floats): JSON keeps each value's type exactly
    return kinds.pop() if kinds else "null"


def _to_table(runs: list[Any], records: list[dict[str, Any]]) -> Any:
    import pyarrow as pa

    columns: dict[str, None] = {}  # union of the records' keys, in first-seen order
    for rec in records:
        columns.update(dict.fromkeys(rec))
    arrays = {}
    json_columns = []
    arrow_types = {"null": pa.null(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}
    for name in columns:
        values = [rec.get(name) for rec in records]
        kind = _column_type(values)
        if kind == "json":
            json_columns.append(name)
            values = [None if v is None else json.dumps(v, allow_nan=False) for v in values]
        arrays[name] = pa.array(values, type=arrow_types.get(kind, pa.string()))
    metadata = {
        META_FORMAT: str(FORMAT_VERSION).encode(),
        META_RUNS: json.dumps(runs, allow_nan=False).encode(),
        META_JSON_COLUMNS: json.dumps(json_columns).encode(),
    }
    if not arrays:  # no records: parquet needs a schema, so an empty key column
        arrays = {k: pa.array([], type=pa.string()) for k in RECORD_KEY}
    return pa.table(arrays).replace_schema_metadata(metadata)


def _normalized(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records as the file returns them: sorted by :data:`SORT_KEY`, every record with every column."""
    records = sorted((dict(r) for r in records), key=_sort_key)
    columns: dict[str, None] = {}
    for rec in records:
        columns.update(dict.fromkeys(rec))
    return [{k: rec.get(k) for k in columns} for rec in records]


def write_results(path: str | Path, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``doc`` (``runs`` and ``records``) as a format-2 file atomically; returns it as read back.

    Records are sorted by :data:`SORT_KEY` and given every column (a missing key becomes None). A
    record that cannot be stored raises before the file is touched.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    runs = _jsonable(list(doc.get("runs", [])))
    records = _normalized(_jsonable(list(doc["records"])))
    table = _to_table(runs, records)
    floats = [f.name for f in table.schema if f.type == pa.float64()]
    options = {
        "compression": "zstd",
        "compression_level": 9,
        # Floats compress ~20% better split into byte streams than dictionary-encoded.
        "use_byte_stream_split": floats,
        "use_dictionary": [name for name in table.column_names if name not in floats],
    }
    _atomic_write(Path(path), lambda fh: pq.write_table(table, fh, **options))
    return {"format_version": FORMAT_VERSION, "runs": runs, "records": records}


def _read_parquet(path: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as fh:  # a file object: no dataset discovery, partitioning or globbing
            table = pq.read_table(fh)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsFileError(
            f"{path}: not a readable parquet results file (truncated or corrupt?): {exc}"
        ) from exc
    meta = table.schema.metadata or {}
    if META_FORMAT not in meta:
        raise ResultsFileError(
            f"{path}: a parquet file without sdscm-bench results metadata ({META_FORMAT!r})"
        )
    try:
        version = int(meta[META_FORMAT])
        runs = json.loads(meta.get(META_RUNS, b"[]"))
        json_columns = set(json.loads(meta.get(META_JSON_COLUMNS, b"[]")))
    except ValueError as exc:
        raise ResultsFileError(f"{path}: malformed sdscm-bench metadata: {exc}") from exc
    if version > FORMAT_VERSION:
        raise ResultsFileError(
            f"{path}: results format {version} is newer than this sdscm-bench reads ({FORMAT_VERSION})"
        )
    if not isinstance(runs, list):
        raise ResultsFileError(f"{path}: run headers ({META_RUNS!r}) are not a JSON list")
    missing = [k for k in RECORD_KEY if k not in table.column_names]
    if missing and table.num_rows:
        raise ResultsFileError(f"{path}: records lack the key fields {missing}")
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        if name in json_columns:
            try:
                values = [None if v is None else json.loads(v) for v in values]
            except (TypeError, ValueError) as exc:
                raise ResultsFileError(f"{path}: column {name!r} is not JSON text: {exc}") from exc
        columns[name] = values
    records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return {"format_version": version, "runs": runs, "records": records}


# ---------------------------------------------------------------------------------------------------
# Format 1: JSON (read only)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{path}: cannot read results file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise ResultsFileError(f"{path}: expected a JSON object with a 'records' list")
    doc.setdefault("runs", [])
    doc.setdefault("format_version", 1)
    return doc


# ---------------------------------------------------------------------------------------------------
# The results file


def read_results(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """Read a results file (format 2 parquet, or format 1 JSON); absent is empty only when ``missing_ok``."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return {"format_version": FORMAT_VERSION, "runs": [], "records": []}
        raise ResultsFileError(f"{path}: results file not found")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(PARQUET_MAGIC))
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read results file: {exc}") from exc
    parquet = magic == PARQUET_MAGIC or (path.suffix == ".parquet" and not magic.lstrip().startswith(b"{"))
    doc = _read_parquet(path) if parquet else _read_json(path)
    bad = [
        i
        for i, r in enumerate(doc["records"])
        if not isinstance(r, dict) or any(r.get(k) is None for k in RECORD_KEY)
    ]
    if bad:
        raise ResultsFileError(
            f"{path}: records {bad[:5]} are not objects with the key fields {list(RECORD_KEY)}"
        )
    return doc


def merge_records(
    existing: Iterable[Mapping[str, Any]], new_records: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Existing records with those of the same key replaced in place, then the new keys appended."""
    new_by_key: dict[tuple[str, ...], dict[str, Any]] = {}
    for rec in new_records:
        validate_record(rec)
        new_by_key[record_key(rec)] = _jsonable(rec)  # a duplicate within the run: the last wins
    merged: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for rec in existing:
        key = record_key(rec)
        if key in seen:
            continue
        seen.add(key)
        merged.append(new_by_key.get(key, dict(rec)))
    merged.extend(rec for key, rec in new_by_key.items() if key not in seen)
    return merged


def merge_results(
    path: str | Path,
    new_records: Iterable[Mapping[str, Any]],
    header: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge a run's records into the results file (same key replaced, all others kept) atomically.

    ``header`` (from :func:`collect_header`) is appended to the file's ``runs`` with ``n_records``,
    the number of distinct record keys among ``new_records``. The file is written in format 2 whatever
    its name (a format-1 JSON file is read, merged and rewritten as parquet). Returns the merged
    document as :func:`read_results` would read it back. Not safe against two processes merging into
    the same file at the same moment.
    """
    path = Path(path)
    new_records = list(new_records)
    doc = read_results(path, missing_ok=True)
    records = merge_records(doc["records"], new_records)
    runs = list(doc["runs"])
    if header is not None:
        runs.append({**header, "n_records": len({record_key(r) for r in new_records})})
    return write_results(path, {"runs": runs, "records": records})


# ---------------------------------------------------------------------------------------------------
# Never losing a run's results


def _probe_folder(folder: Path) -> OSError | None:
    """Whether a file can be created in ``folder`` or, if it does not exist yet, in its nearest ancestor.

    A real probe file, not ``os.access``: root passes every access check, yet a read-only mount refuses.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return NotADirectoryError(errno.ENOTDIR, f"{existing} is a file, not a folder", str(existing))
    try:
        fd, probe = tempfile.mkstemp(prefix=".sdscm-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc
    return None


def check_writable(*paths: str | Path, hint: str = WHERE_HINT) -> None:
    """Before any fit: every output file's folder (and the results journal's) can be written to.

    Raises :class:`ResultsFileError` naming the folder, the reason and ``hint`` (the fix), so a run with
    an unwritable leaderboard folder stops before hours of fitting instead of failing after them.
    """
    from sdscm_bench.store import journal_dir

    folders: dict[Path, None] = {}
    for path in paths:
        path = Path(path)
        if path.is_dir():
            raise ResultsFileError(f"{path}: is a folder, but the results file goes there; {hint}")
        folders[path.parent] = None
        journal = journal_dir(path)
        if journal.exists():
            folders[journal] = None
    for folder in folders:
        problem = _probe_folder(folder)
        if problem is not None:
            reason = problem.strerror or str(problem)
            raise ResultsFileError(f"{folder}: cannot write the results there ({reason}); {hint}")


def fallback_paths(target: str | Path, fallback_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Where :func:`save_results` tries to save records that cannot go to ``target``, in order.

    ``fallback_dirs`` (e.g. the cache folder), then the system temp folder; the name says when and by
    which process, so fallbacks never overwrite each other.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"sdscm-results-unsaved-{Path(target).stem}-{stamp}-{os.getpid()}.json"
    return [Path(d) / name for d in (*fallback_dirs, tempfile.gettempdir())]


def save_results(
    path: str | Path,
    new_records: Iterable[Mapping[str, Any]],
    header: Mapping[str, Any] | None = None,
    *,
    write: Callable[[Path, list[dict[str, Any]], Mapping[str, Any] | None], dict[str, Any]] | None = None,
    fallback_dirs: Iterable[str | Path] = (),
    hint: str = WHERE_HINT,
) -> dict[str, Any]:
    """Merge a run's records into ``path`` like :func:`merge_results` (or ``write``), never losing them.

    ``write(path, records, header)`` defaults to :func:`merge_results`; pass e.g. a wrapper of
    ``leaderboard.write_leaderboard`` to render the markdown too. If it fails for any reason (a read-only
    folder, a full disk, a corrupt existing file), the records and header are saved as a format-1 JSON
    results file (readable by :func:`read_results`) in the first writable place of :func:`fallback_paths`,
    and :class:`ResultsNotSavedError` names it and how to merge it later (:func:`merge_saved`). The file
    at ``path`` is left as it was (writes are atomic).
    """
    path = Path(path)
    records = [dict(r) for r in new_records]
    try:
        return (write or merge_results)(path, records, header)
    except Exception as exc:
        raise save_fallback(path, records, header, exc, fallback_dirs=fallback_dirs, hint=hint) from exc


def save_fallback(
    path: str | Path,
    records: Iterable[Mapping[str, Any]],
    header: Mapping[str, Any] | None,
    reason: BaseException | str,
    *,
    fallback_dirs: Iterable[str | Path] = (),
    hint: str = WHERE_HINT,
) -> ResultsNotSavedError:
    """Save records that could not go to ``path`` (because of ``reason``) in a fallback file.

    For callers that caught the failure themselves. Writes a format-1 JSON results file in the first
    writable place of :func:`fallback_paths` and returns (does not raise) the :class:`ResultsNotSavedError`
    to report: its ``fallback`` is the file, or None when nowhere could be written.
    """
    path = Path(path)
    records = [dict(r) for r in records]
    if isinstance(reason, BaseException):
        reason = f"{type(reason).__name__}: {reason}"
    doc = {"format_version": 1, "runs": [] if header is None else [dict(header)], "records": records}
    text = json.dumps(_jsonable(doc), default=str, allow_nan=False, indent=1)
    tried = []
    for candidate in fallback_paths(path, fallback_dirs):
        try:
            _atomic_write_text(candidate, text)
        except OSError as write_exc:
            tried.append(f"{candidate.parent} ({write_exc.strerror or write_exc})")
            continue
        return ResultsNotSavedError(
            f"{path}: could not write the results there ({reason}); this run's {len(records)} records are "
            f"saved in {candidate}; {hint}, then merge them with "
            f"`sdscm-bench merge-saved {candidate} {path}`",
            path,
            candidate,
        )
    return ResultsNotSavedError(
        f"{path}: could not write the results there ({reason}), nor save them anywhere else (tried "
        f"{'; '.join(tried)}); {hint}",
        path,
        None,
    )


def merge_saved(saved: str | Path, path: str | Path) -> dict[str, Any]:
    """Merge a fallback file written by :func:`save_results` into the results file ``path``.

    The saved file's run header(s) are appended as they were; the saved file is then deleted.
    """
    saved = Path(saved)
    doc = read_results(saved)
    runs = doc["runs"]
    merged = merge_results(path, doc["records"], runs[0] if len(runs) == 1 else None)
    saved.unlink()
    return merged
