"""The markdown leaderboard rendered from the results file, the front page and the box plots."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from sdscm_bench.metrics import aggregate
from sdscm_bench.results_file import _atomic_write_text, merge_results

PRIMARY_METRIC = "ATE RMSE"
BOX_METRICS: dict[str, str] = {
    "cate_r2": "CATE R²",
    "pehe_sd_ite": "standardized PEHE (PEHE / sd(ITE))",
}
DASH = "–"

COLUMNS: tuple[tuple[str, str], ...] = (
    ("estimator", "adapter name"),
    ("library@version", "estimator library and its installed version"),
    ("datasets", "datasets attempted (failures included)"),
    ("ATE RMSE", "sqrt(mean over datasets of (ATE estimate - SATE)²); primary metric, lower is better"),
    ("ATE R²", "1 - Σ(SATE - ATE estimate)² / Σ(SATE - mean SATE)² across datasets"),
    ("mean CATE R²", "mean over datasets of 1 - Σ(ITE - CATE)² / Σ(ITE - mean ITE)²"),
    ("median std. PEHE", "median over datasets of PEHE / sd(ITE) (ddof=0)"),
    ("unit coverage", "mean over datasets of the fraction of units whose CATE interval contains the ITE"),
    ("unit width", "mean over datasets of the mean CATE interval width (units with a finite interval)"),
    ("ATE coverage", "fraction of datasets whose ATE interval contains the SATE"),
    ("median fit s", "median over datasets of fit + predict wall-clock seconds"),
    ("failures", "datasets where the estimator failed (excluded from all other columns)"),
)


# ---------------------------------------------------------------------------------------------------
# Markdown


def fmt_number(x: Any) -> str:
    """3 significant digits (whole numbers from 1000 up); None and non-finite as a dash."""
    if x is None:
        return DASH
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return DASH
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.3g}"


def _group(
    records: Iterable[Mapping[str, Any]], *fields: str
) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(str(rec.get(f)) for f in fields), []).append(rec)
    return dict(sorted(groups.items()))


def _stat(agg: Mapping[str, Any], metric: str, stat: str) -> float | None:
    return agg["metrics"][metric][stat]


def leaderboard_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per estimator (unformatted numbers), sorted by ATE RMSE ascending, missing last."""
    rows = []
    for (estimator,), recs in _group(records, "estimator").items():
        agg = aggregate(recs, n_boot=0)
        libs = sorted({f"{r.get('library')}@{r.get('library_version')}" for r in recs})
        rows.append(
            {
                "estimator": estimator,
                "library@version": ", ".join(libs),
                "datasets": agg["n_datasets"],
                "ATE RMSE": agg["ate_rmse"],
                "ATE R²": agg["ate_r2"],
                "mean CATE R²": _stat(agg, "cate_r2", "mean"),
                "median std. PEHE": _stat(agg, "pehe_sd_ite", "median"),
                "unit coverage": _stat(agg, "cate_coverage", "mean"),
                "unit width": _stat(agg, "cate_width", "mean"),
                "ATE coverage": _stat(agg, "ate_covered", "mean"),
                "median fit s": _stat(agg, "fit_seconds", "median"),
                "failures": agg["n_failures"],
            }
        )
    rows.sort(key=lambda r: (r["ATE RMSE"] is None, r["ATE RMSE"] or 0.0, r["estimator"]))
    return rows


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


def table_title(family: str, lm: str, setting: str) -> str:
    """The heading of one table: datasets of one family and LM, one confounding setting."""
    return f"family `{family}` · LM `{lm}` · setting `{setting}`"


