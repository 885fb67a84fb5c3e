"""Fit one adapter on one dataset and score it: the record the plugin journals and the gate compares.

Kept apart from the pytest glue so that scripts (``benchmarks/gate_check.py``) and notebooks make
records exactly as the benchmark does.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sdscm_bench.dataset import SDSCMDataset

MAX_ERROR_CHARS = 2000

#: ``failure_reason`` of a failed record: the adapter could not be set up, raised, or ran out of time.
FAILURE_REASONS = ("setup", "error", "timeout")


class FitTimeout(BaseException):
    """A fit ran past its time limit.

    A BaseException, like KeyboardInterrupt, so an adapter's own ``except Exception`` cannot swallow it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the fit took longer than the fit timeout of {seconds:g} s and was stopped")
        self.seconds = seconds


class FitTimeoutWarning(UserWarning):
    """A fit timeout was asked for where it cannot be enforced (not the main thread, or no SIGALRM)."""


def timeout_supported() -> bool:
    """Whether :func:`fit_deadline` can enforce a limit here: POSIX, in the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def fit_deadline(seconds: float | None) -> Iterator[bool]:
    """Raise :class:`FitTimeout` in the block once ``seconds`` of wall time have passed; yields whether armed.

    How: ``signal.setitimer(ITIMER_REAL)`` and a SIGALRM handler that raises in the main thread. It
    works in a plain pytest process and in a pytest-xdist worker alike, because xdist (3.6 and later)
    runs every test in the worker's main thread, and each worker is its own process with its own timer;
    a timed-out fit stops only that worker's current fit, and the worker goes on with its next one.
    Limits: Python checks for signals between bytecodes, so C code that never returns to the
    interpreter (a hung BLAS call, a native loop without signal checks) is stopped only once it does;
    and a fit that started threads or child processes may leave them running. ``None`` (or 0) means
    no limit. Where no limit can be enforced (another thread, Windows) the block runs without one and a
    :class:`FitTimeoutWarning` says so. A timer armed by someone else (pytest-timeout's signal method)
    is saved and re-armed with its remaining time afterwards.
    """
    if not seconds:
        yield False
        return
    if seconds < 0:
        raise ValueError(
            f"fit timeout {seconds!r} must be a positive number of seconds, or None for no limit"
        )
    if not timeout_supported():
        warnings.warn(
            FitTimeoutWarning(
                f"a fit timeout of {seconds:g} s cannot be enforced here (it needs SIGALRM in the main "
                f"thread; this is thread {threading.current_thread().name!r}); the fit runs without a limit"
            ),
            stacklevel=3,
        )
        yield False
        return
    fired = False

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:  # raise once: the restoring code below may then never be interrupted again
            fired = True
            raise FitTimeout(seconds)

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    late: FitTimeout | None = None
    try:
        yield True
    finally:
        while True:  # the alarm may go off while disarming: disarm again, then report it
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_handler)
                if old_delay > 0:  # give the outer timer back what is left of it (at least 1 ms)
                    left = max(old_delay - (time.monotonic() - started), 1e-3)
                    signal.setitimer(signal.ITIMER_REAL, left, old_interval)
                break
            except FitTimeout as exc:
                late = exc
        if late is not None:
            raise late


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
    fit_timeout: float | None = None,
) -> dict[str, Any]:
    """Fit ``adapter`` on ``ds`` observing ``setting``'s covariates and score it against the truth.

    ``ident`` (estimator, library, fingerprint, LM, setting ...) starts the record. ``seed`` defaults
    to :func:`dataset_seed` of the dataset. Any estimator failure is a failed record, never a raise;
    a failed record's ``failure_reason`` says which (:data:`FAILURE_REASONS`). ``fit_timeout`` (seconds,
    None for no limit) stops a fit that runs longer (see :func:`fit_deadline` for how, and for xdist):
    it becomes a failed record with ``failure_reason`` "timeout", and the caller goes on with the next.
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
        failed = failed_metrics(sate=float(ite.mean()))
        return record | failed | {"failed": True, "error": setup_error, "failure_reason": "setup"}
    X = ds.covariates(setting, encoding=adapter.covariate_encoding)
    started = time.perf_counter()
    seconds: float | None = None
    try:
        with fit_deadline(fit_timeout):
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
    except (Exception, SystemExit, FitTimeout) as exc:  # any estimator failure is a result, not a crash
        if seconds is None:
            seconds = time.perf_counter() - started
        failed = failed_metrics(sate=float(ite.mean()), fit_seconds=seconds)
        reason = "timeout" if isinstance(exc, FitTimeout) else "error"
        text = f"timeout: {exc}" if isinstance(exc, FitTimeout) else error_text(exc)
        return record | failed | {"failed": True, "error": text, "failure_reason": reason}
    return record | metrics | {"failed": False, "error": None}
