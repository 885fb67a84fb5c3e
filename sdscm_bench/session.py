"""One benchmark run's state and work, without pytest: data per LM, evaluation with reuse, outputs, gate.

The pytest plugin keeps one :class:`BenchSession` per process (the xdist controller and each worker);
:func:`sdscm_bench.run` keeps one per call. Per dataset a case fits the estimator (seed derived from
the dataset's fingerprint, so the same data always get the same seed whatever subset or order a run
uses), scores it and records one row, journaled at once; an estimator that raises or returns a
NaN/malformed estimate gives a failed row, never a stopped run. A stored result for the same adapter
fingerprint, LM, setting and dataset is reused instead of refitted.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdscm_bench.errors import SdscmError
from sdscm_bench.plan import PAPER_PREFIX, BenchmarkUsageError, Case, Options, slug
from sdscm_bench.runner import adapter_ident, dataset_fingerprint, error_text, score_dataset
from sdscm_bench.store import Journal, journal_dir, reuse_key, stored_index

if TYPE_CHECKING:
    from sdscm_bench.dataset import SDSCMDataset
    from sdscm_bench.spec import Family

REUSED_FLAG = "_reused"  # in-memory only: the record came from an earlier run; stripped before writing
HEADER_PACKAGES = ("sdscm-bench", "numpy", "scikit-learn", "torch", "transformers", "pytest")


class SdscmBenchWarning(UserWarning):
    """Something the benchmark user should see but that does not fail an item (e.g. nothing to compare)."""


@contextlib.contextmanager
def plain_progress(show: bool) -> Iterator[bool]:
    """Progress bars as asked, with nothing to lift (outside pytest's output capture)."""
    yield show


@dataclass
class BenchSession:
    """The benchmark state of one process: options, datasets per LM, the records made, the gate's verdicts."""

    options: Options
    run_id: str = ""
    #: Context in which datasets are generated; yields whether to show a progress bar. The plugin
    #: replaces it to lift pytest's output capture for the minutes a real LM takes.
    progress: Callable[[], contextlib.AbstractContextManager[bool]] = field(
        default=lambda: plain_progress(True)
    )
    journaling: bool = True  # False: nothing is written (no journal; write_outputs is not called)
    baseline: list[dict[str, Any]] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    written: dict[str, Any] = field(default_factory=dict)
    gate: list[Any] | None = None  # gate.Verdict list, after finish() with a baseline
    _datasets: dict[tuple[str, str | None], list[SDSCMDataset]] = field(default_factory=dict)
    _families: dict[str, Family] = field(default_factory=dict)
    _journal: Journal | None = None
    _stored: dict[tuple[str, ...], dict[str, Any]] | None = None
    _provenance: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.run_id:
            from sdscm_bench.provenance import new_run_id

            self.run_id = new_run_id()

    # -- checks before anything runs --------------------------------------------------------------

    def prepare(self, check_outputs: bool = True) -> list[str]:
        """Check what can be checked before the first fit; returns notices for the user (not errors).

        Every LM's family, settings and variants, the paper data's sizes, the results file (must be
        readable: it is merged into; and, with ``check_outputs``, its folder writable unless nothing is
        written) and the baseline (loaded here).
        """
        from sdscm_bench.results_file import ResultsFileError, check_writable, read_results

        opts = self.options
        for lm in opts.lms:
            self.settings(lm)
            self.variants(lm)
        self.check_paper_sizes()
        notices = []
        legacy = opts.results_json.with_name("results.json")
        if not opts.results_json.exists() and legacy.exists():
            notices.append(
                f"{legacy} is a results file of the earlier JSON format and is not read for reuse; convert it "
                f"with: sdscm-bench migrate-results {legacy} {opts.results_json}"
            )
        try:
            read_results(opts.results_json, missing_ok=True)
            if self.journaling and check_outputs:
                check_writable(opts.results_json, opts.leaderboard_md, hint="pass another leaderboard path")
        except ResultsFileError as exc:
            raise BenchmarkUsageError(
                "leaderboard", f"{exc}; fix or move it, or pass another leaderboard path"
            ) from None
        if opts.compare is not None:
            from sdscm_bench.gate import BaselineError, load_baseline

            try:
                self.baseline = load_baseline(opts.compare)
            except BaselineError as exc:
                raise BenchmarkUsageError("compare", str(exc)) from None
        return notices

    # -- what to run ------------------------------------------------------------------------------

    def family(self, lm: str, variant: str | None = None) -> Family:
        """The family an LM's datasets come from: the paper's for paper LMs, else the chosen spec."""
        if lm not in self._families:
            from sdscm_bench.paper_data import oncology_family
            from sdscm_bench.spec import load_family

            opts = self.options
            try:
                if opts.is_paper(lm):
                    self._families[lm] = oncology_family()
                else:
                    if not opts.family.exists():
                        from sdscm_bench.paths import spec_dir

                        shipped = ", ".join(sorted(p.stem for p in spec_dir().glob("*.yaml")))
                        raise BenchmarkUsageError(
                            "family",
                            f"spec {opts.family} not found; pass a spec file or the name of a spec "
                            f"in {spec_dir()} ({shipped})",
                        )
                    self._families[lm] = load_family(opts.family)
            except BenchmarkUsageError:
                raise
            except SdscmError as exc:
                raise BenchmarkUsageError("family", str(exc)) from None
        return self._families[lm] if variant is None else self._families[lm].variant(variant)

    def variants(self, lm: str) -> list[str | None]:
        """The variants an LM's cases run on (None: the base family); paper LMs have none."""
        opts = self.options
        if not opts.variants:
            return [None]
        if opts.is_paper(lm):
            if all(opts.is_paper(x) for x in opts.lms):
                raise BenchmarkUsageError(
                    "variants",
                    f"the released data of {', '.join(opts.lms)} have no variants; drop the variants, "
                    "or add a generated LM (e.g. smollm2) whose family spec defines them",
                )
            return [None]
        chosen: list[str | None] = []
        for want in opts.variants:
            try:
                name = self.family(lm).variant(want).variant_name
            except SdscmError as exc:
                raise BenchmarkUsageError("variants", f"{exc} (or 'base' for the family itself)") from None
            if name not in chosen:
                chosen.append(name)
        return chosen

    def settings(self, lm: str) -> list[str]:
        """The family's setting names selected by the options (matched with spaces or underscores)."""
        names = list(self.family(lm).settings)
        wanted = self.options.settings
        if not wanted:
            return names
        chosen = []
        for want in wanted:
            match = [n for n in names if n == want or slug(n) == slug(want)]
            if not match:
                raise BenchmarkUsageError(
                    "settings",
                    f"unknown setting {want!r} for LM {lm} (family {self.family(lm).name}); "
                    f"its settings are {', '.join(slug(n) for n in names)}",
                )
            chosen += [m for m in match if m not in chosen]
        return chosen

    def cases(self) -> list[Case]:
        """Every estimator × LM × variant × setting (× chunk of datasets per item)."""
        opts = self.options
        per_item, n = opts.datasets_per_item, opts.n_datasets
        chunks: list[tuple[int, int | None]] = (
            [(a, min(a + per_item, n)) for a in range(0, n, per_item)]
            if per_item and per_item < n
            else [(0, None)]
        )
        return [
            Case(e, lm, s, start, stop, variant)
            for e in opts.estimators
            for lm in opts.lms
            for variant in self.variants(lm)
            for s in self.settings(lm)
            for start, stop in chunks
        ]

    def check_paper_sizes(self) -> None:
        """Fail early when a paper LM has fewer released datasets than ``n_datasets`` asks for."""
        from sdscm_bench.paper_data import PaperDataError, paper_dataset_ids

        opts = self.options
        for lm in opts.lms:
            if not opts.is_paper(lm):
                continue
            assert opts.paper_data is not None
            try:
                ids = paper_dataset_ids(opts.paper_data, lm.removeprefix(PAPER_PREFIX))
            except PaperDataError as exc:
                raise BenchmarkUsageError("lms", str(exc), subject=lm) from None
            if len(ids) < opts.n_datasets:
                raise BenchmarkUsageError(
                    "n_datasets", f"{lm} has only {len(ids)} released datasets", subject=str(opts.n_datasets)
                )

    # -- data -------------------------------------------------------------------------------------

    def datasets(self, lm: str, variant: str | None = None) -> list[SDSCMDataset]:
        """The LM's (and variant's) datasets, loaded or generated on first use and kept for the session."""
        if (lm, variant) not in self._datasets:
            opts = self.options
            ref = opts.lm_ref(lm)
            if ref.paper:
                from sdscm_bench.paper_data import load_paper_dataset, paper_dataset_ids

                assert opts.paper_data is not None
                name = lm.removeprefix(PAPER_PREFIX)
                ids = paper_dataset_ids(opts.paper_data, name)[: opts.n_datasets]
                self._datasets[lm, variant] = [load_paper_dataset(opts.paper_data, name, i) for i in ids]
            else:
                from sdscm_bench.families import FamilyRequest, load_or_generate

                request = FamilyRequest(
                    spec=opts.family,
                    lm=ref.source,
                    n_datasets=opts.n_datasets,
                    n_units=opts.units,
                    dtype=opts.dtype,
                    cache_dir=opts.cache_dir,
                    variant=variant,
                    require_quality=opts.require_quality,
                )
                with self.progress() as visible:
                    self._datasets[lm, variant] = load_or_generate(request, progress=visible)
        return self._datasets[lm, variant]

    # -- the work ---------------------------------------------------------------------------------

    def evaluate(self, case: Case, datasets: Sequence[SDSCMDataset]) -> list[dict[str, Any]]:
        """Fit and score ``case.estimator`` on the case's datasets; one record each, failures included."""
        from sdscm_bench.estimators.registry import available, get_adapter

        adapter = None
        try:
            adapter = get_adapter(case.estimator)
            ident = adapter_ident(adapter, case.estimator)
            setup_error = None
        except Exception as exc:  # a broken adapter class fails its rows, not the session
            cls = available().get(case.estimator)
            ident = {
                "estimator": case.estimator,
                "library": getattr(cls, "library", None),
                "library_version": None,
                "adapter_fingerprint": "unavailable",
                "versions": None,
            }
            setup_error = error_text(exc)
        ident |= {"lm": case.lm, "setting": case.setting, "variant": case.variant}
        records = []
        for ds in case.select(datasets):
            stored = self.stored_result(ident, ds) if setup_error is None else None
            if stored is not None:
                record = stored | {"variant": case.variant, REUSED_FLAG: True}
            else:
                record = score_dataset(
                    adapter,
                    ds,
                    case.setting,
                    ident,
                    setup_error=setup_error,
                    fit_timeout=self.options.fit_timeout,
                )
                record |= self.provenance()
                if self.journaling:
                    self.journal().append(record)
            records.append(record)
        self.records.extend(records)
        return records

    def provenance(self) -> dict[str, Any]:
        """Run id, commit, dirty flag and machine (computed once), and the time of this record."""
        from sdscm_bench.provenance import now, run_provenance

        if self._provenance is None:
            self._provenance = run_provenance(self.run_id)
        return {**self._provenance, "date": now()}

    def own_records(self) -> list[dict[str, Any]]:
        """This run's records as they are written (without the in-memory reuse flag)."""
        return [{k: v for k, v in r.items() if k != REUSED_FLAG} for r in self.records]

    def reused_count(self) -> int:
        return sum(1 for r in self.records if r.get(REUSED_FLAG))

    # -- reuse ------------------------------------------------------------------------------------

    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(journal_dir(self.options.results_json))
        return self._journal

    def stored_result(self, ident: Mapping[str, Any], ds: SDSCMDataset) -> dict[str, Any] | None:
        """An earlier result for this adapter fingerprint, LM, setting and dataset, unless recomputing."""
        opts = self.options
        if opts.recompute:
            return None
        if self._stored is None:
            from sdscm_bench.results_file import read_results

            results = read_results(opts.results_json, missing_ok=True)["records"]
            self._stored = stored_index(results, self.journal().records())
        key = reuse_key({**ident, "dataset_fingerprint": dataset_fingerprint(ds)})
        return self._stored.get(key)

    def unpaired_notice(self, case: Case, records: Sequence[Mapping[str, Any]]) -> str | None:
        """With a baseline: a notice when it has none of this case's datasets (nothing to gate)."""
        if self.baseline is None:
            return None
        from sdscm_bench.gate import pair_records

        if pair_records(self.baseline, records):
            return None
        return (
            f"the baseline {self.options.compare} shares no datasets with {case.id} "
            "(same estimator, LM, setting and dataset fingerprint); nothing was compared"
        )

    def check_pairing(self, case: Case, records: Sequence[Mapping[str, Any]]) -> None:
        """Warn when the baseline has none of this case's datasets.

        The gate itself decides at the end of the run, over every paired dataset of an estimator
        (:mod:`sdscm_bench.gate`): one item's few datasets are too few for its paired test.
        """
        notice = self.unpaired_notice(case, records)
        if notice is not None:
            warnings.warn(SdscmBenchWarning(notice), stacklevel=3)

    # -- the end of a run -------------------------------------------------------------------------

    def finish(self, command: str) -> None:
        """Write the results file and leaderboard (when journaling), then run the gate (with a baseline)."""
        if not self.records:
            return
        if self.journaling:
            self.write_outputs(command)
        if self.baseline is not None:
            from sdscm_bench.gate import compare

            self.gate = compare(self.baseline, self.own_records())

    def write_outputs(self, command: str) -> None:
        """Merge the records into the results file, re-render the leaderboard and the optional box plots.

        A failure here must not lose hours of fits: the records are then dumped next to the results
        file and ``written["error"]`` says what went wrong.
        """
        from sdscm_bench.leaderboard import box_plots, write_leaderboard
        from sdscm_bench.paths import cache_root
        from sdscm_bench.provenance import collect_header

        opts = self.options
        header = collect_header(command=command, packages=_header_packages(self.records), run_id=self.run_id)
        header["benchmark"] = opts.as_header()
        try:
            with results_lock(opts.results_json, opts.cache_dir):
                journal = self.journal()
                # Journaled records of killed runs or crashed workers first; this run's own records win.
                doc = write_leaderboard(
                    opts.results_json, opts.leaderboard_md, [*journal.records(), *self.own_records()], header
                )
                journal.compact(doc["records"])
            self.written.update(md=opts.leaderboard_md, json=opts.results_json, n_total=len(doc["records"]))
            if opts.box_plots:
                self.written["plots"] = box_plots(doc["records"], opts.leaderboard_md.parent)
        except Exception as exc:
            # Next to the results file if that folder takes it, else the cache, else the temp folder.
            from sdscm_bench.results_file import save_fallback

            saved = save_fallback(
                opts.results_json,
                self.records,
                header,
                exc,
                fallback_dirs=[opts.results_json.parent, cache_root(opts.cache_dir)],
            )
            if saved.fallback is not None:
                self.written["dump"] = saved.fallback
            self.written["error"] = error_text(exc)
            self.written["saved"] = str(saved)

    def quality_lines(self) -> tuple[int, list[str]]:
        """Datasets unfit to rank estimators (no overlap, degenerate effects or outcome), by name.

        Returns the number of distinct datasets seen and one line per violated threshold.
        """
        from sdscm_bench.diagnostics import RECORD_FIELDS, quality_problems, thresholds_for

        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for rec in self.records:
            seen.setdefault((str(rec["lm"]), str(rec["dataset"])), rec)
        lines = []
        for (lm, dataset), rec in sorted(seen.items()):
            diag = {k: rec.get(f"data_{k}") for k in RECORD_FIELDS}
            try:
                thresholds = thresholds_for(self.family(lm))
            except BenchmarkUsageError:
                thresholds = thresholds_for(None)
            lines += [f"{lm} · {dataset}: {problem}" for problem in quality_problems(diag, thresholds)]
        return len(seen), lines


def results_lock(results_json: Path, cache_dir: str | Path | None = None) -> Any:
    """The lock every writer of one results file holds (runs, xdist controllers, merge-journal), kept in
    the cache so that a read-only leaderboard folder still gets a clear error from the write itself."""
    from filelock import FileLock

    from sdscm_bench.paths import cache_root

    lock_dir = cache_root(cache_dir) / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock_name = hashlib.sha256(str(Path(results_json).resolve()).encode()).hexdigest()[:16]
    return FileLock(str(lock_dir / f"leaderboard-{lock_name}.lock"), timeout=600)


def merge_journal(
    results_json: str | Path, leaderboard_md: str | Path, command: str, cache_dir: str | Path | None = None
) -> tuple[int, int]:
    """Merge the journal of killed or still-running runs into the results file and re-render the
    leaderboard, without fitting anything: hours of fits become a committed file at any moment.

    Returns ``(journaled records merged, records in the results file)``. The journal is left as it is
    (a run may still be appending to it; its records are reused from either place).
    """
    from sdscm_bench.leaderboard import write_leaderboard
    from sdscm_bench.provenance import collect_header

    results_json = Path(results_json)
    with results_lock(results_json, cache_dir):
        journal = Journal(journal_dir(results_json))
        records = list(journal.records())
        if not records:
            return 0, 0
        header = collect_header(command=command, packages=_header_packages(records))
        doc = write_leaderboard(results_json, leaderboard_md, records, header)
    return len(records), len(doc["records"])


def _header_packages(records: Sequence[Mapping[str, Any]]) -> list[str]:
    libraries = sorted({str(r["library"]) for r in records if r.get("library")})
    return list(dict.fromkeys([*libraries, *HEADER_PACKAGES]))
