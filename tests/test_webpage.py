"""The static HTML leaderboard (sdscm_bench/webpage.py) on synthetic records, without a browser.

The page must be the markdown leaderboard's tables (same cells, same numbers), self-contained (no URL
a browser would fetch), and every link must land on an anchor of the page.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdscm_bench.leaderboard import fmt_number, render_table
from sdscm_bench.ranking import ranking_tables
from sdscm_bench.webpage import (
    BASE_VARIANT,
    compact,
    render_html,
    slug,
    table_datasets,
    write_html,
)

FIXTURES = Path(__file__).parent / "fixtures"


def synthetic_records() -> list[dict[str, Any]]:
    """The committed fixture (one family, LM and setting; a flaky and a partial estimator), plus copies
    under a second LM, a second setting and a variant with other errors, so that filters have work."""
    base: list[dict[str, Any]] = json.loads((FIXTURES / "synthetic_records.json").read_text())["records"]
    out = [dict(r) for r in base]
    scale = {"ols": 3.0, "forest": 0.5, "dim": 1.0, "flaky": 0.8, "partial": 2.0}
    for r in base:
        for changes in (
            {"lm": "lm-b"},
            {"setting": "hidden"},
            {"variant": "short", "dataset_fingerprint": "v-" + r["dataset_fingerprint"]},
        ):
            rec = {**r, **changes}
            if r.get("ate") is not None and not r.get("failed"):
                err = r["ate_error"] * scale[r["estimator"]] + (0.02 if "setting" in changes else 0.0)
                rec.update(ate=r["sate"] + err, ate_error=err, ate_abs_error=abs(err))
            out.append(rec)
    return out


class PageParser(HTMLParser):
    """Ids, link targets, fetchable attributes and the text of every table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.fetching: list[tuple[str, str]] = []  # (attribute, value) a browser would load
        self.tables: list[list[list[str]]] = []
        self.scripts: list[str] = []
        self._cell: list[str] | None = None
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(a["id"] or "")
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(a["href"] or "")
        for name in ("src", "srcset", "data", "poster", "action", "formaction", "xlink:href"):
            if a.get(name):
                self.fetching.append((name, a[name] or ""))
        if tag == "link":
            self.fetching.append(("link", a.get("href") or ""))
        if tag == "table" and "sortable" in (a.get("class") or ""):
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag == "td" and self.tables:
            self._cell = []
        elif tag == "script":
            self._script = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._script is not None:
            self._script.append(data)


def markdown_rows(lines: list[str]) -> list[list[list[str]]]:
    """The body rows of each pipe table in markdown lines (header and separator dropped)."""
    tables: list[list[list[str]]] = []
    in_table = False
    for line in "\n".join(lines).split("\n"):  # tabulate's table is one multi-line element
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not in_table:
                tables.append([])
                in_table = True
                continue  # header
            if all(set(c) <= set(":-") for c in cells):
                continue  # separator
            tables[-1].append(cells)
        else:
            in_table = False
    return tables


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return synthetic_records()


@pytest.fixture(scope="module")
def tables(records: list[dict[str, Any]]) -> list[Any]:
    return ranking_tables(records)


@pytest.fixture(scope="module")
def page(records: list[dict[str, Any]], tables: list[Any]) -> str:
    return render_html(records, tables=tables, runs=[{"date": "2026-11-28", "git_commit": "abc"}])


@pytest.fixture(scope="module")
def parsed(page: str) -> PageParser:
    p = PageParser()
    p.feed(page)
    p.close()
    return p


def embedded(parsed: PageParser) -> dict[str, Any]:
    (payload,) = [s for s in parsed.scripts if s.startswith('{"tables"')]
    return json.loads(payload)


def test_the_page_fetches_nothing(page: str, parsed: PageParser) -> None:
    assert "://" not in page  # no http(s), file or protocol URL anywhere, not even as text
    assert not parsed.fetching  # no src, link, srcset, data, form action
    assert all(h.startswith("#") for h in parsed.hrefs)
    assert not re.search(r"url\(|@import", page)  # nothing loaded from CSS
    assert "fetch(" not in page and "XMLHttpRequest" not in page and "import(" not in page


def test_every_link_lands_on_an_anchor_and_ids_are_unique(parsed: PageParser) -> None:
    assert len(parsed.ids) == len(set(parsed.ids))
    ids = set(parsed.ids)
    missing = sorted({h[1:] for h in parsed.hrefs} - ids)
    assert not missing
    assert len(parsed.hrefs) > 50


def test_every_estimator_has_a_section_and_a_link_from_each_of_its_tables(
    records: list[dict[str, Any]], tables: list[Any], page: str, parsed: PageParser
) -> None:
    estimators = {r["estimator"] for r in records}
    assert estimators == {"ols", "forest", "dim", "flaky", "partial"}
    for e in estimators:
        assert f"est-{slug(e)}" in parsed.ids
        assert f'<div class="per-dataset" data-estimator="{e}">' in page
    for i, t in enumerate(tables):
        section = page.split(f'<section class="rt" id="table-{i + 1}"', 1)[1].split("</section>", 1)[0]
        for e in [r.estimator for r in t.rows] + list(t.unranked):
            assert f'href="#est-{slug(e)}"' in section


