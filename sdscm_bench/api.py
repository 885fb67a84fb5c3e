"""The benchmark as a function call: ``sdscm_bench.run(...)`` does what ``pytest --estimator=...`` does.

For notebooks and scripts that want the numbers without a pytest session. The same plan, reuse,
journal, results file, leaderboard and regression gate as the pytest plugin (which is glue over
:mod:`sdscm_bench.plan` and :mod:`sdscm_bench.session`), so a result computed here is reused by the
plugin and the other way round. Bad options raise :class:`BenchmarkUsageError` with a one-line
message; an estimator that fails on a dataset is a failed record, never an exception.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdscm_bench.plan import BenchmarkUsageError, Options, resolve_options
from sdscm_bench.session import BenchSession, SdscmBenchWarning, plain_progress

if TYPE_CHECKING:
    import pandas as pd

    from sdscm_bench.gate import Verdict
    from sdscm_bench.ranking import RankingTable

__all__ = ["BenchmarkResult", "BenchmarkUsageError", "run"]


@dataclass
class BenchmarkResult:
    """What :func:`run` did: this run's per-dataset records (reused ones included) and where they went."""

    records: list[dict[str, Any]]
    options: Options
    reused: int = 0  # records taken from earlier runs instead of refitted
    leaderboard: Path | None = None  # the markdown file written (None: nothing written)
    results_file: Path | None = None
    plots: list[Path] = field(default_factory=list)
    gate: list[Verdict] | None = None  # the regression gate's verdicts (with ``compare``)
    write_error: str | None = None  # the results could not be merged; they were dumped next to the file

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Records of datasets where the estimator failed (raised, or a non-finite/malformed estimate)."""
        return [r for r in self.records if r.get("failed")]

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.gate or [] if v.regression]

    @property
    def ok(self) -> bool:
        """What pytest's exit status 0 means: no failed dataset, no regression, results written."""
        return not self.failures and not self.regressions and self.write_error is None

    @cached_property
    def tables(self) -> list[RankingTable]:
        """The leaderboard's ranking tables (:mod:`sdscm_bench.ranking`) over this run's records."""
        from sdscm_bench.ranking import ranking_tables

        return ranking_tables(self.records)

    def to_frame(self) -> pd.DataFrame:
        """One row per record (estimator × LM × setting × dataset), every field a column."""
        import pandas as pd

        return pd.DataFrame(self.records)

    def summary(self) -> pd.DataFrame:
        """One row per estimator × LM × variant × setting: the headline numbers of a benchmark item."""
        import pandas as pd

        from sdscm_bench.headline import FIELDS, headline

        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for rec in self.records:
            key = (rec["estimator"], rec["lm"], str(rec.get("variant") or ""), rec["setting"])
            groups.setdefault(key, []).append(rec)
        rows = [headline(recs) for _, recs in sorted(groups.items())]
        return pd.DataFrame(rows, columns=[f for f in FIELDS if f != "reused"])


def run(
    estimators: Sequence[str] | str | None = None,
    lms: Sequence[str] | str | None = None,
    *,
    family: str | os.PathLike[str] | None = None,
    settings: Sequence[str] | str | None = None,
    variants: Sequence[str] | str | None = None,
    n_datasets: int = 3,
    units: int = 100,
    paper_data: str | os.PathLike[str] | None = None,
    leaderboard: str | os.PathLike[str] | None = None,
    compare: str | os.PathLike[str] | None = None,
    box_plots: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    dtype: str = "auto",
    recompute: bool = False,
    require_quality: bool = False,
    fit_timeout: float | None = None,
    write: bool = True,
    progress: bool = True,
) -> BenchmarkResult:
    """Run estimators on SD-SCM datasets and score them against the true effects.

    ``estimators``: adapter names (a list or a comma-separated string; None or ``"all"``: every
    available one). ``lms``: ``paper-gpt2``, ``paper-llama-3-8b`` (released data), ``smollm2``,
    ``tiny-random``, a hub id or a local checkpoint directory (keyed ``<dir>-<fingerprint>``); default
    both paper LMs when their data exist, else ``smollm2``. ``family``: a spec file or shipped family
    name for generated LMs (default ``oncology``). ``settings``/``variants``: the family's confounding
    settings (default all) and generation variants (default the base family). ``n_datasets`` per LM,
    ``units`` per generated dataset.

    With ``write`` (the default) every result is journaled at once and at the end merged into
    ``results.parquet`` next to ``leaderboard`` (default ``./leaderboard/leaderboard.md``, or
    ``./.sdscm-bench/compare/leaderboard.md`` with ``compare``), whose markdown is re-rendered; results
    stored there for the same adapter fingerprint and dataset are reused unless ``recompute``. With
    ``write=False`` stored results are still reused but nothing is written. ``compare``: a baseline
    results file for the regression gate (``result.regressions``). ``fit_timeout``: seconds after which
    a fit is stopped and recorded as failed (``failure_reason`` "timeout"). Relative paths are relative
    to the current directory.
    """
    call = {k: v for k, v in locals().items() if v != _DEFAULTS[k]}
    options = resolve_options(
        estimators=estimators,
        lms=lms,
        family=family,
        settings=settings,
        variants=variants,
        n_datasets=n_datasets,
        units=units,
        paper_data=paper_data,
        leaderboard=leaderboard,
        compare=compare,
        box_plots=box_plots,
        cache_dir=cache_dir,
        dtype=dtype,
        recompute=recompute,
        require_quality=require_quality,
        fit_timeout=fit_timeout,
    )
    session = BenchSession(options, journaling=write, progress=lambda: plain_progress(progress))
    for notice in session.prepare():
        warnings.warn(SdscmBenchWarning(notice), stacklevel=2)
    try:
        for case in session.cases():  # datasets are loaded once per LM and variant, then kept
            records = session.evaluate(case, session.datasets(case.lm, case.variant))
            notice = session.unpaired_notice(case, records)
            if notice is not None:
                warnings.warn(SdscmBenchWarning(notice), stacklevel=2)
    finally:  # an LM that cannot be loaded, or Ctrl-C: what was fitted is still merged and rendered
        session.finish(command=_command(call))
    written = session.written
    if written.get("error"):
        warnings.warn(
            SdscmBenchWarning(
                f"could not write the leaderboard: {written['error']}; this run's records were saved to "
                f"{written.get('dump')} and are in the returned result"
            ),
            stacklevel=2,
        )
    return BenchmarkResult(
        records=session.own_records(),
        options=options,
        reused=session.reused_count(),
        leaderboard=written.get("md"),
        results_file=written.get("json"),
        plots=list(written.get("plots", [])),
        gate=session.gate,
        write_error=written.get("error"),
    )


_DEFAULTS = {name: p.default for name, p in inspect.signature(run).parameters.items()}


def _command(call: dict[str, Any]) -> str:
    """The run header's ``command``: the call with its non-default arguments, to redo the run."""
    args = ", ".join(f"{k}={v!r}" for k, v in call.items())
    return f"sdscm_bench.run({args})"
