"""The markdown leaderboard rendered from the results file, the front page and the box plots."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from sdscm_bench.ranking import N_RESAMPLES, RankingTable, group_records, main_common_records, ranking_tables
from sdscm_bench.results_file import _atomic_write_text, merge_results

PRIMARY_METRIC = "ATE RMSE"
BOX_METRICS: dict[str, str] = {
    "cate_r2": "CATE R² (symlog axis)",
    "pehe_sd_ite": "standardized PEHE, PEHE / sd(ITE) (log axis)",
}
DASH = "–"

RANKING_COLUMNS: tuple[tuple[str, str], ...] = (
    (
        "tier",
        "estimators in one tier are ties: the paired 95% CI of their ATE RMSE minus the tier leader's includes 0",
    ),
    ("estimator", "adapter name"),
    ("library@version", "estimator library and its installed version"),
    (
        "ATE RMSE [95% CI]",
        "sqrt(mean over datasets of (ATE estimate - SATE)²), lower is better; paired bootstrap CI",
    ),
    (
        "Δ vs tier leader [95% CI]",
        "paired bootstrap CI of ATE RMSE minus the tier leader's (includes 0: a tie)",
    ),
    ("rank [95% CI]", "rank by ATE RMSE, with the 2.5-97.5% range of ranks over bootstrap resamples"),
    ("P(best)", "share of bootstrap resamples in which the estimator has the lowest ATE RMSE"),
    ("ATE R²", "1 - Σ(SATE - ATE estimate)² / Σ(SATE - mean SATE)² across datasets"),
    (
        "median PEHE/sd(ITE) [95% CI]",
        "CATE headline: median over datasets of PEHE / sd(ITE) (ddof=0), paired bootstrap CI",
    ),
    (
        "share < 1",
        "share of datasets with PEHE / sd(ITE) < 1: the CATE beats predicting the true SATE for every unit",
    ),
    ("median fit s", "median over datasets of fit + predict wall-clock seconds"),
    ("failures", "datasets of the common set where the estimator failed"),
)
CALIBRATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ATE coverage [95% CI]", "share of datasets whose ATE interval contains the SATE; Clopper-Pearson CI"),
    ("ATE verdict", "at nominal 95%: calibrated (CI contains 0.95), under or over"),
    ("unit coverage [95% CI]", "mean over datasets of the share of units whose CATE interval contains the ITE; "
     "CI resamples datasets (units of one dataset are not independent)"),
    ("unit verdict", "at nominal 95%: calibrated, under or over"),
    ("unit width", "mean over datasets of the mean CATE interval width (units with a finite interval)"),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Markdown


def fmt_number(x: Any) -> str:
    """3 significant digits (whole numbers from 1000 up, so never "1e+03"); None and non-finite as a dash."""
    if x is None:
        return DASH
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return DASH
    # From 999.5 up, 3 significant digits would round to 1000 and print as "1e+03": a whole number then.
    if abs(x) >= 999.5:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _header_block(header: Mapping[str, Any]) -> list[str]:
    def get(key: str) -> str:
        value = header.get(key)
        return DASH if value in (None, "") else str(value)

    commit = get("git_commit")
    if header.get("git_dirty"):
        commit += " (with uncommitted changes)"
    packages = header.get("packages") or {}
    pkg_text = ", ".join(f"{k} {v if v is not None else '(not installed)'}" for k, v in packages.items())
    machine = f"{get('platform')}, {get('machine')}, {get('cpu')}, {get('cpu_count')} CPUs"
    return [
        f"- Date: {get('date')}",
        f"- Git commit: {commit}",
        f"- Machine: {machine}",
        f"- Python: {get('python')}",
        f"- Packages: {pkg_text or DASH}",
        f"- Command: `{get('command')}`",
    ]


def table_title(family: str, lm: str, setting: str, variant: str | None = None) -> str:
    """The heading of one table: datasets of one family (and variant) and LM, one confounding setting."""
    fam = f"family `{family}`" + (f" · variant `{variant}`" if variant else "")
    return f"{fam} · LM `{lm}` · setting `{setting}`"


def fmt_ci(value: float | None, ci: tuple[float, float] | None) -> str:
    """``0.00052 [0.00037, 0.00067]``; the value alone when there is no interval."""
    if value is None:
        return DASH
    if ci is None:
        return fmt_number(value)
    return f"{fmt_number(value)} [{fmt_number(ci[0])}, {fmt_number(ci[1])}]"


def _share(x: float | None) -> str:
    return DASH if x is None else f"{100.0 * x:.0f}%"


def table_intro(table: RankingTable) -> str:
    """The sentence under a table's heading: n, the common set, the tiers, what was left out."""
    k = len(table.rows) + len(table.unranked)
    if not table.rows:
        return (
            f"n = {table.n_common} datasets, the same for all {k} estimators (each has a result or a recorded "
            "failure on every one). No ranking: every estimator failed on more than 5% of these datasets ("
            + ", ".join(f"`{e}` {n}" for e, n in sorted(table.unranked.items()))
            + " failures), so a table of the rest would compare estimators on the datasets that happened to "
            "suit them."
        )
    text = f"n = {table.n_common} datasets, the same for all {k} estimators below (each has a result on every one)"
    if not table.main:
        text += "; a further table: only these estimators have results on this larger set"
    if table.n_scored != table.n_common:
        text += f"; statistics over the {table.n_scored} datasets where every ranked estimator succeeded"
    if table.n_cate and table.n_cate != table.n_scored:
        text += f"; CATE columns over the {table.n_cate} datasets where sd(ITE) > 0"
    text += (
        f". {table.tiers} tier{'s' if table.tiers != 1 else ''}: rows in one tier are ties "
        "(paired 95% bootstrap CI of the ATE RMSE difference to the tier leader includes 0)."
    )
    if table.mixed_versions:
        text += (
            " Results from more than one version of the adapter (adapter fingerprints: code, hyperparameters, "
            "library versions) are mixed here for "
            + ", ".join(f"`{e}` ({n} versions)" for e, n in sorted(table.mixed_versions.items()))
            + "; rerun it on these datasets to compare one version."
        )
    if table.unranked:
        text += " Not ranked (failed on more than 5% of these datasets): " + ", ".join(
            f"`{e}` ({n} failures)" for e, n in sorted(table.unranked.items())
        )
        text += "."
    return text


