"""The results file: every per-dataset record of every run, merged by key, written atomically.

Every per-dataset result is one JSON record (schema: :data:`REQUIRED_FIELDS`). The results file keeps
records from all runs; a run over a subset of estimators, LMs, settings or datasets replaces only the
records with its own key (:data:`RECORD_KEY`) and keeps every other row, so partial runs never
clobber the leaderboard. Files are written atomically (temp file + ``os.replace``) so an interrupted
run leaves the previous file intact.

Results file layout::

    {"format_version": 1,
     "runs": [header, ...],      # one provenance.collect_header() dict per write, oldest first
     "records": [record, ...]}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sdscm_bench.errors import SdscmError
from sdscm_bench.metrics import METRIC_KEYS

FORMAT_VERSION = 1

#: Two records with the same values of these fields are results for the same thing; the newer wins.
RECORD_KEY: tuple[str, ...] = ("estimator", "lm", "setting", "dataset_fingerprint")

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


class ResultsFileError(SdscmError):
    """A results file is missing, unreadable or not in the expected layout."""


# ---------------------------------------------------------------------------------------------------
# Records and the results file


def record_key(record: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(record[k]) for k in RECORD_KEY)


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


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a published leaderboard must be readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_results(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """Read a results file; an absent file is an empty one only when ``missing_ok``."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return {"format_version": FORMAT_VERSION, "runs": [], "records": []}
        raise ResultsFileError(f"{path}: results file not found")
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
    bad = [
        i
        for i, r in enumerate(doc["records"])
        if not isinstance(r, dict) or any(k not in r for k in RECORD_KEY)
    ]
    if bad:
        raise ResultsFileError(
            f"{path}: records {bad[:5]} are not objects with the key fields {list(RECORD_KEY)}"
        )
    doc.setdefault("runs", [])
    doc.setdefault("format_version", FORMAT_VERSION)
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
    json_path: str | Path,
    new_records: Iterable[Mapping[str, Any]],
    header: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge a run's records into the results file (same key replaced, all others kept) atomically.

    ``header`` (from :func:`collect_header`) is appended to the file's ``runs``. Returns the merged
    document. Not safe against two processes merging into the same file at the same moment.
    """
    json_path = Path(json_path)
    new_records = list(new_records)
    doc = read_results(json_path, missing_ok=True)
    doc["records"] = merge_records(doc["records"], new_records)
    if header is not None:
        doc["runs"].append(_jsonable({**header, "n_records": len(new_records)}))
    doc["format_version"] = FORMAT_VERSION
    _atomic_write_text(json_path, json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n")
    return doc
