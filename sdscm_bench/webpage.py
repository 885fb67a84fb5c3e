"""The leaderboard as one self-contained static HTML page: records in, one HTML string (or file) out.

Researchers browse leaderboards, so the page sorts and filters the same ranking tables as the markdown
leaderboard (:func:`sdscm_bench.ranking.ranking_tables`, cells formatted by the same functions of
:mod:`sdscm_bench.leaderboard`) and links every estimator to its per-dataset results and box plots.
Nothing is fetched: the CSS, the hand-written JavaScript, the box plots (SVG) and the per-dataset
records (compact, columnar JSON rounded to 4 significant digits) are all inline, so the file works
from disk, with no server and no network.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdscm_bench.leaderboard import (
    BOX_METRICS,
    CALIBRATION_COLUMNS,
    DASH,
    RANKING_COLUMNS,
    _share,
    fmt_ci,
    fmt_number,
    table_intro,
)
from sdscm_bench.ranking import TABLE_KEY, RankedRow, RankingTable, common_sets, group_records, ranking_tables
from sdscm_bench.results_file import _atomic_write_text

#: Shown in the variant filter and the ``data-variant`` attribute for a base family (no variant).
BASE_VARIANT = "(base)"
#: Box plots per estimator: per-dataset metric, axis label, axis scale (as in the markdown's PNGs).
BOX_PLOTS: tuple[tuple[str, str, str], ...] = (
    ("ate_error", "ATE error, ATE estimate − SATE (linear axis)", "linear"),
    ("pehe_sd_ite", BOX_METRICS["pehe_sd_ite"], "log"),
    ("cate_r2", BOX_METRICS["cate_r2"], "symlog"),
)
#: Per-dataset fields embedded for the estimator sections (columnar, rounded).
PER_DATASET_FIELDS: tuple[tuple[str, str], ...] = (
    ("ate_error", "ATE error"),
    ("pehe", "PEHE"),
    ("pehe_sd_ite", "PEHE/sd(ITE)"),
    ("cate_r2", "CATE R²"),
    ("ate_covered", "ATE covered"),
    ("cate_coverage", "unit coverage"),
    ("fit_seconds", "fit s"),
)
SIGNIFICANT = 4


def compact(x: Any) -> float | int | None:
    """A JSON number rounded to 4 significant digits (None for missing or non-finite): keeps the page small."""
    if x is None:
        return None
    if isinstance(x, bool | np.bool_):
        return int(bool(x))
    x = float(x)
    if not math.isfinite(x):
        return None
    r = float(f"{x:.{SIGNIFICANT}g}")
    return int(r) if r.is_integer() and abs(r) < 1e15 else r


def slug(text: str) -> str:
    """An HTML id fragment for a name (estimator names are identifiers already; anything else is replaced)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _code(text: str) -> str:
    """Escape, then turn the markdown helpers' backticks into <code> (table_intro writes markdown)."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts ``paper-gpt2/9`` before ``paper-gpt2/10`` (datasets are numbered)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def _variant_value(variant: str | None) -> str:
    return variant if variant else BASE_VARIANT


# ---------------------------------------------------------------------------------------------------
# Table cells: the markdown leaderboard's cells (leaderboard.render_table), with a sort key each


Cell = tuple[str, Any]  # (text shown, sort value: number, string, or None to sort last)


def ranking_cells(r: RankedRow) -> list[Cell]:
    """One ranking row as the markdown shows it (same formatters), each cell with its sort value."""
    diff = r.diff_vs_leader_ci
    return [
        (str(r.tier), r.tier),
        (r.estimator, r.estimator),
        (r.libraries, r.libraries),
        (fmt_ci(r.ate_rmse, r.ate_rmse_ci), r.ate_rmse),
        ("leader" if diff is None else f"[{fmt_number(diff[0])}, {fmt_number(diff[1])}]",
         0.0 if diff is None else (diff[0] + diff[1]) / 2),
        (f"{r.rank} [{r.rank_ci[0]}, {r.rank_ci[1]}]", r.rank),
        (f"{r.p_best:.2f}", r.p_best),
        (fmt_number(r.ate_r2), r.ate_r2),
        (fmt_ci(r.pehe_sd_ite_median, r.pehe_sd_ite_median_ci), r.pehe_sd_ite_median),
        (_share(r.pehe_sd_ite_below_1), r.pehe_sd_ite_below_1),
        (fmt_number(r.median_fit_seconds), r.median_fit_seconds),
        (str(r.failures), r.failures),
    ]  # fmt: skip


def calibration_cells(r: RankedRow) -> list[Cell]:
    """One calibration row as the markdown shows it, each cell with its sort value."""
    ate = (
        DASH
        if r.ate_coverage is None
        else f"{fmt_ci(r.ate_coverage, r.ate_coverage_ci)} (n = {r.ate_coverage_n})"
    )
    return [
        (r.estimator, r.estimator),
        (ate, r.ate_coverage),
        (r.ate_verdict or DASH, r.ate_verdict),
        (fmt_ci(r.unit_coverage, r.unit_coverage_ci), r.unit_coverage),
        (r.unit_verdict or DASH, r.unit_verdict),
        (fmt_number(r.unit_width), r.unit_width),
    ]  # fmt: skip


def table_datasets(records: Sequence[Mapping[str, Any]], tables: Sequence[RankingTable]) -> list[list[str]]:
    """The dataset fingerprints of each table, in the order :func:`ranking_tables` returns them.

    RankingTable keeps counts, not the datasets; the sets come from the same :func:`common_sets` call
    ranking_tables makes, so a box plot covers exactly the datasets its table ranks on.
    """
    out: list[list[str]] = []
    keys: list[tuple[str, ...]] = []
    for key, recs in group_records(records, *TABLE_KEY).items():
        by_estimator: dict[str, dict[str, Mapping[str, Any]]] = {}
        for r in recs:
            by_estimator.setdefault(str(r["estimator"]), {})[str(r["dataset_fingerprint"])] = r
        for _, datasets in common_sets(by_estimator):
            out.append(datasets)
            keys.append(key)
    got = [(t.family, str(t.variant), t.lm, t.setting) for t in tables]
    if got != keys:
        raise ValueError("tables do not come from these records (ranking_tables(records) gives other tables)")
    return out


def _table_json(table: RankingTable, anchor: str) -> dict[str, Any]:
    def ci(x: tuple[float, float] | None) -> list[Any] | None:
        return None if x is None else [compact(x[0]), compact(x[1])]

    return {
        "id": anchor,
        "family": table.family,
        "variant": table.variant,
        "lm": table.lm,
        "setting": table.setting,
        "main": table.main,
        "n_common": table.n_common,
        "n_scored": table.n_scored,
        "n_cate": table.n_cate,
        "tiers": table.tiers,
        "unranked": table.unranked,
        "rows": [
            {
                "estimator": r.estimator,
                "tier": r.tier,
                "ate_rmse": compact(r.ate_rmse),
                "ate_rmse_ci": ci(r.ate_rmse_ci),
                "diff_vs_leader_ci": ci(r.diff_vs_leader_ci),
                "rank": r.rank,
                "rank_ci": list(r.rank_ci),
                "p_best": compact(r.p_best),
                "ate_r2": compact(r.ate_r2),
                "pehe_sd_ite_median": compact(r.pehe_sd_ite_median),
                "pehe_sd_ite_median_ci": ci(r.pehe_sd_ite_median_ci),
                "pehe_sd_ite_below_1": compact(r.pehe_sd_ite_below_1),
                "ate_coverage": compact(r.ate_coverage),
                "ate_coverage_ci": ci(r.ate_coverage_ci),
                "unit_coverage": compact(r.unit_coverage),
                "unit_coverage_ci": ci(r.unit_coverage_ci),
                "median_fit_seconds": compact(r.median_fit_seconds),
                "failures": r.failures,
            }
            for r in table.rows
        ],
    }


# ---------------------------------------------------------------------------------------------------
# Box plots as inline SVG (horizontal boxes, one per table; statistics as matplotlib's boxplot draws them)


def _transform(scale: str) -> Any:
    if scale == "log":
        return lambda v: np.log10(np.maximum(np.asarray(v, dtype=float), 1e-300))
    if scale == "symlog":  # linear within ±1, logarithmic beyond (linthresh 1, as the PNGs)
        return lambda v: np.sign(v) * np.log10(1.0 + np.abs(np.asarray(v, dtype=float)))
    return lambda v: np.asarray(v, dtype=float)


def _ticks(scale: str, lo: float, hi: float) -> list[float]:
    """Tick values (data space) spanning [lo, hi] (data space)."""
    from matplotlib.ticker import MaxNLocator

    if scale == "log":
        decades = range(math.floor(math.log10(max(lo, 1e-300))), math.ceil(math.log10(max(hi, 1e-300))) + 1)
        ticks = [10.0**d for d in decades]
        step = max(1, len(ticks) // 6)
        return ticks[::step]
    if scale == "symlog":
        out = [0.0]
        for sign in (1.0, -1.0):
            d = 0
            while d < 16 and (sign * 10.0**d <= hi if sign > 0 else sign * 10.0**d >= lo):
                out.append(sign * 10.0**d)
                d += 1
        out = sorted(out)
        step = max(1, len(out) // 7)
        return out[::step]
    return [float(t) for t in MaxNLocator(5).tick_values(lo, hi) if lo <= t <= hi] or [lo, hi]


def box_plot_svg(groups: Sequence[tuple[str, Sequence[float]]], label: str, scale: str) -> str:
    """One horizontal box plot per group (label, values): matplotlib's statistics (whiskers 1.5 IQR),
    fliers thinned to one per pixel so a 1,000-dataset table stays a few hundred bytes."""
    from matplotlib.cbook import boxplot_stats

    groups = [(name, np.asarray(v, dtype=float)) for name, v in groups if len(v)]
    if not groups:
        return ""
    f = _transform(scale)
    stats = [boxplot_stats(v, whis=1.5)[0] for _, v in groups]
    all_vals = np.concatenate([v for _, v in groups])
    if scale == "log":
        all_vals = all_vals[all_vals > 0]
        if not all_vals.size:
            return ""
    lo, hi = float(np.min(all_vals)), float(np.max(all_vals))
    t_lo, t_hi = float(f(lo)), float(f(hi))
    if t_hi - t_lo < 1e-12:
        t_lo, t_hi = t_lo - 0.5, t_hi + 0.5
    pad = 0.04 * (t_hi - t_lo)
    t_lo, t_hi = t_lo - pad, t_hi + pad
    label_w, plot_w, row_h, top = 300, 380, 24, 8
    width = label_w + plot_w + 20
    height = top + row_h * len(groups) + 44

    def x(v: Any) -> np.ndarray:
        return label_w + 10 + (np.asarray(f(v)) - t_lo) / (t_hi - t_lo) * plot_w

    parts = [
        f'<svg class="box" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(label)}">'
    ]
    axis_y = top + row_h * len(groups)
    for t in _ticks(scale, lo, hi):
        tx = float(x(t))
        if label_w + 10 - 0.5 <= tx <= label_w + 10 + plot_w + 0.5:
            parts.append(
                f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y}" class="grid"/>'
                f'<text x="{tx:.1f}" y="{axis_y + 14}" text-anchor="middle">{html.escape(fmt_number(t))}</text>'
            )
    for i, ((name, _), s) in enumerate(zip(groups, stats, strict=True)):
        cy = top + row_h * i + row_h / 2
        q1, med, q3, wlo, whi = (float(x(s[k])) for k in ("q1", "med", "q3", "whislo", "whishi"))
        tip = (
            f"{name}: n = {len(groups[i][1])}, median {fmt_number(s['med'])}, "
            f"IQR [{fmt_number(s['q1'])}, {fmt_number(s['q3'])}], whiskers [{fmt_number(s['whislo'])}, "
            f"{fmt_number(s['whishi'])}]"
        )
        parts.append(
            f"<g><title>{html.escape(tip)}</title>"
            f'<text x="{label_w}" y="{cy + 4:.1f}" text-anchor="end">{html.escape(name)}</text>'
            f'<line x1="{wlo:.1f}" y1="{cy:.1f}" x2="{q1:.1f}" y2="{cy:.1f}"/>'
            f'<line x1="{q3:.1f}" y1="{cy:.1f}" x2="{whi:.1f}" y2="{cy:.1f}"/>'
            f'<line x1="{wlo:.1f}" y1="{cy - 5:.1f}" x2="{wlo:.1f}" y2="{cy + 5:.1f}"/>'
            f'<line x1="{whi:.1f}" y1="{cy - 5:.1f}" x2="{whi:.1f}" y2="{cy + 5:.1f}"/>'
            f'<rect x="{q1:.1f}" y="{cy - 8:.1f}" width="{max(q3 - q1, 0.5):.1f}" height="16"/>'
            f'<line x1="{med:.1f}" y1="{cy - 8:.1f}" x2="{med:.1f}" y2="{cy + 8:.1f}" class="med"/>'
        )
        fliers = np.asarray(s["fliers"], dtype=float)
        if scale == "log":
            fliers = fliers[fliers > 0]
        for fx in sorted({round(float(v)) for v in x(fliers)}) if fliers.size else []:
            parts.append(f'<circle cx="{fx}" cy="{cy:.1f}" r="2"/>')
        parts.append("</g>")
    parts.append(
        f'<text x="{label_w + 10 + plot_w / 2:.0f}" y="{axis_y + 34}" text-anchor="middle">'
        f"{html.escape(label)}</text></svg>"
    )
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------
# The page


def _table_label(table: RankingTable) -> str:
    """Plain text of a table's heading (the markdown's table_title without backticks)."""
    fam = table.family + (f" [{table.variant}]" if table.variant else "")
    extra = "" if table.main else f" · {table.n_common} datasets"
    return f"{fam} · {table.lm} · {table.setting}{extra}"


def _attrs(table: RankingTable) -> str:
    return (
        f'data-family="{html.escape(table.family)}" data-variant="{html.escape(_variant_value(table.variant))}" '
        f'data-lm="{html.escape(table.lm)}" data-setting="{html.escape(table.setting)}"'
    )


def _sort_attr(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return html.escape(value)
    v = compact(value)
    return "" if v is None else str(v)


def _html_table(
    columns: Sequence[tuple[str, str]], rows: Sequence[list[Cell]], row_attrs: Sequence[str], link_col: int
) -> str:
    """A sortable <table>: the header carries each column's meaning, each cell its sort value."""
    head = "".join(
        f'<th title="{html.escape(meaning)}" tabindex="0">{html.escape(name)}</th>'
        for name, meaning in columns
    )
    body = []
    for cells, attrs in zip(rows, row_attrs, strict=True):
        tds = []
        for j, (text, value) in enumerate(cells):
            content = html.escape(text)
            if j == link_col:
                content = f'<a class="est-link" href="#est-{slug(text)}">{content}</a>'
            tds.append(f'<td data-v="{_sort_attr(value)}">{content}</td>')
        body.append(f"<tr {attrs}>{''.join(tds)}</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _table_section(table: RankingTable, anchor: str) -> str:
    attrs = _attrs(table)
    row_attrs = [f'{attrs} data-estimator="{html.escape(r.estimator)}"' for r in table.rows]
    parts = [
        f'<section class="rt" id="{anchor}" {attrs}>',
        f"<h3>{html.escape(_table_label(table))}</h3>",
        f"<p>{_code(table_intro(table))}</p>",
    ]
    if table.rows:  # a table that ranks nobody says so in its intro, with no empty table
        parts.append(
            _html_table(RANKING_COLUMNS, [ranking_cells(r) for r in table.rows], row_attrs, link_col=1)
        )
    for e in sorted(table.unranked):
        parts.append(
            f'<p class="unranked">Not ranked: <a class="est-link" href="#est-{slug(e)}">{html.escape(e)}</a></p>'
        )
    calibrated = [r for r in table.rows if r.ate_coverage is not None or r.unit_coverage is not None]
    if calibrated:
        cal_attrs = [f'{attrs} data-estimator="{html.escape(r.estimator)}"' for r in calibrated]
        parts += [
            "<p>Interval calibration (nominal 95%):</p>",
            _html_table(
                (("estimator", "adapter name"), *CALIBRATION_COLUMNS),
                [calibration_cells(r) for r in calibrated],
                cal_attrs,
                link_col=0,
            ),
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _estimator_section(
    estimator: str,
    tables: Sequence[tuple[str, RankingTable, list[str]]],
    by_key: Mapping[tuple[str, ...], Mapping[tuple[str, str], Mapping[str, Any]]],
) -> str:
    """Where the estimator ranks, box plots of its per-dataset metrics by table, and a slot for its
    per-dataset table (drawn by the script from the embedded records)."""
    items = []
    for anchor, t, _ in tables:
        row = next((r for r in t.rows if r.estimator == estimator), None)
        if row is not None:
            what = f"tier {row.tier} of {t.tiers}, rank {row.rank}, ATE RMSE {fmt_ci(row.ate_rmse, row.ate_rmse_ci)}"
        elif estimator in t.unranked:
            what = f"not ranked ({t.unranked[estimator]} failures)"
        else:
            continue
        items.append(
            f'<li {_attrs(t)}><a href="#{anchor}">{html.escape(_table_label(t))}</a>: {html.escape(what)}</li>'
        )
    plots = []
    for metric, label, scale in BOX_PLOTS:
        groups = []
        for _, t, datasets in tables:
            if not any(r.estimator == estimator for r in t.rows) and estimator not in t.unranked:
                continue
            recs = by_key[(t.family, str(t.variant), t.lm, t.setting)]
            vals = []
            for d in datasets:
                r = recs.get((estimator, d))
                if r is not None and not r.get("failed") and r.get(metric) is not None:
                    vals.append(float(r[metric]))
            groups.append((_table_label(t), vals))
        svg = box_plot_svg(groups, label, scale)
        if svg:
            plots.append(f'<figure data-metric="{metric}">{svg}</figure>')
    sid = f"est-{slug(estimator)}"
    return "\n".join(
        [
            f'<section class="est" id="{sid}" data-estimator="{html.escape(estimator)}">',
            f"<h2>{html.escape(estimator)}</h2>",
            '<p><a href="#tables">back to the tables</a></p>',
            f"<ul>{''.join(items)}</ul>",
            "<h3>Per-dataset metrics by table</h3>",
            "<p>Each box: the datasets of one table (failed datasets left out); whiskers 1.5 IQR, "
            "points beyond them thinned to one per pixel.</p>"
            if plots
            else "<p>No per-dataset metrics.</p>",
            *plots,
            "<h3>Per-dataset results</h3>",
            f'<div class="per-dataset" data-estimator="{html.escape(estimator)}"></div>',
            "</section>",
        ]
    )


def per_dataset_json(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every record as compact columns: indices into estimator, group and dataset lists, rounded metrics."""
    estimators = sorted({str(r["estimator"]) for r in records})
    groups = sorted({tuple(str(r.get(k)) for k in TABLE_KEY) for r in records})
    datasets = sorted({str(r.get("dataset")) for r in records}, key=natural_key)
    e_idx = {e: i for i, e in enumerate(estimators)}
    g_idx = {g: i for i, g in enumerate(groups)}
    d_idx = {d: i for i, d in enumerate(datasets)}
    order = sorted(
        records,
        key=lambda r: (
            str(r["estimator"]),
            tuple(str(r.get(k)) for k in TABLE_KEY),
            d_idx[str(r.get("dataset"))],
        ),
    )
    cols: dict[str, list[Any]] = {"e": [], "g": [], "d": []}
    cols.update({k: [] for k, _ in PER_DATASET_FIELDS})
    failed = []
    for i, r in enumerate(order):
        cols["e"].append(e_idx[str(r["estimator"])])
        cols["g"].append(g_idx[tuple(str(r.get(k)) for k in TABLE_KEY)])
        cols["d"].append(d_idx[str(r.get("dataset"))])
        for k, _ in PER_DATASET_FIELDS:
            cols[k].append(compact(r.get(k)))
        if r.get("failed"):
            failed.append(i)
    return {
        "estimators": estimators,
        "groups": [
            {"family": f, "variant": _variant_value(None if v == "None" else v), "lm": lm, "setting": s}
            for f, v, lm, s in groups
        ],
        "datasets": datasets,
        "fields": [[k, name] for k, name in PER_DATASET_FIELDS],
        "columns": cols,
        "failed": failed,
    }


def _select(field: str, label: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in sorted(set(values)))
    return (
        f'<label>{label} <select id="filter-{field}" data-filter="{field}">'
        f'<option value="">all</option>{opts}</select></label>'
    )


def render_html(
    records: Iterable[Mapping[str, Any]],
    *,
    tables: Sequence[RankingTable] | None = None,
    runs: Sequence[Mapping[str, Any]] = (),
    title: str = "sdscm-bench leaderboard",
) -> str:
    """The whole page. ``tables`` defaults to :func:`ranking_tables` of the records (pass them to reuse)."""
    records = list(records)
    tables = ranking_tables(records) if tables is None else list(tables)
    anchored = [
        (f"table-{i + 1}", t, ds)
        for i, (t, ds) in enumerate(zip(tables, table_datasets(records, tables), strict=True))
    ]
    by_key: dict[tuple[str, ...], dict[tuple[str, str], Mapping[str, Any]]] = {}
    for r in records:
        key = tuple(str(r.get(k)) for k in TABLE_KEY)
        by_key.setdefault(key, {})[(str(r["estimator"]), str(r["dataset_fingerprint"]))] = r
    estimators = sorted({str(r["estimator"]) for r in records})
    data = {
        "tables": [_table_json(t, a) for a, t, _ in anchored],
        "records": per_dataset_json(records),
    }
    # "<" only occurs inside JSON strings: as \u003c no "</script>" or "<!--" can end the script early.
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    payload = payload.replace("<", "\\u003c")
    latest = runs[-1] if runs else {}
    prov = ""
    if latest:
        commit = str(latest.get("git_commit") or DASH)[:10]
        prov = (
            f" Latest run: {html.escape(str(latest.get('date', DASH)))}, commit {html.escape(commit)}"
            f"{' (uncommitted changes)' if latest.get('git_dirty') else ''}."
        )
    legend = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(m)}</td></tr>"
        for n, m in (*RANKING_COLUMNS, *CALIBRATION_COLUMNS)
    )
    filters = " ".join(
        [
            _select("lm", "LM", (t.lm for t in tables)),
            _select("setting", "setting", (t.setting for t in tables)),
            _select("family", "family", (t.family for t in tables)),
            _select("variant", "variant", (_variant_value(t.variant) for t in tables)),
        ]
    )
    est_links = " ".join(f'<a href="#est-{slug(e)}">{html.escape(e)}</a>' for e in estimators)
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1>",
        f"<p>{len(records)} per-dataset records, {len(tables)} ranking tables, {len(estimators)} estimators, "
        f"{len(runs)} runs.{prov} Every table ranks its estimators on one common set of datasets; rows in one "
        "tier are ties (paired 95% bootstrap CI of the ATE RMSE difference to the tier leader includes 0). "
        "Click a column header to sort; the filters apply to the tables and the per-dataset results.</p>",
        f'<details><summary>Column legend</summary><table class="legend">{legend}</table></details>',
        f'<nav class="filters" aria-label="filters">{filters} <span id="shown-count"></span></nav>',
        f'<p class="estimators">Estimators: {est_links}</p></header>',
        '<main><h2 id="tables">Ranking tables</h2>',
        *(_table_section(t, a) for a, t, _ in anchored),
        '<h2 id="estimators">Estimators</h2>',
        *(_estimator_section(e, anchored, by_key) for e in estimators),
        "</main>",
        f'<script type="application/json" id="sdscm-data">{payload}</script>',
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(body) + "\n"


def write_html(
    path: str | Path,
    records: Iterable[Mapping[str, Any]],
    *,
    tables: Sequence[RankingTable] | None = None,
    runs: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write the page atomically (a reader never sees half a page); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(path, render_html(records, tables=tables, runs=runs))
    return path


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 1.5rem 3rem;color:#1b1b1b;font-size:14px}
header{border-bottom:1px solid #ccc;margin-bottom:1rem}
h1{font-size:1.6rem}h2{margin-top:2rem}h3{margin-bottom:.3rem}
table{border-collapse:collapse;margin:.4rem 0 1rem}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
td:nth-child(2),td:nth-child(3),th:nth-child(2),th:nth-child(3){text-align:left}
table.legend td{text-align:left;white-space:normal}
table.pd td,table.pd th{text-align:right}
table.pd td:nth-child(-n+5),table.pd th:nth-child(-n+5){text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tr:nth-child(even) td{background:#fafafa}
.filters{position:sticky;top:0;background:#fff;padding:.5rem 0;z-index:1}
.filters label{margin-right:1rem}#shown-count{color:#555}
section.est{border-top:1px solid #ccc;padding-top:.5rem}section.est:target{background:#fffbe6}
section.rt:target{background:#fffbe6}
section,h2{scroll-margin-top:3rem}
svg.box line{stroke:#333;stroke-width:1}svg.box line.grid{stroke:#e4e4e4}svg.box line.med{stroke:#d62728;stroke-width:2}
svg.box rect{fill:#cfe3f7;stroke:#333}svg.box circle{fill:none;stroke:#555}svg.box text{font-size:11px;fill:#222}
figure{margin:.3rem 0}code{font-size:.95em}button{margin:.2rem 0}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("sdscm-data").textContent);
  var FILTERS = ["lm", "setting", "family", "variant"];
  var PAGE = 100;
  var R = DATA.records, C = R.columns;

  function filters() {
    var f = {};
    FILTERS.forEach(function (k) { f[k] = document.getElementById("filter-" + k).value; });
    return f;
  }
  function matches(obj, f) {
    return FILTERS.every(function (k) { return !f[k] || obj[k] === f[k]; });
  }
  function cmp(a, b, num) {
    // missing values sort last whatever the direction: handled by the caller
    if (num) return a - b;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function sortKey(text, num) {
    if (text === "" || text === null || text === undefined) return null;
    return num ? parseFloat(text) : text;
  }

  // Ranking and calibration tables: sort the rows by the clicked column's data-v.
  function sortTable(th) {
    var table = th.closest("table");
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var vals = rows.map(function (r) { return r.cells[idx].getAttribute("data-v"); });
    var num = vals.every(function (v) { return v === "" || !isNaN(parseFloat(v)) && isFinite(v); });
    var keyed = rows.map(function (r, i) { return { row: r, key: sortKey(vals[i], num), i: i }; });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === null && b.key === null) return a.i - b.i;
        return a.key === null ? 1 : -1;
      }
      return dir * cmp(a.key, b.key, num) || a.i - b.i;
    });
    var body = table.tBodies[0];
    keyed.forEach(function (k) { body.appendChild(k.row); });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortTable(th); });
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") sortTable(th); });
  });

  // Per-dataset tables of the estimator sections, drawn from the embedded columns.
  var byEstimator = {};
  for (var i = 0; i < C.e.length; i++) {
    var name = R.estimators[C.e[i]];
    (byEstimator[name] = byEstimator[name] || []).push(i);
  }
  var failed = {};
  R.failed.forEach(function (i) { failed[i] = true; });
  var HEAD = ["family", "variant", "LM", "setting", "dataset"].concat(R.fields.map(function (f) { return f[1]; }));
  function fmt(v) {
    if (v === null || v === undefined) return "\u2013";
    if (Math.abs(v) >= 999.5) return v.toFixed(0);
    var s = Number(v.toPrecision(3)).toString();
    return s;
  }
  function cellValue(i, col) {
    var g = R.groups[C.g[i]];
    switch (col) {
      case 0: return g.family;
      case 1: return g.variant;
      case 2: return g.lm;
      case 3: return g.setting;
      case 4: return R.datasets[C.d[i]];
      default: return C[R.fields[col - 5][0]][i];
    }
  }
  var state = {};
  function renderPerDataset(div) {
    var est = div.getAttribute("data-estimator");
    var st = state[est] = state[est] || { col: null, dir: 1, all: false };
    var f = filters();
    var idx = (byEstimator[est] || []).filter(function (i) { return matches(R.groups[C.g[i]], f); });
    if (st.col !== null) {
      var col = st.col, num = col >= 4;  // datasets sort by their index: the list is in natural order
      idx = idx.map(function (i, k) { return { i: i, v: col === 4 ? C.d[i] : cellValue(i, col), k: k }; });
      idx.sort(function (a, b) {
        var an = a.v === null || a.v === undefined, bn = b.v === null || b.v === undefined;
        if (an || bn) return an && bn ? a.k - b.k : an ? 1 : -1;
        return st.dir * cmp(a.v, b.v, num) || a.k - b.k;
      });
      idx = idx.map(function (o) { return o.i; });
    }
    var shown = st.all ? idx : idx.slice(0, PAGE);
    var html = ['<table class="pd"><thead><tr>'];
    HEAD.forEach(function (h, c) {
      var s = st.col === c ? ' aria-sort="' + (st.dir === 1 ? "ascending" : "descending") + '"' : "";
      html.push('<th data-col="' + c + '"' + s + ' tabindex="0">' + esc(h) + "</th>");
    });
    html.push("</tr></thead><tbody>");
    shown.forEach(function (i) {
      var g = R.groups[C.g[i]];
      html.push('<tr data-lm="' + esc(g.lm) + '" data-setting="' + esc(g.setting) + '">');
      for (var c = 0; c < HEAD.length; c++) {
        var v = cellValue(i, c);
        var text = c < 5 ? esc(String(v)) : (R.fields[c - 5][0] === "ate_covered" && v !== null ? (v ? "yes" : "no") : fmt(v));
        if (c === 4 && failed[i]) text += " (failed)";
        html.push("<td>" + text + "</td>");
      }
      html.push("</tr>");
    });
    html.push("</tbody></table>");
    var note = shown.length + " of " + idx.length + " datasets shown (filters apply)";
    html.push('<p class="pd-count">' + note + "</p>");
    if (idx.length > PAGE) html.push('<button type="button">' + (st.all ? "show the first " + PAGE : "show all " + idx.length) + "</button>");
    div.innerHTML = html.join("");
    div.querySelectorAll("th").forEach(function (th) {
      function go() {
        var c = parseInt(th.getAttribute("data-col"), 10);
        st.dir = st.col === c ? -st.dir : 1;
        st.col = c;
        renderPerDataset(div);
      }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter") go(); });
    });
    var btn = div.querySelector("button");
    if (btn) btn.addEventListener("click", function () { st.all = !st.all; renderPerDataset(div); });
  }
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  function apply() {
    var f = filters(), shown = 0, total = 0;
    document.querySelectorAll("section.rt").forEach(function (s) {
      total++;
      var ok = matches(s.dataset, f);
      s.hidden = !ok;
      if (ok) shown++;
    });
    document.querySelectorAll("section.est li").forEach(function (li) { li.hidden = !matches(li.dataset, f); });
    document.getElementById("shown-count").textContent = shown + " of " + total + " tables shown";
    document.querySelectorAll("div.per-dataset").forEach(renderPerDataset);
  }
  FILTERS.forEach(function (k) { document.getElementById("filter-" + k).addEventListener("change", apply); });
  apply();
  // The per-dataset tables drawn above a linked section moved it: scroll to it again.
  var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target) target.scrollIntoView();
})();
"""