def render_table(table: RankingTable, diagnostics: list[str] | None = None) -> list[str]:
    """One ranking table and, when any estimator gives intervals, its calibration table.

    ``diagnostics``: the source's row of :func:`diagnostics_rows`, shown under the table so a reader
    judges the ranking next to the data behind it (overlap, confounding, effect spread).
    """
    rows = [
        [
            str(r.tier), r.estimator, r.libraries, fmt_ci(r.ate_rmse, r.ate_rmse_ci),
            "leader" if r.diff_vs_leader_ci is None else f"[{fmt_number(r.diff_vs_leader_ci[0])}, {fmt_number(r.diff_vs_leader_ci[1])}]",
            f"{r.rank} [{r.rank_ci[0]}, {r.rank_ci[1]}]", f"{r.p_best:.2f}", fmt_number(r.ate_r2),
            fmt_ci(r.pehe_sd_ite_median, r.pehe_sd_ite_median_ci), _share(r.pehe_sd_ite_below_1),
            fmt_number(r.median_fit_seconds), str(r.failures),
        ]
        for r in table.rows
    ]  # fmt: skip
    names = [name for name, _ in RANKING_COLUMNS]
    suffix = "" if table.main else f" · {table.n_common} datasets"
    lines = [
        f"## {table_title(table.family, table.lm, table.setting, table.variant)}{suffix}",
        "",
        table_intro(table),
        "",
    ]
    if rows:
        lines += [
            tabulate(rows, headers=names, tablefmt="pipe", disable_numparse=True,
                     colalign=("right", "left", "left", *("right",) * (len(names) - 3))),
            "",
        ]  # fmt: skip
    calibrated = [r for r in table.rows if r.ate_coverage is not None or r.unit_coverage is not None]
    if calibrated:
        cal_rows = [
            [
                r.estimator,
                DASH if r.ate_coverage is None else f"{fmt_ci(r.ate_coverage, r.ate_coverage_ci)} (n = {r.ate_coverage_n})",
                r.ate_verdict or DASH, fmt_ci(r.unit_coverage, r.unit_coverage_ci), r.unit_verdict or DASH,
                fmt_number(r.unit_width),
            ]
            for r in calibrated
        ]  # fmt: skip
        cal_names = ["estimator", *(name for name, _ in CALIBRATION_COLUMNS)]
        lines += [
            "Interval calibration (nominal 95%):",
            "",
            tabulate(cal_rows, headers=cal_names, tablefmt="pipe", disable_numparse=True,
                     colalign=("left", *("right",) * (len(cal_names) - 1))),
            "",
        ]  # fmt: skip
    if diagnostics is not None:
        lines += ["The data of this source (all its datasets; columns as in Data diagnostics):", "",
                  _diagnostics_table([diagnostics]), ""]  # fmt: skip
    return lines