def test_table_cells_are_the_markdown_leaderboards_cells(tables: list[Any], parsed: PageParser) -> None:
    expected: list[list[list[str]]] = []
    for t in tables:
        expected += markdown_rows(render_table(t))
    got = [rows[1:] for rows in parsed.tables]  # first row: the header (th only, no cells)
    assert all(rows[0] == [] for rows in parsed.tables)
    assert got == expected and sum(len(rows) for rows in got) > 30
    # a tier and a CI on every ranking row (12 cells; calibration rows have 6)
    ranking_rows = [cells for rows in got for cells in rows if len(cells) == 12]
    assert len(ranking_rows) == sum(len(t.rows) for t in tables)
    assert all(cells[0].isdigit() and re.fullmatch(r"\S+ \[\S+, \S+\]", cells[3]) for cells in ranking_rows)


def test_filters_cover_every_lm_setting_family_and_variant(tables: list[Any], page: str) -> None:
    for field, values in (
        ("lm", {"lm-a", "lm-b"}),
        ("setting", {"confounder", "hidden"}),
        ("family", {"fam"}),
        ("variant", {BASE_VARIANT, "short"}),
    ):
        select = page.split(f'<select id="filter-{field}"', 1)[1].split("</select>", 1)[0]
        assert re.findall(r'<option value="([^"]*)">', select) == ["", *sorted(values)]
    assert page.count('<section class="rt"') == len(tables)
    for i, t in enumerate(tables):
        head = page.split(f'id="table-{i + 1}" ', 1)[1].split(">", 1)[0]
        assert f'data-lm="{t.lm}"' in head and f'data-setting="{t.setting}"' in head
        assert f'data-variant="{t.variant or BASE_VARIANT}"' in head


def test_embedded_tables_match_the_ranking_computation(tables: list[Any], parsed: PageParser) -> None:
    data = embedded(parsed)
    assert len(data["tables"]) == len(tables) > 4
    for got, t in zip(data["tables"], tables, strict=True):
        assert (got["family"], got["variant"], got["lm"], got["setting"]) == (
            t.family,
            t.variant,
            t.lm,
            t.setting,
        )
        assert (got["n_common"], got["n_scored"], got["tiers"], got["main"]) == (
            t.n_common,
            t.n_scored,
            t.tiers,
            t.main,
        )
        assert got["unranked"] == t.unranked
        assert [r["estimator"] for r in got["rows"]] == [r.estimator for r in t.rows]
        for g, r in zip(got["rows"], t.rows, strict=True):
            assert g["tier"] == r.tier and g["rank"] == r.rank and g["rank_ci"] == list(r.rank_ci)
            assert g["ate_rmse"] == pytest.approx(r.ate_rmse, rel=1e-3)
            assert g["ate_rmse_ci"] == pytest.approx(list(r.ate_rmse_ci), rel=1e-3)
            assert g["p_best"] == pytest.approx(r.p_best, rel=1e-3, abs=1e-12)
            if r.pehe_sd_ite_median is not None:
                assert g["pehe_sd_ite_median"] == pytest.approx(r.pehe_sd_ite_median, rel=1e-3)
            if r.unit_coverage is not None:
                assert g["unit_coverage"] == pytest.approx(r.unit_coverage, rel=1e-3)
    # the "partial" estimator lacks datasets: a further table over the larger common set
    assert any(not t["main"] for t in data["tables"])


def test_embedded_per_dataset_records(records: list[dict[str, Any]], parsed: PageParser) -> None:
    data = embedded(parsed)["records"]
    cols = data["columns"]
    assert len(cols["e"]) == len(records)
    got = {
        (
            data["estimators"][cols["e"][i]],
            data["groups"][cols["g"][i]]["lm"],
            data["groups"][cols["g"][i]]["setting"],
            data["groups"][cols["g"][i]]["variant"],
            data["datasets"][cols["d"][i]],
        ): i
        for i in range(len(cols["e"]))
    }
    for r in records:
        i = got[(r["estimator"], r["lm"], r["setting"], r.get("variant") or BASE_VARIANT, r["dataset"])]
        for key in ("ate_error", "pehe", "pehe_sd_ite", "cate_r2", "cate_coverage", "fit_seconds"):
            if r.get(key) is None:
                assert cols[key][i] is None
            else:
                assert cols[key][i] == pytest.approx(r[key], rel=1e-3, abs=1e-12)
        assert (i in data["failed"]) == bool(r.get("failed"))


