"""Fit one adapter on one dataset and score it: the record the plugin journals and the gate compares.

Kept apart from the pytest glue so that scripts (``benchmarks/gate_check.py``) and notebooks make
records exactly as the benchmark does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdscm_bench.dataset import SDSCMDataset

MAX_ERROR_CHARS = 2000


def dataset_fingerprint(ds: SDSCMDataset) -> str:
    """The content hash of a dataset: released data carry ``fingerprint``, generated data ``cache_key``."""
    fp = ds.meta.get("fingerprint") or ds.meta.get("cache_key")
    if not fp:
        raise ValueError(f"dataset {ds.name!r} has no fingerprint or cache_key in its metadata")
    return str(fp)


def dataset_seed(fingerprint: str) -> int:
    """The fit seed: a fixed function of the dataset's content, so reruns and subsets reproduce fits."""
    return int(hashlib.sha256(fingerprint.encode()).hexdigest()[:8], 16) % (2**31 - 1)


def error_text(exc: BaseException) -> str:
    text = repr(exc)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def adapter_ident(adapter: Any, estimator: str) -> dict[str, Any]:
    """The fields that identify the fitted estimator in a record (and key its reuse)."""
    return {
        "estimator": estimator,
        "library": adapter.library,
        "library_version": adapter.version,
        "adapter_fingerprint": adapter.fingerprint(),
        "versions": adapter.library_versions(),
    }


def score_dataset(
    adapter: Any,
    ds: SDSCMDataset,
    setting: str,
    ident: Mapping[str, Any],
    *,
    seed: int | None = None,
    setup_error: str | None = None,
) -> dict[str, Any]:
    """Fit ``adapter`` on ``ds`` observing ``setting``'s covariates and score it against the truth.

    ``ident`` (estimator, library, fingerprint, LM, setting ...) starts the record. ``seed`` defaults
    to :func:`dataset_seed` of the dataset. Any estimator failure is a failed record, never a raise.
    """
    from sdscm_bench.diagnostics import dataset_diagnostics, record_fields
    from sdscm_bench.metrics import dataset_metrics, failed_metrics

    fingerprint = dataset_fingerprint(ds)
    seed = dataset_seed(fingerprint) if seed is None else seed
    t, y, ite = ds.t, ds.y, ds.ite
    record: dict[str, Any] = {
        **ident,
        "family": ds.family.name,
        "dataset": ds.name,
        "dataset_fingerprint": fingerprint,
        "seed": seed,
        "n_units": int(len(t)),
        **record_fields(
            dataset_diagnostics(ds)
        ),  # the data's fitness, summarised per family on the leaderboard
    }
    if setup_error is not None:
        return record | failed_metrics(sate=float(ite.mean())) | {"failed": True, "error": setup_error}
    X = ds.covariates(setting, encoding=adapter.covariate_encoding)
    started = time.perf_counter()
    seconds: float | None = None
    try:
        est = adapter.run(X, t, y, seed)
        seconds = time.perf_counter() - started
        metrics = dataset_metrics(
            ate=est.ate,
            cate=est.cate,
            ate_interval=est.ate_interval,
            cate_interval=est.cate_interval,
            ite=ite,
            y=y,
            fit_seconds=seconds,
            allow_infinite_bounds=True,
        )
    except (Exception, SystemExit) as exc:  # any estimator failure is a result, not a crash
        if seconds is None:
            seconds = time.perf_counter() - started
        failed = failed_metrics(sate=float(ite.mean()), fit_seconds=seconds)
        return record | failed | {"failed": True, "error": error_text(exc)}
    return record | metrics | {"failed": False, "error": None}