def _median_range(values: list[float], *, lo: bool = True, hi: bool = True) -> str:
    if not values:
        return DASH
    v = np.asarray(values)
    bounds = [fmt_number(float(v.min()))] if lo else []
    bounds += [fmt_number(float(v.max()))] if hi else []
    return (
        f"{fmt_number(float(np.median(v)))} [{', '.join(bounds)}]"
        if bounds
        else fmt_number(float(np.median(v)))
    )


DIAGNOSTICS_HEADERS = [
    "data", "datasets with diagnostics", "treated share: median [min, max]", "overlap: median [min]",
    "IPW ESS/n: median [min]", "sd(ITE): median", "ITE ≠ 0: median [min]", "top outcome share: median [max]",
    "abs(DIM − SATE): median", "datasets violating a default threshold",
]  # fmt: skip


def diagnostics_rows(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[str]]:
    """(family, variant, LM) -> one row of :data:`DIAGNOSTICS_HEADERS`: the spread of each dataset
    diagnostic and the threshold violations.

    From the ``data_*`` fields of the records (one per dataset fingerprint), judged against the default
    thresholds of :mod:`sdscm_bench.diagnostics`; datasets whose records predate the fields are counted.
    """
    from sdscm_bench.diagnostics import DEFAULT_THRESHOLDS, RECORD_FIELDS, violations

    rows: dict[tuple[str, str, str], list[str]] = {}
    for (family, variant, lm), recs in group_records(records, "family", "variant", "lm").items():
        by_dataset: dict[str, Mapping[str, Any]] = {}
        for r in recs:  # every record of a dataset carries the same data_* fields; keep the first
            by_dataset.setdefault(str(r["dataset_fingerprint"]), r)
        with_diag = [r for r in by_dataset.values() if r.get("data_treated_share") is not None]
        name = family + (f" [{variant}]" if variant != "None" else "") + f" · {lm}"
        if not with_diag:
            rows[(family, variant, lm)] = [name, f"0 of {len(by_dataset)}", *([DASH] * 8)]
            continue

        def col(key: str, recs: list[Mapping[str, Any]] = with_diag) -> list[float]:
            return [float(r[f"data_{key}"]) for r in recs if r.get(f"data_{key}") is not None]

        counts: dict[str, int] = {}
        n_bad = 0
        for r in with_diag:
            keys = {
                key
                for key, _ in violations({k: r.get(f"data_{k}") for k in RECORD_FIELDS}, DEFAULT_THRESHOLDS)
            }
            n_bad += bool(keys)
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
        detail = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        rows[(family, variant, lm)] = [
            name, f"{len(with_diag)} of {len(by_dataset)}", _median_range(col("treated_share")),
            _median_range(col("overlap_share"), hi=False), _median_range(col("ess_share"), hi=False),
            _median_range(col("sd_ite"), lo=False, hi=False), _median_range(col("nonzero_ite_share"), hi=False),
            _median_range(col("max_outcome_share"), lo=False),
            _median_range([abs(x) for x in col("dim_bias")], lo=False, hi=False),
            f"{n_bad}" + (f" ({detail})" if detail else ""),
        ]  # fmt: skip
    return rows


