"""Command line: ``sdscm-bench generate|show|validate|publish|migrate-results|merge-saved|merge-journal``.

Bad input exits non-zero with one clear line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from sdscm_bench.errors import SdscmError


def positive_int(text: str) -> int:
    """argparse type: a count that must be at least 1 (0 datasets would exit 0 having done nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a temperature must be finite and > 0 (0 gives NaN propensities, < 0 inverts sampling)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _cmd_generate(args: argparse.Namespace) -> int:
    from sdscm_bench.families import FamilyRequest, load_or_generate

    request = FamilyRequest(
        spec=args.spec, lm=args.lm, n_datasets=args.datasets, n_units=args.units, seed=args.seed,
        dtype=args.dtype, device=args.device, scoring=args.scoring, temperature=args.temperature,
        cache_dir=args.cache_dir, interventions=tuple(_parse_do(d) for d in args.do), randomized=tuple(args.rct),
        variant=args.variant, require_quality=args.require_quality,
    )  # fmt: skip
    if args.workers or args.scheduler:
        from sdscm_bench.fanout import generate_fanned_out

        datasets = generate_fanned_out(request, args.workers, args.scheduler, progress=not args.quiet)
    else:
        datasets = load_or_generate(request, progress=not args.quiet)
    for ds in datasets:
        print(f"{ds.name}: {len(ds)} units, SATE {ds.sate:+.4f} -> {ds.meta['cache_path']}")
    return 0


def _parse_do(text: str) -> tuple[str, str]:
    var, sep, value = text.partition("=")
    if not sep or not var.strip():
        raise SdscmError(f"--do {text!r}: write VARIABLE=VALUE, e.g. --do 'PD-L1 level=high'")
    return var.strip(), value.strip()


def _diagnose_datasets(args: argparse.Namespace) -> list:
    """The datasets ``diagnose`` looks at: released ones for ``--lm paper-*``, else the family's (cached)."""
    if args.lm.startswith("paper-"):
        from sdscm_bench.paper_data import default_paper_data_dir, load_paper_dataset, paper_dataset_ids

        root = Path(args.paper_data) if args.paper_data else default_paper_data_dir()
        if root is None:
            raise SdscmError(f"--lm {args.lm}: no released data found; pass --paper-data PATH")
        name = args.lm.removeprefix("paper-")
        return [load_paper_dataset(root, name, i) for i in paper_dataset_ids(root, name)[: args.datasets]]
    from sdscm_bench.families import FamilyRequest, load_or_generate

    request = FamilyRequest(
        spec=args.spec, lm=args.lm, n_datasets=args.datasets, n_units=args.units, seed=args.seed,
        dtype=args.dtype, cache_dir=args.cache_dir, variant=args.variant,
    )  # fmt: skip
    return load_or_generate(request, progress=not args.quiet)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    import json

    from tabulate import tabulate

    from sdscm_bench.diagnostics import dataset_diagnostics, quality_problems, thresholds_for

    datasets = _diagnose_datasets(args)
    rows, problems_by_dataset, full = [], {}, {}
    for ds in datasets:
        d = dataset_diagnostics(ds)
        problems = quality_problems(d, thresholds_for(ds.family))
        problems_by_dataset[ds.name] = problems
        full[ds.name] = {**d, "problems": problems}
        cells = [d.get(k) for k in ("treated_share", "overlap_share", "ess_share", "sate", "sd_ite",
                                   "nonzero_ite_share", "max_outcome_share", "dim_bias")]  # fmt: skip
        rows.append(
            [ds.name, d["n_units"], *(None if c is None else f"{c:.3g}" for c in cells), len(problems)]
        )
    headers = ["dataset", "units", "treated", "overlap", "IPW ESS/n", "SATE", "sd(ITE)", "ITE != 0",
               "top y share", "DIM - SATE", "problems"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, missingval="-"))
    for name, problems in problems_by_dataset.items():
        for message in problems:
            print(f"{name}: {message}")
    bad = sum(1 for p in problems_by_dataset.values() if p)
    print(f"{bad} of {len(datasets)} datasets violate a quality threshold")
    if args.json:
        Path(args.json).write_text(json.dumps(full, indent=1, default=str), encoding="utf-8")
        print(f"wrote {args.json}")
    if args.into:
        _diagnostics_into(Path(args.into), args.lm, datasets)
    return 1 if (bad and args.strict) else 0


