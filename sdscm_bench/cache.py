"""Content-addressed dataset cache: parquet + manifest, atomic writes, one generator per key.

Key = sha256 of (format version, spec fingerprint, LM id, weights fingerprint, dtype, effective
scoring, temperature, seed, N), and the head's dtype where it differs from the weights'. The spec fingerprint covers per-variable temperatures and the
variant's name, so every variant of a family has its own entries. A dataset directory holds ``data.parquet`` (the table only, so equal
inputs give byte-identical files) and ``manifest.json`` (checksum and metadata). A file whose
checksum does not match, or whose manifest lacks its checksum or metadata, is reported with a warning,
removed and regenerated, never used. A cache folder that cannot be written is a ``CacheError`` naming
the folder and the fix.
Concurrent requests (pytest-xdist workers) serialise on a file lock: one generates, the others
wait and then read the finished entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from sdscm_bench.dataset import FORMAT_VERSION, SDSCMDataset
from sdscm_bench.errors import CacheError
from sdscm_bench.generate import GenerationSettings
from sdscm_bench.paths import CACHE_ENV, cache_root
from sdscm_bench.spec import Family


class CorruptCacheWarning(UserWarning):
    """A cached file failed its checksum and is being regenerated."""


def _manifest_problem(manifest: object) -> str | None:
    """Why a parsed manifest is unusable (None when it has a checksum and a metadata mapping)."""
    if not isinstance(manifest, dict):
        return f"manifest is a JSON {type(manifest).__name__}, not an object"
    if not isinstance(manifest.get("sha256"), str):
        return "manifest has no 'sha256' checksum"
    if not isinstance(manifest.get("meta"), dict):
        return "manifest has no 'meta' mapping"
    return None


def _unwritable(folder: Path, exc: OSError, what: str) -> CacheError:
    """The error for a cache folder this process cannot write: the folder, the reason and the fix."""
    return CacheError(
        f"cache folder {folder} {what}: {exc.strerror or exc}; make it writable, or point the cache at a "
        f"writable folder with {CACHE_ENV}=PATH (pytest: --sdscm-cache-dir PATH; sdscm-bench: --cache-dir PATH)"
    )


def dataset_key(family: Family, lm_identity: dict[str, str], settings: GenerationSettings) -> str:
    payload = {
        "format_version": FORMAT_VERSION,
        "spec": family.fingerprint(),
        "lm": lm_identity["lm"],
        "weights": lm_identity["weights_fingerprint"],
        "dtype": lm_identity["dtype"],
        **settings.resolved(family).as_dict(),  # the effective scoring: explicit, else the spec's, else sum
    }
    if lm_identity.get("head_dtype", lm_identity["dtype"]) != lm_identity["dtype"]:
        payload["head_dtype"] = lm_identity["head_dtype"]  # e.g. bfloat16 weights, float32 logits on CPU
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def table_bytes(table: pd.DataFrame) -> bytes:
    """Deterministic parquet encoding of a table (no timestamps or run metadata inside)."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), buf, compression="zstd")
    return buf.getvalue()


class DatasetCache:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = cache_root(root) / "datasets"

    def path(self, family: Family, key: str) -> Path:
        return self.root / family.name / key

    def _read(self, family: Family, key: str) -> SDSCMDataset | None:
        entry = self.path(family, key)
        manifest_file, data_file = entry / "manifest.json", entry / "data.parquet"
        if not manifest_file.exists():
            return None
        problem = None
        try:
            manifest = json.loads(manifest_file.read_text())
            blob = data_file.read_bytes()
        except (OSError, ValueError) as exc:
            problem = f"unreadable ({type(exc).__name__})"
        else:
            problem = _manifest_problem(manifest)
            if problem is None and hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
                problem = "checksum mismatch"
        if problem is None:
            try:
                table = pq.read_table(io.BytesIO(blob)).to_pandas()
            except (OSError, pa.ArrowException) as exc:  # a checksum over a bad file (e.g. written by a bug)
                problem = f"unreadable parquet ({type(exc).__name__})"
        if problem is not None:
            warnings.warn(
                f"cached dataset {entry} is truncated or corrupted ({problem}); regenerating it",
                CorruptCacheWarning,
                stacklevel=3,
            )
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return SDSCMDataset(table=table, family=family, meta=manifest["meta"])

    def _write(self, family: Family, key: str, dataset: SDSCMDataset) -> None:
        entry = self.path(family, key)
        tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        blob = table_bytes(dataset.table)
        (tmp / "data.parquet").write_bytes(blob)
        manifest = {"key": key, "sha256": hashlib.sha256(blob).hexdigest(), "meta": dataset.meta}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)

    def get_or_create(
        self,
        family: Family,
        lm_identity: dict[str, str],
        settings: GenerationSettings,
        create: Callable[[], SDSCMDataset],
    ) -> tuple[SDSCMDataset, bool]:
        """The cached dataset for these inputs, generating it under a lock on a miss.

        Returns (dataset, hit).
        """
        key = dataset_key(family, lm_identity, settings)
        hit = self._read(family, key)
        if hit is not None:
            return hit, True
        entry = self.path(family, key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(entry.parent, exc, "cannot be created") from None
        lock = FileLock(str(entry) + ".lock")
        try:
            lock.acquire()
        except OSError as exc:  # e.g. a read-only cache whose family folder already exists
            raise _unwritable(
                entry.parent, exc, "is not writable (cannot create a lock file in it)"
            ) from None
        try:
            hit = self._read(family, key)  # another process may have finished while we waited
            if hit is not None:
                return hit, True
            dataset = create()
            dataset.meta["cache_key"] = key
            try:
                self._write(family, key, dataset)
            except OSError as exc:
                raise _unwritable(
                    entry.parent, exc, "is not writable (the dataset cannot be stored)"
                ) from None
        finally:
            lock.release()
        reread = self._read(family, key)
        if reread is None:
            raise CacheError(f"dataset {entry} could not be read back after writing")
        return reread, False