def _diagnostics_table(rows: Sequence[list[str]]) -> str:
    return tabulate(rows, headers=DIAGNOSTICS_HEADERS, tablefmt="pipe", disable_numparse=True)


def render_data_diagnostics(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every source's diagnostics in one table (each ranking table repeats its own source's row)."""
    from sdscm_bench.diagnostics import DEFAULT_THRESHOLDS

    return [
        "## Data diagnostics",
        "",
        "Is the data fit to rank estimators? Per dataset (`sdscm-bench diagnose` prints them all): overlap is the "
        "share of units with propensity in [0.05, 0.95]; IPW ESS/n the effective sample size of the inverse-"
        "propensity weights over n; DIM − SATE the bias of the difference in means (confounding strength). "
        "Violations count datasets against the default thresholds "
        + ", ".join(f"`{k}` {v}" for k, v in DEFAULT_THRESHOLDS.items() if k != "max_value_share")
        + " (near-constant variables are listed by `diagnose`, not here).",
        "",
        _diagnostics_table(list(diagnostics_rows(records).values())),
        "",
    ]


def render_markdown(
    records: Iterable[Mapping[str, Any]],
    header: Mapping[str, Any],
    tables: Sequence[RankingTable] | None = None,
) -> str:
    """The leaderboard: provenance, the column legend, then the ranking tables (see :mod:`ranking`)."""
    records = list(records)
    tables = ranking_tables(records) if tables is None else tables
    lines = ["# sdscm-bench leaderboard", "", *_header_block(header), ""]
    lines += [
        "Every table ranks its estimators on one common set of datasets (n is stated under the heading); "
        "estimators with results on more datasets appear again in a further table over that larger set. "
        "Rows are sorted by tier, then by ATE RMSE. All intervals are 95%: paired bootstrap over datasets "
        f"({N_RESAMPLES} resamples, seed 0) unless the legend says otherwise. Failed datasets are left out of "
        f"every statistic. `{DASH}` means the estimator does not provide that output (or it is undefined). "
        "Mean CATE R² stays in the records but is not shown: datasets whose true effects barely vary drive it "
        "to -1000s and it rewards shrinking the CATE to a constant.",
        "",
        "| column | meaning |",
        "|---|---|",
        *(f"| {name} | {meaning} |" for name, meaning in (*RANKING_COLUMNS, *CALIBRATION_COLUMNS)),
        "",
    ]
    if not records:
        lines += ["No results yet.", ""]
    if records:
        lines += render_data_diagnostics(records)
    diagnostics = diagnostics_rows(records)
    for table in tables:
        source = (table.family, "None" if table.variant is None else table.variant, table.lm)
        lines += render_table(table, diagnostics.get(source) if table.main else None)
    return "\n".join(lines)


def write_leaderboard(
    json_path: str | Path,
    md_path: str | Path,
    new_records: Iterable[Mapping[str, Any]],
    header: Mapping[str, Any],
) -> dict[str, Any]:
    """Merge a run into the results file, then re-render the markdown from all merged records."""
    doc = merge_results(json_path, new_records, header)
    _atomic_write_text(Path(md_path), render_markdown(doc["records"], header))
    return doc


# ---------------------------------------------------------------------------------------------------
# Box plots


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "lm"


def box_plots(records: Iterable[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Per-dataset CATE R² and standardized PEHE per estimator, one panel per setting (as in the paper).

    One PNG per family, LM and metric, named ``<family>_<lm>_<metric>.png``; one with no values (e.g. no
    estimator gives CATEs) gets no file. Failed datasets are left out, and each setting shows the
    datasets of its main ranking table only (every estimator on the same datasets). CATE R² runs to
    -1000s on datasets whose true effects barely vary, so its axis is symlog (linear within ±1);
    standardized PEHE is positive with a long tail, so its axis is logarithmic. No box is flattened.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in main_common_records(records) if not r.get("failed", False)]
    written: list[Path] = []
    for (family, lm), lm_recs in group_records(ok, "family", "lm").items():
        by_setting = group_records(lm_recs, "setting")
        for metric, label in BOX_METRICS.items():
            # Estimators without this output (e.g. ATE-only ones) would only be empty slots.
            estimators = sorted({str(r["estimator"]) for r in lm_recs if r.get(metric) is not None})
            if not estimators:
                continue
            fig = Figure(figsize=(max(4.0, 0.6 * len(estimators) + 1.5) * len(by_setting), 4.5))
            axes = fig.subplots(1, len(by_setting), sharey=True, squeeze=False)[0]
            for ax, ((setting,), recs) in zip(axes, by_setting.items(), strict=True):
                positions, data = [], []
                for i, est in enumerate(estimators):
                    vals = [
                        float(r[metric]) for r in recs if r["estimator"] == est and r.get(metric) is not None
                    ]
                    if vals:
                        positions.append(i)
                        data.append(vals)
                if data:
                    ax.boxplot(data, positions=positions, widths=0.6)
                ax.set_xticks(range(len(estimators)), estimators, rotation=45, ha="right", fontsize=8)
                ax.set_xlim(-0.5, len(estimators) - 0.5)
                ax.set_title(f"setting: {setting}")
                ax.grid(axis="y", alpha=0.3)
            if metric == "cate_r2":
                axes[0].set_yscale("symlog", linthresh=1.0)
            else:
                axes[0].set_yscale("log")
            axes[0].set_ylabel(label)
            fig.suptitle(f"{label} per dataset, family {family}, LM {lm}")
            fig.tight_layout()
            path = out_dir / f"{_slug(family)}_{_slug(lm)}_{metric}.png"
            fig.savefig(path, dpi=100, format="png")
            written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------
# Front page


def render_agreement(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Kendall's tau between sources' rankings, with bootstrap CIs (see :mod:`sdscm_bench.comparisons`)."""
    from sdscm_bench.comparisons import ranking_agreement

    agreement = ranking_agreement(records)
    if not agreement:
        return []
    rows = [
        [a.setting, a.source_a, a.source_b, a.estimators, f"{a.n_a} / {a.n_b}", fmt_ci(a.tau, a.tau_ci),
         DASH if a.tau_ci is None else ("no evidence of agreement" if a.tau_ci[0] <= 0.0 else "agree")]
        for a in agreement
    ]  # fmt: skip
    return [
        "## Do the rankings carry over between data sources?",
        "",
        "Kendall's tau between the ATE RMSE rankings of each source's main table (its estimators on its "
        "common dataset set, datasets where all succeeded), over the estimators both sources rank. 95% "
        f"percentile CI from {N_RESAMPLES} bootstrap resamples of each source's datasets, drawn independently "
        "(the sources share no datasets); \"agree\" when the CI lies above 0.",
        "",
        tabulate(rows, headers=["setting", "data A", "data B", "estimators", "datasets A / B", "Kendall tau [95% CI]",
                                "verdict"], tablefmt="pipe", disable_numparse=True),
        "",
    ]  # fmt: skip