def _diagnostics_into(results: Path, lm: str, datasets: list) -> None:
    """Fill the ``data_*`` fields of the results file's records of these datasets (same LM, same fingerprint).

    For records written before records carried them; the records' metrics are left as they are.
    """
    from sdscm_bench.diagnostics import dataset_diagnostics, record_fields
    from sdscm_bench.results_file import read_results, write_results
    from sdscm_bench.runner import dataset_fingerprint

    fields = {dataset_fingerprint(ds): record_fields(dataset_diagnostics(ds)) for ds in datasets}
    doc = read_results(results)
    updated = 0
    for rec in doc["records"]:
        extra = fields.get(str(rec.get("dataset_fingerprint"))) if rec.get("lm") == lm else None
        if extra is not None:
            rec.update(extra)
            updated += 1
    write_results(results, doc)
    print(f"{results}: data diagnostics filled into {updated} records of {len(fields)} datasets")


def _cmd_show(args: argparse.Namespace) -> int:
    from sdscm_bench.families import resolve_spec
    from sdscm_bench.spec import load_family

    family = load_family(resolve_spec(args.spec))
    print(f"family {family.name}: {family.description}")
    print(f"treatment {family.treatment.variable} ({family.treatment.control} -> {family.treatment.treated}); "
          f"outcome {family.outcome.definition} of {family.outcome.variable}={family.outcome.candidate!r}")  # fmt: skip
    print("order:")
    for i, name in enumerate(family.order()):
        var = family.by_name[name]
        parents = ", ".join(var.parents) or "-"
        flag = (" (exogenous)" if not var.parents else " (not intervenable)") if var.exogenous else ""
        print(f"  {i:2d}. {name}{flag} <- {parents}  [{len(var.candidates)} candidates]")
    for setting, observed in family.settings.items():
        print(f"setting {setting!r}: observes {', '.join(observed)}")
    print(f"variants: {', '.join(repr(v) for v in family.variants) or '-'}")
    if args.plot:
        from sdscm_bench.plotting import plot_dag

        print(f"wrote {plot_dag(family, Path(args.plot))}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    import warnings

    from sdscm_bench.families import resolve_spec
    from sdscm_bench.spec import SpecWarning, load_family

    for spec in args.specs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpecWarning)
            family = load_family(resolve_spec(spec))
        print(f"{spec}: ok ({len(family.variables)} variables, fingerprint {family.fingerprint()})")
        for name in family.variants:
            print(f"  variant {name!r}: fingerprint {family.variant(name).fingerprint()}")
        for w in caught:  # warnings do not fail validation
            if issubclass(w.category, SpecWarning):
                print(f"  warning: {w.message}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    import shlex

    from sdscm_bench.sensitivity import SensitivityRequest, draw_table, run_sensitivity, write_report

    request = SensitivityRequest(
        spec=args.spec, lm=args.lm, n_phrasings=args.phrasings, n_seeds=args.seeds, n_units=args.units,
        seed=args.seed, dtype=args.dtype, device=args.device, scoring=args.scoring,
        temperature=args.temperature, cache_dir=args.cache_dir, variables=tuple(args.variable),
    )  # fmt: skip
    result = run_sensitivity(request, progress=not args.quiet)
    argv = [args.spec, "--lm", args.lm, "--phrasings", str(args.phrasings), "--seeds", str(args.seeds),
            "--units", str(args.units), "--seed", str(args.seed), "--dtype", args.dtype,
            "--temperature", str(args.temperature), "--out", args.out]  # fmt: skip
    if args.scoring:
        argv += ["--scoring", args.scoring]
    for name in args.variable:
        argv += ["--variable", name]
    result.command = shlex.join(["sdscm-bench", "sensitivity", *argv])
    paths = write_report(result, args.out)
    print(draw_table(result))
    sate = result.decompositions()["sate"]
    print(f"SATE: between-phrasing var {sate['between_var']:.4g} vs within (seeds) {sate['within_var']:.4g}, "
          f"ANOVA p = {sate['anova_p']:.3g}, Kruskal-Wallis p = {sate['kruskal_p']:.3g}")  # fmt: skip
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sdscm_bench.errors import SdscmError
    from sdscm_bench.leaderboard import box_plots, render_front_page
    from sdscm_bench.results_file import read_results

    results = Path(args.results)
    intro = Path(args.intro)
    if not intro.is_file():
        raise SdscmError(f"{intro}: intro file not found; write the front page's findings there (markdown)")
    doc = read_results(results)
    all_records = doc["records"]  # the comparison of configurations is paired per dataset: it keeps them all
    if args.exclude_estimator:
        doc = _without_estimators(doc, args.exclude_estimator, results)
    out = Path(args.out) if args.out else results.with_name("README.md")
    from sdscm_bench.provenance import git_state

    publisher = git_state()  # a page rendered from uncommitted code says so (read before the PNGs change)
    # --no-plots keeps (and links) the PNGs already there instead of redrawing them.
    from sdscm_bench.leaderboard import BOX_METRICS

    existing = sorted(p for m in BOX_METRICS for p in out.parent.glob(f"*_{m}.png"))
    plots = box_plots(doc["records"], out.parent) if not args.no_plots else existing
    out.write_text(
        render_front_page(doc, intro.read_text(encoding="utf-8"), plots, publisher, pair_records=all_records),
        encoding="utf-8",
    )
    ranked = len(doc["records"])
    left_out = f", {len(all_records) - ranked} left out of the ranking" if ranked < len(all_records) else ""
    print(f"wrote {out} ({len(all_records)} records{left_out}, {len(plots)} box plots)")
    if not args.no_html:  # the same tables as one static page, beside the markdown like the box plots
        from sdscm_bench.webpage import write_html

        html_path = write_html(Path(args.html) if args.html else out.with_name("index.html"), doc["records"],
                               runs=doc.get("runs", []))  # fmt: skip
        print(f"wrote {html_path} ({html_path.stat().st_size:,} bytes)")
    return 0


def _without_estimators(doc: dict, patterns: list[str], source: object) -> dict:
    """The results without the records of estimators matching any of the shell-style patterns: a page can
    leave out rows whose runs are still in progress, which would otherwise shrink every table's common set
    to the datasets they have reached."""
    from fnmatch import fnmatchcase

    from sdscm_bench.errors import SdscmError

    names = {str(r["estimator"]) for r in doc["records"]}
    for pattern in patterns:
        if not any(fnmatchcase(n, pattern) for n in names):
            raise SdscmError(
                f"{source}: --exclude-estimator {pattern!r} matches no estimator in the file "
                f"(it has {', '.join(sorted(names))})"
            )
    left_out = {n for n in names if any(fnmatchcase(n, p) for p in patterns)}
    kept = [r for r in doc["records"] if str(r["estimator"]) not in left_out]
    print(
        f"left out {len(doc['records']) - len(kept)} records of {', '.join(sorted(left_out))} "
        "(kept in the comparison of configurations, which states its n per pair)"
    )
    return {**doc, "records": kept}


N_RECORDS_NOTE = (
    "recomputed at migration to format 2 from the run's options; format 1 double-counted journal records"
)


def _run_size(benchmark: object) -> int | None:
    """Records a run was asked for: estimators x datasets x settings of each LM; None if not derivable."""
    from sdscm_bench.families import resolve_spec
    from sdscm_bench.lm_names import PAPER_PREFIX
    from sdscm_bench.paper_data import oncology_family
    from sdscm_bench.spec import load_family

    if not isinstance(benchmark, dict):
        return None
    estimators, lms, settings = benchmark.get("estimators"), benchmark.get("lms"), benchmark.get("settings")
    n_datasets, family = benchmark.get("n_datasets"), benchmark.get("family")
    if not (isinstance(estimators, list) and isinstance(lms, list) and isinstance(n_datasets, int)):
        return None
    total = 0
    for lm in lms:
        if isinstance(settings, list):
            n_settings = len(settings)
        elif settings != "all":
            return None
        else:
            try:
                spec = oncology_family() if lm.startswith(PAPER_PREFIX) else None
                if spec is None and isinstance(family, str):
                    path = Path(family)
                    spec = load_family(path if path.exists() else resolve_spec(path.stem))
            except (SdscmError, OSError):
                return None
            if spec is None:
                return None
            n_settings = len(spec.settings)
        total += len(estimators) * n_settings * n_datasets
    return total


def _cmd_migrate_results(args: argparse.Namespace) -> int:
    from sdscm_bench.results_file import read_results, record_key, write_results

    old, new = Path(args.old), Path(args.new)
    doc = read_results(old)
    if doc["format_version"] != 1:
        raise SdscmError(f"{old}: already format {doc['format_version']}; nothing to migrate")
    runs = []
    for run in doc["runs"]:
        n_records = _run_size(run.get("benchmark"))
        note = (
            N_RECORDS_NOTE if n_records is not None else "not derivable from the run's options at migration"
        )
        runs.append({**run, "n_records": n_records, "n_records_note": note})
    write_results(new, {"runs": runs, "records": doc["records"]})
    back = read_results(new)
    # Exact check, independent of the writer: same keys, and per record the same JSON text (so 1, 1.0
    # and True differ, floats compare by repr); a key absent in the old record reads back as None.
    old_by_key = {record_key(r): r for r in doc["records"]}
    new_by_key = {record_key(r): r for r in back["records"]}
    columns = set().union(*(back["records"] or [{}]))

    def text(rec: dict) -> str:
        return json.dumps({k: rec.get(k) for k in columns}, sort_keys=True)

    same = (
        len(back["records"]) == len(doc["records"]) == len(old_by_key)
        and old_by_key.keys() == new_by_key.keys()
    )
    if (
        not same
        or any(text(old_by_key[k]) != text(new_by_key[k]) for k in old_by_key)
        or back["runs"] != runs
    ):
        raise SdscmError(f"{new}: what was read back differs from {old}; check the file before using it")
    print(
        f"wrote {new}: {len(back['records'])} records, {len(runs)} runs; "
        f"{old.stat().st_size:,} bytes -> {new.stat().st_size:,} bytes"
    )
    return 0


def _cmd_merge_saved(args: argparse.Namespace) -> int:
    from sdscm_bench.results_file import merge_saved

    doc = merge_saved(args.saved, args.into)
    print(f"merged {args.saved} into {args.into} ({len(doc['records'])} records there); removed {args.saved}")
    return 0


def _cmd_merge_journal(args: argparse.Namespace) -> int:
    from sdscm_bench.session import merge_journal

    results = Path(args.results)
    leaderboard_md = Path(args.leaderboard) if args.leaderboard else results.with_name("leaderboard.md")
    merged, total = merge_journal(results, leaderboard_md, command=f"sdscm-bench merge-journal {results}")
    if not merged:
        print(f"{results}: no journaled records beside it; nothing to merge")
        return 0
    print(
        f"merged {merged} journaled records into {results} ({total} records there); re-rendered {leaderboard_md}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdscm-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate (or fetch from the cache) a dataset family")
    gen.add_argument("spec", help="spec file, or the name of a spec in datasets/ (e.g. oncology)")
    gen.add_argument(
        "--lm", default="smollm2", help="smollm2 (embedded), tiny-random, an HF id or a local path"
    )
    gen.add_argument("--datasets", type=positive_int, default=1, help="K datasets, seeds seed..seed+K-1")
    gen.add_argument("--units", type=positive_int, default=100, help="N units per dataset")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    gen.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    gen.add_argument("--scoring", default=None, choices=["sum", "mean"],
                     help="candidate score: sum or mean log-prob (default: the spec's 'scoring:', else sum)")  # fmt: skip
    gen.add_argument("--temperature", type=positive_float, default=1.0)
    gen.add_argument("--cache-dir", default=None, help="default: $SDSCM_BENCH_CACHE or the user cache dir")
    gen.add_argument("--do", action="append", default=[], metavar="VAR=VALUE",
                     help="intervene on a non-exogenous variable for every unit (repeatable)")  # fmt: skip
    gen.add_argument("--rct", action="append", default=[], metavar="VAR",
                     help="randomised intervention: VAR uniform over its candidates per unit (repeatable)")  # fmt: skip
    gen.add_argument(
        "--variant", default=None, metavar="NAME", help="a variant named in the spec's 'variants:'"
    )
    gen.add_argument("--require-quality", action="store_true",
                     help="redraw the seed of a dataset that violates the spec's quality thresholds (up to 10 times; "
                     "recorded in its metadata; conditions the family's distribution on passing)")  # fmt: skip
    gen.add_argument("--workers", type=positive_int, default=None, metavar="N",
                     help="fan out over N local Dask worker processes, one dataset per task (needs [fanout])")  # fmt: skip
    gen.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="fan out over the workers of this Dask scheduler (tcp://host:8786); they share the cache")  # fmt: skip
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_cmd_generate)
    diag = sub.add_parser(
        "diagnose",
        help="per-dataset diagnostics: overlap, effects, outcome, near-constant variables, confounding",
    )
    diag.add_argument("spec", help="spec file or shipped spec name (ignored for --lm paper-*)")
    diag.add_argument(
        "--lm",
        default="smollm2",
        help="smollm2, tiny-random, an HF id or path, or paper-gpt2 / paper-llama-3-8b",
    )
    diag.add_argument(
        "--datasets",
        type=positive_int,
        default=1,
        help="K datasets (seeds seed..seed+K-1, or the first K released)",
    )
    diag.add_argument("--units", type=positive_int, default=100, help="N units per generated dataset")
    diag.add_argument(
        "--variant", default=None, help="a named variant of the spec (default: the base family)"
    )
    diag.add_argument("--seed", type=int, default=0)
    diag.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    diag.add_argument("--cache-dir", default=None, help="default: $SDSCM_BENCH_CACHE or the user cache dir")
    diag.add_argument("--paper-data", default=None, help="folder of the released parquet files (paper LMs)")
    diag.add_argument("--json", metavar="PATH", help="also write every diagnostic (and the problems) as JSON")
    diag.add_argument("--strict", action="store_true", help="exit 1 when a dataset violates a threshold")
    diag.add_argument(
        "--into",
        metavar="RESULTS",
        help="fill the data_* fields of these datasets' records in a results file",
    )
    diag.add_argument("--quiet", action="store_true", help="no progress bar")
    diag.set_defaults(func=_cmd_diagnose)
    show = sub.add_parser("show", help="print a spec's DAG and topological order")
    show.add_argument("spec")
    show.add_argument("--plot", metavar="PNG", help="also draw the DAG to this PNG file")
    show.set_defaults(func=_cmd_show)
    val = sub.add_parser("validate", help="check spec files")
    val.add_argument("specs", nargs="+")
    val.set_defaults(func=_cmd_validate)
    sens = sub.add_parser("sensitivity", help="true SATE/ITE spread across phrasing draws vs across seeds")
    sens.add_argument("spec", help="spec file, or the name of a spec in datasets/ (e.g. oncology)")
    sens.add_argument("--lm", default="smollm2", help="smollm2 (embedded), tiny-random, an HF id or path")
    sens.add_argument("--phrasings", type=positive_int, default=6, help="P distinct phrasing draws")
    sens.add_argument(
        "--seeds", type=positive_int, default=3, help="S noise seeds per draw (seed..seed+S-1, shared)"
    )
    sens.add_argument("--units", type=positive_int, default=300, help="N units per dataset")
    sens.add_argument("--seed", type=int, default=0, help="first noise seed and first phrasing source seed")
    sens.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    sens.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    sens.add_argument("--scoring", default=None, choices=["sum", "mean"], help="default: spec's, else sum")
    sens.add_argument("--temperature", type=positive_float, default=1.0)
    sens.add_argument("--variable", action="append", default=[], metavar="NAME",
                      help="vary only this variable's phrasing (repeatable; others keep their first)")  # fmt: skip
    sens.add_argument("--out", default="leaderboard/phrasing_sensitivity", help="writes OUT.md, .png, .json")
    sens.add_argument("--cache-dir", default=None, help="default: $SDSCM_BENCH_CACHE or the user cache dir")
    sens.add_argument("--quiet", action="store_true", help="no progress bar")
    sens.set_defaults(func=_cmd_sensitivity)
    pub = sub.add_parser("publish", help="render the leaderboard front page (README.md) from a results file")
    pub.add_argument(
        "results", help="results file written by the pytest plugin (leaderboard/results.parquet)"
    )
    pub.add_argument("--intro", required=True, help="markdown placed first: findings, commands, runtimes")
    pub.add_argument("--out", help="default: README.md next to the results file")
    pub.add_argument(
        "--exclude-estimator",
        action="append",
        default=[],
        metavar="PATTERN",
        help="leave the estimators matching this shell-style pattern (e.g. 'paper_*' while their runs are in "
        "progress) out of the ranking tables, rank agreement, box plots and web page; the comparison of the "
        "paper's configurations with ours, paired per dataset with n per pair, keeps them; repeatable",
    )
    pub.add_argument(
        "--no-plots",
        action="store_true",
        help="link the PNGs already next to the page instead of redrawing the box plots",
    )
    html_opts = pub.add_mutually_exclusive_group()
    html_opts.add_argument(
        "--html",
        metavar="PATH",
        help="the sortable, filterable static HTML page (default: index.html next to the markdown page)",
    )
    html_opts.add_argument("--no-html", action="store_true", help="write no HTML page")
    pub.set_defaults(func=_cmd_publish)
    mig = sub.add_parser("migrate-results", help="convert a format-1 results.json to a results.parquet")
    mig.add_argument("old", help="format-1 results JSON")
    mig.add_argument("new", help="parquet file to write (e.g. leaderboard/results.parquet)")
    mig.set_defaults(func=_cmd_migrate_results)
    merge = sub.add_parser(
        "merge-saved", help="merge records a run saved elsewhere (its results file was not writable)"
    )
    merge.add_argument("saved", help="the fallback file the run named (sdscm-results-unsaved-*.json)")
    merge.add_argument("into", help="the results file they belong in (e.g. leaderboard/results.parquet)")
    merge.set_defaults(func=_cmd_merge_saved)
    mj = sub.add_parser(
        "merge-journal",
        help="merge the journal of a killed (or still running) run into its results file, fitting nothing",
    )
    mj.add_argument("results", help="the results file the run writes (e.g. leaderboard/results.parquet)")
    mj.add_argument(
        "--leaderboard", help="markdown to re-render (default: leaderboard.md beside the results)"
    )
    mj.set_defaults(func=_cmd_merge_journal)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SdscmError as exc:
        print(f"sdscm-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdscm-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