def test_box_plots_cover_each_tables_datasets(
    records: list[dict[str, Any]], tables: list[Any], page: str
) -> None:
    """The median in each box's tooltip is that of the estimator's non-failed datasets of the table."""
    sets = table_datasets(records, tables)
    section = page.split('id="est-forest"', 1)[1].split("</section>", 1)[0]
    figure = section.split('<figure data-metric="pehe_sd_ite">', 1)[1].split("</figure>", 1)[0]
    assert figure.count("<rect") == len(tables)  # forest is in every table
    for t, datasets in zip(tables, sets, strict=True):
        vals = [
            r["pehe_sd_ite"]
            for r in records
            if r["estimator"] == "forest"
            and (r["family"], r.get("variant"), r["lm"], r["setting"])
            == (t.family, t.variant, t.lm, t.setting)
            and r["dataset_fingerprint"] in set(datasets)
            and not r.get("failed")
            and r.get("pehe_sd_ite") is not None
        ]
        assert f"n = {len(vals)}, median {fmt_number(float(np.median(vals)))}," in figure
    # an ATE-only estimator has no CATE box plot
    dim = page.split('id="est-dim"', 1)[1].split("</section>", 1)[0]
    assert 'data-metric="ate_error"' in dim and 'data-metric="pehe_sd_ite"' not in dim


def test_table_datasets_rejects_tables_of_other_records(
    records: list[dict[str, Any]], tables: list[Any]
) -> None:
    with pytest.raises(ValueError, match="tables do not come from these records"):
        table_datasets([r for r in records if r["lm"] == "lm-a"], tables)


def test_compact_rounds_to_four_significant_digits() -> None:
    assert compact(0.123456) == 0.1235 and compact(123456.7) == 123500 and compact(2.0) == 2
    assert compact(-3.14159e-7) == -3.142e-07 and compact(True) == 1
    assert compact(None) is None and compact(float("nan")) is None and compact(float("inf")) is None


def test_publish_writes_the_page_beside_the_markdown(
    tmp_path: Path, records: list[dict[str, Any]], capsys
) -> None:
    from sdscm_bench.cli import main
    from sdscm_bench.results_file import merge_results

    merge_results(tmp_path / "results.json", records[:92], {"command": "pytest --estimator=all"})
    (tmp_path / "intro.md").write_text("# Front page\n")
    args = ["publish", str(tmp_path / "results.json"), "--intro", str(tmp_path / "intro.md"), "--no-plots"]
    assert main(args) == 0
    page = (tmp_path / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="est-ols"' in page
    assert f"wrote {tmp_path / 'index.html'}" in capsys.readouterr().out
    assert main([*args, "--html", str(tmp_path / "site" / "board.html")]) == 0
    assert (tmp_path / "site" / "board.html").read_text() == page
    (tmp_path / "index.html").unlink()
    assert main([*args, "--no-html"]) == 0
    assert not (tmp_path / "index.html").exists()


def test_write_html_is_the_rendered_page(
    tmp_path: Path, records: list[dict[str, Any]], tables: list[Any]
) -> None:
    path = write_html(tmp_path / "deep" / "page.html", records, tables=tables)
    assert path.read_text(encoding="utf-8") == render_html(records, tables=tables)


def test_datasets_are_listed_in_natural_order() -> None:
    from sdscm_bench.webpage import natural_key, per_dataset_json

    names = ["paper-gpt2/10", "paper-gpt2/9", "agriculture/seed10", "agriculture/seed8", "paper-gpt2/1"]
    assert sorted(names, key=natural_key) == [
        "agriculture/seed8", "agriculture/seed10", "paper-gpt2/1", "paper-gpt2/9", "paper-gpt2/10",
    ]  # fmt: skip
    recs = [
        {"estimator": "e", "family": "f", "lm": "l", "setting": "s", "dataset": n, "dataset_fingerprint": n}
        for n in names
    ]
    data = per_dataset_json(recs)
    assert [data["datasets"][d] for d in data["columns"]["d"]] == sorted(names, key=natural_key)


def test_names_cannot_end_the_embedded_script(records: list[dict[str, Any]]) -> None:
    odd = "ds</script><!--<script>"
    recs = [
        {**r, "dataset": odd if r["dataset"] == "ds00" else r["dataset"]}
        for r in records
        if r["lm"] == "lm-b"
    ]
    page = render_html(recs)
    assert page.count("</script>") == 2 and page.count("<!--") == 0
    p = PageParser()
    p.feed(page)
    assert odd in embedded(p)["records"]["datasets"]


def test_a_table_that_ranks_nobody_shows_its_intro_and_no_empty_table(records: list[dict[str, Any]]) -> None:
    """Every estimator failed on more than 5% of the variant's datasets: no ranking, so no table."""
    variant = [dict(r) for r in records if r.get("variant") == "short"]
    datasets = sorted({r["dataset_fingerprint"] for r in variant})
    for r in variant:
        if datasets.index(r["dataset_fingerprint"]) % 4 == 0:
            r.update(failed=True, ate=None)
    tables = ranking_tables(variant)
    assert tables[0].main and not tables[0].rows and tables[0].unranked
    page = render_html(variant, tables=tables, runs=[{"date": "2026-11-28", "git_commit": "abc"}])
    section = page.split('<section class="rt" id="table-1"', 1)[1].split("</section>", 1)[0]
    assert "No ranking: every estimator failed on more than 5%" in section
    assert "<table" not in section and section.count('class="unranked"') == len(tables[0].unranked)