def render_configuration_pairs(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The paper's configuration of each method beside ours (``paper_<name>`` vs ``<name>``), per table."""
    from sdscm_bench.comparisons import PAPER_CONFIG_PREFIX, configuration_pairs

    pairs = configuration_pairs(records)
    if not pairs:
        return []
    rows = [
        [f"`{p.paper}` vs `{p.ours}`", p.source, p.setting, p.n, fmt_number(p.rmse_paper), fmt_number(p.rmse_ours),
         DASH if p.diff_ci is None else f"[{fmt_number(p.diff_ci[0])}, {fmt_number(p.diff_ci[1])}]", p.verdict,
         fmt_number(p.r2_paper), fmt_number(p.r2_ours), f"{p.failures_paper} / {p.failures_ours}"]
        for p in sorted(pairs, key=lambda p: (p.ours, p.source, p.setting))
    ]  # fmt: skip
    headers = ["pair", "data", "setting", "n", "ATE RMSE paper's", "ATE RMSE ours", "Δ paper's − ours [95% CI]",
               "verdict", "ATE R² paper's", "ATE R² ours", "failures paper's / ours"]  # fmt: skip
    return [
        "## The paper's estimation settings beside ours",
        "",
        f"Each `{PAPER_CONFIG_PREFIX}<name>` adapter reproduces how the SD-SCM paper's code configured that method "
        "(library defaults, ordinal covariates); `<name>` is this project's configuration. Compared on the "
        "datasets where both succeeded (n): ATE RMSE of each, the paired bootstrap 95% CI of the difference "
        "(a tie when it includes 0), and ATE R² (1 − Σ(SATE − ATE)² / Σ(SATE − mean SATE)² across datasets).",
        "",
        tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True),
        "",
    ]