def render_markdown(records: Iterable[Mapping[str, Any]], header: Mapping[str, Any]) -> str:
    """The leaderboard: a provenance header, a column legend, then one table per family × LM × setting."""
    records = list(records)
    lines = ["# sdscm-bench leaderboard", "", *_header_block(header), ""]
    lines += [
        "Rows may come from earlier runs (the results JSON keeps each run's header). "
        "Failed datasets are excluded from every column except `datasets` and `failures`. "
        f"`{DASH}` means the estimator does not provide that output (or it is undefined).",
        "",
        "| column | meaning |",
        "|---|---|",
        *(f"| {name} | {meaning} |" for name, meaning in COLUMNS),
        "",
    ]
    if not records:
        lines += ["No results yet.", ""]
    names = [name for name, _ in COLUMNS]
    for (family, lm, setting), recs in _group(records, "family", "lm", "setting").items():
        rows = leaderboard_rows(recs)
        table = [[r["estimator"], r["library@version"], *(fmt_number(r[c]) for c in names[2:])] for r in rows]
        lines += [
            f"## {table_title(family, lm, setting)}",
            "",
            f"Sorted by {PRIMARY_METRIC} (ascending, best first). Standardized PEHE is PEHE / sd(ITE).",
            "",
            tabulate(
                table,
                headers=names,
                tablefmt="pipe",
                disable_numparse=True,
                colalign=("left", "left", *("right",) * (len(names) - 2)),
            ),
            "",
        ]
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
    estimator gives CATEs) gets no file. Failed datasets are left out.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if not r.get("failed", False)]
    written: list[Path] = []
    for (family, lm), lm_recs in _group(ok, "family", "lm").items():
        by_setting = _group(lm_recs, "setting")
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
            axes[0].set_ylabel(label)
            fig.suptitle(f"{label} per dataset, family {family}, LM {lm}")
            fig.tight_layout()
            path = out_dir / f"{_slug(family)}_{_slug(lm)}_{metric}.png"
            fig.savefig(path, dpi=100, format="png")
            written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------
# Front page


def ranking_agreement(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Kendall's tau between the ATE RMSE rankings of every two data sources (family × LM), per setting.

    Only estimators with results on both sources count; tau near 1 means the sources rank the
    estimators alike, so a leaderboard from one would carry over to the other.
    """
    from scipy.stats import kendalltau

    ok = [r for r in records if not r.get("failed", False)]
    rmse: dict[tuple[str, str], dict[str, float]] = {}
    for (family, lm, setting, estimator), recs in _group(ok, "family", "lm", "setting", "estimator").items():
        agg = aggregate(recs, n_boot=0)
        if agg["ate_rmse"] is not None:
            rmse.setdefault((setting, f"{family} · {lm}"), {})[estimator] = float(agg["ate_rmse"])
    rows = []
    keys = sorted(rmse)
    for i, (setting, a) in enumerate(keys):
        for setting_b, b in keys[i + 1 :]:
            if setting_b != setting:
                continue
            common = sorted(set(rmse[(setting, a)]) & set(rmse[(setting, b)]))
            if len(common) < 3:
                continue
            tau = kendalltau([rmse[(setting, a)][e] for e in common], [rmse[(setting, b)][e] for e in common])
            rows.append(
                {
                    "setting": setting,
                    "data A": a,
                    "data B": b,
                    "estimators": len(common),
                    "Kendall tau": tau.statistic,
                }
            )
    return rows


def render_front_page(doc: Mapping[str, Any], intro: str, plots: Sequence[Path]) -> str:
    """The published front page: hand-written intro and findings, run log, box plots, then every table."""
    records = list(doc["records"])
    runs = list(doc.get("runs", []))
    lines = [intro.rstrip(), ""]
    lines += ["## Runs merged into these tables", ""]
    run_rows = [
        [r.get("date", DASH), r.get("git_commit", DASH) and str(r.get("git_commit"))[:10], r.get("n_records", DASH),
         f"`{r.get('command', DASH)}`"]
        for r in runs
    ]  # fmt: skip
    lines += [tabulate(run_rows, headers=["date", "commit", "records", "command"], tablefmt="pipe"), ""]
    agreement = ranking_agreement(records)
    if agreement:
        lines += [
            "## Do the rankings carry over between data sources?",
            "",
            "Kendall's tau between the ATE RMSE rankings of the estimators both sources have results for.",
            "",
            tabulate(
                [[r["setting"], r["data A"], r["data B"], r["estimators"], fmt_number(r["Kendall tau"])]
                 for r in agreement],
                headers=["setting", "data A", "data B", "estimators", "Kendall tau"],
                tablefmt="pipe",
                disable_numparse=True,
            ),
            "",
        ]  # fmt: skip
    if plots:
        lines += ["## Box plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in plots]
        lines.append("")
    header = runs[-1] if runs else {}
    body = render_markdown(records, header).split("\n", 1)[1]  # drop the page title
    lines += ["## Tables", "", "Provenance of the latest run:", body]
    return "\n".join(lines)