def dirty_notice(records: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                 publisher: Mapping[str, Any] | None) -> list[str]:  # fmt: skip
    """Lines that say when published numbers come from, or are published from, uncommitted code."""
    out = []
    if publisher is not None and publisher.get("git_dirty"):
        out.append(
            f"- This page was rendered from a working tree with uncommitted changes "
            f"(commit {str(publisher.get('git_commit'))[:10]} plus local edits)."
        )
    dirty_runs = sum(1 for r in runs if r.get("git_dirty"))
    if dirty_runs:
        out.append(
            f"- {dirty_runs} of {len(runs)} runs below ran from a working tree with uncommitted changes."
        )
    with_flag = [r for r in records if "git_dirty" in r and r["git_dirty"] is not None]
    dirty_records = sum(1 for r in with_flag if r["git_dirty"])
    if dirty_records:
        out.append(
            f"- {dirty_records} of {len(with_flag)} records with provenance were fitted from such a tree."
        )
    without = sum(1 for r in records if not r.get("run_id"))
    if without:
        out.append(
            f"- {without} of {len(records)} records were fitted before records carried their own provenance "
            "(run id, commit, machine, library versions); the run table below is all that is known of them."
        )
    return ["**Provenance warning.**", "", *out, ""] if out else []


def render_front_page(
    doc: Mapping[str, Any],
    intro: str,
    plots: Sequence[Path],
    publisher: Mapping[str, Any] | None = None,
    pair_records: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The published front page: hand-written intro and findings, run log, box plots, then every table.

    ``publisher`` is the :func:`~sdscm_bench.provenance.collect_header` of the publishing checkout, so a
    page rendered from uncommitted code says so. ``pair_records`` (default: the page's records) feed the
    comparison of configurations, which pairs each two adapters on the datasets both reached and states
    that n per pair: it can show a run still in progress that the ranking tables leave out.
    """
    records = list(doc["records"])
    runs = list(doc.get("runs", []))
    lines = [intro.rstrip(), "", *dirty_notice(records, runs, publisher)]
    lines += ["## Runs merged into these tables", ""]
    run_rows = [
        [r.get("run_id", DASH), r.get("date", DASH), str(r["git_commit"])[:10] if r.get("git_commit") else DASH,
         "yes" if r.get("git_dirty") else "no", r.get("n_records", DASH), f"`{r.get('command', DASH)}`"]
        for r in runs
    ]  # fmt: skip
    run_headers = ["run id", "date", "commit", "uncommitted changes", "records", "command"]
    lines += [tabulate(run_rows, headers=run_headers, tablefmt="pipe"), ""]
    tables = ranking_tables(records)
    lines += render_agreement(records)
    lines += render_configuration_pairs(records if pair_records is None else pair_records)
    if plots:
        lines += ["## Box plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
        lines.append("")
    header = runs[-1] if runs else {}
    body = render_markdown(records, header, tables).split("\n", 1)[1]  # drop the page title
    lines += ["## Tables", "", "Provenance of the latest run:", body]
    return "\n".join(lines)
