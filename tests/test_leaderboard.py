"""Results-file merge semantics, markdown rendering, the run header and the box plots."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from sdscm_bench.leaderboard import (
    CALIBRATION_COLUMNS,
    RANKING_COLUMNS,
    box_plots,
    fmt_ci,
    fmt_number,
    render_markdown,
    render_table,
    table_intro,
    table_title,
    write_leaderboard,
)
from sdscm_bench.metrics import METRIC_KEYS, failed_metrics
from sdscm_bench.provenance import collect_header
from sdscm_bench.ranking import RankedRow, RankingTable, ranking_tables
from sdscm_bench.results_file import REQUIRED_FIELDS, ResultsFileError, merge_results, read_results

HEADER = {
    "date": "2025-01-02T03:04:05+00:00",
    "git_commit": "abc123",
    "git_dirty": False,
    "python": "CPython 3.11.9",
    "platform": "Linux-6",
    "machine": "x86_64",
    "cpu": "Test CPU",
    "cpu_count": 2,
    "packages": {"numpy": "2.0.0", "econml": None},
    "command": "sdscm-bench run --lm tiny",
}


def record(estimator="A", dataset="d1", lm="lm1", setting="s1", ate=1.0, sate=0.0, failed=False, **kw):
    rec = {
        "estimator": estimator,
        "library": "lib",
        "library_version": "1.0",
        "adapter_fingerprint": "f" * 8,
        "lm": lm,
        "setting": setting,
        "family": "fam",
        "dataset": dataset,
        "dataset_fingerprint": f"fp-{dataset}",
        **dict.fromkeys(METRIC_KEYS),
        "ate": ate,
        "sate": sate,
        "failed": failed,
        "error": None,
    }
    if not failed:
        rec["ate_error"] = ate - sate
        rec["ate_abs_error"] = abs(ate - sate)
    rec.update(kw)
    return rec


def by_key(doc):
    return {(r["estimator"], r["lm"], r["setting"], r["dataset"]): r for r in doc["records"]}


def test_subset_run_updates_only_its_own_rows(tmp_path):
    path = tmp_path / "results.json"
    first = [record(e, d, ate=1.0) for e in ("A", "B") for d in ("d1", "d2")]
    merge_results(path, first, HEADER)
    merge_results(
        path, [record("A", "d1", ate=5.0), record("C", "d1", ate=2.0)], {**HEADER, "git_commit": "def"}
    )
    doc = read_results(path)
    recs = by_key(doc)
    assert len(doc["records"]) == 5
    assert recs[("A", "lm1", "s1", "d1")]["ate"] == 5.0  # replaced
    assert recs[("A", "lm1", "s1", "d2")]["ate"] == 1.0  # kept
    assert recs[("B", "lm1", "s1", "d1")]["ate"] == 1.0  # kept
    assert recs[("C", "lm1", "s1", "d1")]["ate"] == 2.0  # appended
    assert [r["estimator"] for r in doc["records"]] == ["A", "A", "B", "B", "C"]  # order kept
    assert [run["git_commit"] for run in doc["runs"]] == ["abc123", "def"]
    assert [run["n_records"] for run in doc["runs"]] == [4, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temp files left


def test_same_dataset_other_lm_or_setting_is_a_different_row(tmp_path):
    path = tmp_path / "r.json"
    merge_results(path, [record(lm="lm1"), record(lm="lm2"), record(setting="s2")])
    merge_results(path, [record(lm="lm2", ate=9.0)])
    recs = by_key(read_results(path))
    assert recs[("A", "lm1", "s1", "d1")]["ate"] == 1.0
    assert recs[("A", "lm2", "s1", "d1")]["ate"] == 9.0
    assert recs[("A", "lm1", "s2", "d1")]["ate"] == 1.0


def test_malformed_results_file_names_the_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(ResultsFileError, match=re.escape(str(path))):
        merge_results(path, [record()])
    assert path.read_text() == "{not json"  # left alone
    path.write_text('{"records": {}}')
    with pytest.raises(ResultsFileError, match="records"):
        read_results(path)
    with pytest.raises(ResultsFileError, match="not found"):
        read_results(tmp_path / "absent.json")


def test_fmt_number():
    assert fmt_number(None) == "–"
    assert fmt_number(float("nan")) == "–"
    assert fmt_number(0.123456) == "0.123"
    assert fmt_number(0.0012345) == "0.00123"
    assert fmt_number(-12.345) == "-12.3"
    assert fmt_number(12345.6) == "12346"
    assert fmt_number(7) == "7"
    assert fmt_number(np.int64(7)) == "7" and fmt_number(7.0) == "7"
    assert fmt_number(True) == "yes" and fmt_number(np.bool_(False)) == "no"
    assert fmt_number(float("inf")) == "–" and fmt_number(np.float64(-np.inf)) == "–"
    assert fmt_number(1.23e-5) == "1.23e-05"


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (999.4, "999"),
        (999.5, "1000"),  # 3 significant digits would print "1e+03"
        (999.96, "1000"),
        (-999.7, "-1000"),
        (1000.0, "1000"),
        (99.96, "100"),
    ],
)
def test_fmt_number_never_prints_an_exponent_near_1000(x, text):
    assert fmt_number(x) == text


def sample_records():
    recs = []
    for d, sate in (("d1", 0.0), ("d2", 1.0), ("d3", 2.0)):
        # "good": ATE errors 0.1 -> RMSE 0.1; "bad": errors 1 -> RMSE 1; "nocate": errors 0.5.
        recs.append(
            record("good", d, ate=sate + 0.1, sate=sate, cate_r2=0.8, pehe_sd_ite=0.3, fit_seconds=2.0)
        )
        recs.append(
            record("bad", d, ate=sate + 1.0, sate=sate, cate_r2=0.1, pehe_sd_ite=0.9, ate_covered=True)
        )
        recs.append(record("nocate", d, ate=sate + 0.5, sate=sate))
        recs.append(record("good", d, lm="lm2", ate=sate, sate=sate, cate_r2=0.5, pehe_sd_ite=0.5))
    recs.append(record("bad", "d4", failed=True, ate=None, sate=3.0, error="boom"))
    return recs


def test_ranking_numbers_on_the_common_set():
    (lm1, _lm2) = ranking_tables(sample_records())
    assert [r.estimator for r in lm1.rows] == ["good", "nocate", "bad"]
    assert lm1.n_common == 3  # bad's failed d4 is not a dataset the others have
    good, _, bad = lm1.rows
    assert good.ate_rmse == pytest.approx(0.1)
    assert good.ate_r2 == pytest.approx(1 - 0.03 / 2)  # SS_res 3 * 0.01; SATE 0,1,2 -> SS_tot 2
    assert good.cate_r2_mean == pytest.approx(0.8)
    assert good.median_fit_seconds == pytest.approx(2.0)
    assert good.pehe_sd_ite_median == pytest.approx(0.3) and good.pehe_sd_ite_below_1 == 1.0
    assert [r.tier for r in lm1.rows] == [1, 2, 3]  # constant errors: every difference is certain
    assert bad.failures == 0 and bad.ate_coverage == pytest.approx(1.0) and bad.ate_coverage_n == 3


def test_render_markdown():
    md = render_markdown(sample_records(), HEADER)
    for text in (
        "abc123",
        "CPython 3.11.9",
        "numpy 2.0.0",
        "econml (not installed)",
        "`sdscm-bench run --lm tiny`",
        "sorted by tier, then by ATE RMSE",
        "Mean CATE R² stays in the records but is not shown",
    ):
        assert text in md
    assert (
        "## family `fam` · LM `lm1` · setting `s1`" in md
        and "## family `fam` · LM `lm2` · setting `s1`" in md
    )
    lm1 = md.split("LM `lm1`")[1].split("LM `lm2`")[0]
    assert "n = 3 datasets, the same for all 3 estimators below" in lm1 and "3 tiers" in lm1
    table = lm1.split("Interval calibration")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # skip the header row
    cells = [[c.strip() for c in row.split("|")[1:-1]] for row in rows]
    assert [c[1] for c in cells] == ["good", "nocate", "bad"]
    assert [c[0] for c in cells] == ["1", "2", "3"]
    assert cells[0][3] == "0.1 [0.1, 0.1]" and cells[0][4] == "leader" and cells[0][5] == "1 [1, 1]"
    assert cells[1][2] == "lib@1.0" and cells[1][8] == "–"  # nocate: no CATE headline
    assert cells[0][8] == "0.3 [0.3, 0.3]" and cells[0][9] == "100%"
    assert "mean CATE R²" not in table  # not a ranking column
    calibration = lm1.split("Interval calibration")[1]
    assert "| bad" in calibration and "1 [0.292, 1] (n = 3)" in calibration and "calibrated" in calibration
    assert "| estimator" in lm1 and "|:--" in lm1  # pipe tables


def test_render_with_no_records_and_sparse_header():
    md = render_markdown([], {"command": "x"})
    assert "No results yet." in md and "Git commit: –" in md


def test_write_leaderboard(tmp_path):
    recs = sample_records()
    write_leaderboard(tmp_path / "r.json", tmp_path / "out" / "LEADERBOARD.md", recs[:6], HEADER)
    write_leaderboard(tmp_path / "r.json", tmp_path / "out" / "LEADERBOARD.md", recs[6:], HEADER)
    md = (tmp_path / "out" / "LEADERBOARD.md").read_text()
    assert md == render_markdown(read_results(tmp_path / "r.json")["records"], HEADER)
    assert "LM `lm2`" in md and "| good" in md and "| bad" in md  # rows from both runs


def test_collect_header(tmp_path):
    h = collect_header("sdscm-bench run", ["numpy", "surely-not-installed-pkg"])
    assert h["command"] == "sdscm-bench run"
    assert h["packages"] == {"numpy": np.__version__, "surely-not-installed-pkg": None}
    assert h["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", h["git_commit"])
    assert h["cpu_count"] and h["python"] and h["machine"] is not None and h["date"]
    json.dumps(h)
    assert collect_header("x", [], cwd=tmp_path)["git_commit"] is None  # not a git checkout


def test_box_plots(tmp_path):
    recs = sample_records() + [record("nocate", "d1", lm="lm3")]
    paths = box_plots(recs, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    # lm3 has no CATE metrics at all, so it gets no files.
    assert names == [
        "fam_lm1_cate_r2.png",
        "fam_lm1_pehe_sd_ite.png",
        "fam_lm2_cate_r2.png",
        "fam_lm2_pehe_sd_ite.png",
    ]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_box_plots_split_by_setting_and_slug_names(tmp_path):
    recs = [
        record("A", "d1", lm="org/model:v1", setting="s1", cate_r2=0.2),
        record("A", "d2", lm="org/model:v1", setting="s2", cate_r2=0.4),
        record("B", "d1", lm="org/model:v1", setting="s2", cate_r2=0.6),
    ]
    (path,) = box_plots(recs, tmp_path)
    assert path.name == "fam_org_model_v1_cate_r2.png" and path.stat().st_size > 0


def test_failed_record_from_failed_metrics_fits_the_schema(tmp_path):
    rec = {**record(), **failed_metrics(sate=1.0), "failed": True, "error": "NonFiniteEstimate: cate has NaN"}
    assert set(REQUIRED_FIELDS) <= set(rec)
    merge_results(tmp_path / "r.json", [rec])
    assert read_results(tmp_path / "r.json")["records"][0]["failed"] is True


def test_ranking_agreement_between_sources():
    from sdscm_bench.comparisons import ranking_agreement

    errors = {"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4}
    recs = []
    for est, err in errors.items():
        for d in ("d1", "d2"):
            recs.append(record(est, d, lm="same", ate=err))
            recs.append(record(est, d, lm="reversed", ate=0.5 - err))
            recs.append(record(est, d, lm="other-setting", setting="s2", ate=err))
    (row,) = ranking_agreement(recs)  # s2 has one source only: no pair
    assert (row.source_a, row.source_b) == ("fam · reversed", "fam · same")
    assert row.setting == "s1" and row.estimators == 4 and row.tau == pytest.approx(-1.0)
    assert (row.n_a, row.n_b) == (2, 2)


def test_publish_front_page(tmp_path, capsys):
    from sdscm_bench.cli import main

    recs = sample_records()
    merge_results(tmp_path / "results.json", recs, {**HEADER, "command": "pytest --estimator=all"})
    (tmp_path / "intro.md").write_text("# Front page\n\nFindings: good wins.\n")
    assert main(["publish", str(tmp_path / "results.json"), "--intro", str(tmp_path / "intro.md")]) == 0
    page = (tmp_path / "README.md").read_text()
    assert page.startswith("# Front page\n\nFindings: good wins.")
    assert "`pytest --estimator=all`" in page  # the run log names each run's command
    assert "![fam_lm1_cate_r2](fam_lm1_cate_r2.png)" in page and (tmp_path / "fam_lm1_cate_r2.png").is_file()
    assert "## family `fam` · LM `lm1` · setting `s1`" in page and "| good" in page
    assert "wrote" in capsys.readouterr().out
    assert main(["publish", str(tmp_path / "results.json"), "--intro", str(tmp_path / "missing.md")]) == 2
    assert "missing.md: intro file not found" in capsys.readouterr().err


def test_publish_can_leave_out_estimators_still_running(tmp_path, capsys):
    """A partial run of some estimators would shrink every main table's common set to the datasets they have
    reached; --exclude-estimator renders the page without them, and a pattern that matches nothing is an error
    naming the file and the estimators it has."""
    from sdscm_bench.cli import main

    recs = sample_records() + [record("paper_x", "d1", ate=0.0, sate=0.0)]  # one dataset of three so far
    recs += [record("paper_good", d, ate=0.0, sate=0.0) for d in ("d1", "d2")]  # pairs with "good"
    merge_results(tmp_path / "results.json", recs, {**HEADER, "command": "pytest"})
    (tmp_path / "intro.md").write_text("# Front page\n")
    args = ["publish", str(tmp_path / "results.json"), "--intro", str(tmp_path / "intro.md"), "--no-html"]
    assert main([*args, "--no-plots"]) == 0
    assert "paper_x" in (tmp_path / "README.md").read_text()
    assert main([*args, "--no-plots", "--exclude-estimator", "paper_*"]) == 0
    page = (tmp_path / "README.md").read_text()
    tables, pairs = page.split("## Tables", 1)[1], page.split("## The paper's estimation settings", 1)[1]
    assert "paper_" not in tables
    assert "n = 3 datasets, the same for all 3 estimators" in page  # the common set is back to 3
    # the paired comparison keeps the run in progress, with its own n
    (row,) = [line for line in pairs.split("## ", 1)[0].splitlines() if line.startswith("| `paper_good`")]
    assert [c.strip() for c in row.split("|")[1:5]] == ["`paper_good` vs `good`", "fam · lm1", "s1", "2"]
    out = capsys.readouterr().out
    assert "left out 3 records of paper_good, paper_x (kept in the comparison" in out
    assert (
        f"({len(recs)} records, 3 left out of the ranking" in out
    )  # the count is the file's, not the ranked
    assert main([*args, "--exclude-estimator", "nothing_*"]) == 2
    err = capsys.readouterr().err
    assert "results.json: --exclude-estimator 'nothing_*' matches no estimator" in err and "paper_x" in err


def test_dirty_notice_counts_dirty_runs_records_and_missing_provenance():
    from sdscm_bench.leaderboard import dirty_notice

    recs = [
        record(run_id="r1", git_dirty=True),
        record(dataset="d2", run_id="r1", git_dirty=False),
        record(dataset="d3"),
    ]
    lines = "\n".join(
        dirty_notice(
            recs, [{"git_dirty": True}, {"git_dirty": False}], {"git_dirty": True, "git_commit": "abc"}
        )
    )
    assert "rendered from a working tree with uncommitted changes (commit abc" in lines
    assert (
        "1 of 2 runs" in lines
        and "1 of 2 records with provenance" in lines
        and "1 of 3 records were fitted before" in lines
    )
    clean = [record(run_id="r1", git_dirty=False)]
    assert dirty_notice(clean, [{"git_dirty": False}], {"git_dirty": False}) == []


def test_data_diagnostics_section():
    from sdscm_bench.leaderboard import render_data_diagnostics

    recs = [
        record("A", "d1", data_treated_share=0.5, data_overlap_share=1.0, data_ess_share=0.9, data_sd_ite=0.2,
               data_nonzero_ite_share=0.6, data_max_outcome_share=0.5, data_dim_bias=-0.1),
        record("B", "d1", data_treated_share=0.5),  # same dataset: counted once
        record("A", "d2", data_treated_share=0.97, data_overlap_share=0.1, data_ess_share=0.2, data_sd_ite=0.1,
               data_nonzero_ite_share=0.02, data_max_outcome_share=0.99, data_dim_bias=0.3),
        record("A", "d3"),  # predates the diagnostics
        record("A", "d1", lm="lm2"),
    ]  # fmt: skip
    text = "\n".join(render_data_diagnostics(recs))
    row = next(line for line in text.splitlines() if line.startswith("| fam · lm1"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "2 of 3" and cells[2] == "0.735 [0.5, 0.97]" and cells[3] == "0.55 [0.1]"
    assert cells[8] == "0.2"  # median of |DIM - SATE| = median(0.1, 0.3)
    assert (
        cells[9]
        == "1 (max_outcome_share 1, max_treated_share 1, min_nonzero_ite_share 1, min_overlap_share 1)"
    )
    lm2 = next(line for line in text.splitlines() if line.startswith("| fam · lm2"))
    assert [c.strip() for c in lm2.split("|")[1:3]] == ["fam · lm2", "0 of 1"]


# ---------------------------------------------------------------------------------------------------
# Rendering, piece by piece, on hand-made tables


def ranked_row(estimator="A", tier=1, **kw):
    base = dict(
        estimator=estimator, libraries="lib@1", tier=tier, ate_rmse=0.5, ate_rmse_ci=(0.4, 0.6), rank=1,
        rank_ci=(1, 2), p_best=0.75, diff_vs_leader_ci=None, ate_r2=0.9,
    )  # fmt: skip
    base.update(kw)
    return RankedRow(**base)


def hand_table(rows, **kw):
    base = dict(family="fam", lm="lm1", setting="s1", n_common=10, n_scored=10, n_cate=0, rows=rows)
    base.update(kw)
    return RankingTable(**base)


def cells_of(lines):
    rows = [line for line in "\n".join(lines).splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.split("|")[1:-1]] for row in rows]


def test_header_block_marks_dirty_trees_and_missing_values():
    text = "\n".join(
        render_markdown(
            [], {**HEADER, "git_dirty": True, "packages": {"a": "1", "b": None}, "date": ""}
        ).split("\n")[:10]
    )
    assert "- Git commit: abc123 (with uncommitted changes)" in text
    assert "- Packages: a 1, b (not installed)" in text and "- Date: –" in text
    assert "- Machine: Linux-6, x86_64, Test CPU, 2 CPUs" in text
    sparse = render_markdown([], {"packages": None})
    assert "- Packages: –" in sparse and "- Git commit: –\n" in sparse and "- Command: `–`" in sparse


def test_table_title_names_the_variant():
    assert table_title("fam", "lm", "s") == "family `fam` · LM `lm` · setting `s`"
    assert table_title("fam", "lm", "s", "v2") == "family `fam` · variant `v2` · LM `lm` · setting `s`"


def test_fmt_ci_and_missing_values():
    assert fmt_ci(None, (1.0, 2.0)) == "–" and fmt_ci(0.5, None) == "0.5"
    assert fmt_ci(0.5, (0.25, 1234.5)) == "0.5 [0.25, 1234]"


def test_table_intro_states_n_tiers_and_what_was_left_out():
    rows = [ranked_row("A"), ranked_row("B", tier=2)]
    main = table_intro(hand_table(rows))
    assert main == (
        "n = 10 datasets, the same for all 2 estimators below (each has a result on every one). 2 tiers: rows "
        "in one tier are ties (paired 95% bootstrap CI of the ATE RMSE difference to the tier leader includes 0)."
    )
    one = table_intro(
        hand_table([ranked_row("A")], main=False, n_scored=9, n_cate=7, unranked={"Z": 3, "Y": 2})
    )
    assert "the same for all 3 estimators below" in one  # 1 ranked + 2 not ranked
    assert "; a further table: only these estimators have results on this larger set" in one
    assert "; statistics over the 9 datasets where every ranked estimator succeeded" in one
    assert "; CATE columns over the 7 datasets where sd(ITE) > 0" in one
    assert ". 1 tier: rows" in one
    assert one.endswith(
        " Not ranked (failed on more than 5% of these datasets): `Y` (2 failures), `Z` (3 failures)."
    )
    same_cate = table_intro(hand_table(rows, n_scored=9, n_cate=9))
    assert (
        "CATE columns" not in same_cate and "further table" not in same_cate and "Not ranked" not in same_cate
    )


def test_a_table_that_ranks_nobody_says_so_and_prints_no_empty_table():
    table = hand_table([], n_scored=0, unranked={"A": 2, "B": 4})
    lines = render_table(table)
    text = "\n".join(lines)
    assert (
        "No ranking: every estimator failed on more than 5% of these datasets (`A` 2, `B` 4 failures)" in text
    )
    assert "below" not in text and "tier" not in text
    assert cells_of(lines) == []  # no header row without rows


def test_render_table_cells_and_alignment():
    rows = [
        ranked_row("A", pehe_sd_ite_median=0.3, pehe_sd_ite_median_ci=(0.2, 0.4), pehe_sd_ite_below_1=0.8,
                   median_fit_seconds=1.5, failures=1),
        ranked_row("B", tier=2, ate_rmse=0.9, ate_rmse_ci=(0.8, 1.0), rank=2, rank_ci=(2, 2), p_best=0.0,
                   diff_vs_leader_ci=(0.1, 0.5), ate_r2=None),
    ]  # fmt: skip
    lines = render_table(hand_table(rows, main=False))
    assert lines[0] == "## family `fam` · LM `lm1` · setting `s1` · 10 datasets"
    header, rule, a, b = cells_of(lines)
    assert header == [name for name, _ in RANKING_COLUMNS]
    assert rule[0].endswith(":") and rule[1].startswith(":") and rule[2].startswith(":")
    assert all(c.endswith(":") and not c.startswith(":") for c in rule[3:])
    assert a == ["1", "A", "lib@1", "0.5 [0.4, 0.6]", "leader", "1 [1, 2]", "0.75", "0.9", "0.3 [0.2, 0.4]",
                 "80%", "1.5", "1"]  # fmt: skip
    assert b == ["2", "B", "lib@1", "0.9 [0.8, 1]", "[0.1, 0.5]", "2 [2, 2]", "0.00", "–", "–", "–", "–", "0"]
    assert not any("Interval calibration" in line for line in lines)  # no row has intervals
    assert render_table(hand_table(rows))[0] == "## family `fam` · LM `lm1` · setting `s1`"


def test_render_table_calibration_rows():
    rows = [
        ranked_row(
            "A",
            ate_coverage=0.9,
            ate_coverage_ci=(0.8, 0.96),
            ate_coverage_n=20,
            ate_verdict="calibrated",
            unit_width=0.5,
        ),
        # A huge width stays a whole number (tabulate would print "2e+06" in a column it parsed as floats).
        ranked_row(
            "B", unit_coverage=0.5, unit_coverage_ci=(0.45, 0.55), unit_verdict="under", unit_width=2e6
        ),
        ranked_row("C"),  # no interval: no calibration row
    ]
    lines = render_table(hand_table(rows))
    cal = lines[lines.index("Interval calibration (nominal 95%):") :]
    header, rule, a, b = cells_of(cal)
    assert header == ["estimator", *(name for name, _ in CALIBRATION_COLUMNS)]
    assert rule[0].startswith(":") and all(c.endswith(":") and not c.startswith(":") for c in rule[1:])
    assert a == ["A", "0.9 [0.8, 0.96] (n = 20)", "calibrated", "–", "–", "0.5"]
    assert b == ["B", "–", "–", "0.5 [0.45, 0.55]", "under", "2000000"]


def test_data_diagnostics_rows_for_variants_and_records_without_diagnostics():
    from sdscm_bench.diagnostics import DEFAULT_THRESHOLDS
    from sdscm_bench.leaderboard import render_data_diagnostics

    recs = [
        record("A", "d1", variant="v2", data_treated_share=0.5, data_overlap_share=0.9, data_ess_share=0.8,
               data_sd_ite=0.3, data_nonzero_ite_share=0.9, data_max_outcome_share=0.5, data_dim_bias=0.01),
        record("A", "d2", variant="v2", data_treated_share=0.6, data_overlap_share=0.95, data_ess_share=0.7,
               data_sd_ite=0.5, data_nonzero_ite_share=0.8, data_max_outcome_share=0.6, data_dim_bias=-0.03),
        record("A", "d9", lm="lm0"),  # sorts first; no diagnostics at all
        record("A", "d8", lm="lm2", data_treated_share=0.4),  # one diagnostic only: the others are dashes
    ]  # fmt: skip
    lines = render_data_diagnostics(recs)
    header, _, no_diag, partial, v2 = cells_of(lines)  # sorted by (family, variant, lm); "None" < "v2"
    assert len(header) == 10
    # Cells are text, left-aligned alike: the v2 rows alone have all-numeric columns (sd(ITE), |DIM - SATE|,
    # violations), which are not re-parsed as numbers and right-aligned.
    rule = cells_of(render_data_diagnostics(recs[:2]))[1]
    assert all(c.startswith(":") and not c.endswith(":") for c in rule), rule
    assert no_diag == ["fam · lm0", "0 of 1", *["–"] * 8]
    assert partial == ["fam · lm2", "1 of 1", "0.4 [0.4, 0.4]", *["–"] * 6, "0"]
    assert v2 == ["fam [v2] · lm1", "2 of 2", "0.55 [0.5, 0.6]", "0.925 [0.9]", "0.75 [0.7]", "0.4", "0.85 [0.8]",
                  "0.55 [0.6]", "0.02", "0"]  # fmt: skip
    text = "\n".join(lines)
    for key, value in DEFAULT_THRESHOLDS.items():
        assert (f"`{key}` {value}" in text) is (key != "max_value_share"), key


def test_render_markdown_uses_the_tables_it_is_given():
    recs = sample_records()
    lm2_only = [t for t in ranking_tables(recs) if t.lm == "lm2"]
    md = render_markdown(recs, HEADER, lm2_only)
    assert "LM `lm2`" in md and "LM `lm1`" not in md and "## Data diagnostics" in md
    assert "No results yet." not in md
    empty = render_markdown([], HEADER)
    assert "No results yet." in empty and "## Data diagnostics" not in empty


def test_write_leaderboard_returns_the_merged_document(tmp_path):
    recs = sample_records()
    doc = write_leaderboard(tmp_path / "r.json", tmp_path / "L.md", recs[:3], HEADER)
    assert doc["records"] == read_results(tmp_path / "r.json")["records"] and len(doc["records"]) == 3


def test_slug():
    from sdscm_bench.leaderboard import _slug

    assert _slug("org/model:v1") == "org_model_v1" and _slug("a.b-c_d") == "a.b-c_d" and _slug("///") == "lm"


# ---------------------------------------------------------------------------------------------------
# Box plots: what each figure shows


def png_size(path):
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def captured(monkeypatch):
    """Every figure box_plots saves (by file name) and every boxplot call (by axes title)."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    figures, boxes = {}, {}
    save, boxplot = Figure.savefig, Axes.boxplot

    def savefig(self, path, *args, **kw):
        figures[path.name] = self
        return save(self, path, *args, **kw)

    def record_boxplot(self, data, *args, **kw):
        boxes.setdefault(id(self), []).append((data, kw.get("positions")))
        return boxplot(self, data, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)
    monkeypatch.setattr(Axes, "boxplot", record_boxplot)
    return figures, boxes


def test_box_plot_panels_axes_and_data(tmp_path, captured):
    figures, boxes = captured
    recs = [
        # Setting s1: A, B, C with CATE R²; an extra dataset only A has (not in the main table).
        *(record(e, d, setting="s1", cate_r2=v, pehe_sd_ite=abs(v) + 0.1)
          for e, vals in {"A": (0.1, 0.2, 0.3), "B": (0.4, 0.5, 0.6), "C": (-5.0, -4.0, -3.0)}.items()
          for d, v in zip(("d1", "d2", "d3"), vals, strict=True)),
        record("A", "d9", setting="s1", cate_r2=-1e6, pehe_sd_ite=1e6),
        # Setting s2: C gives no CATE R² here; A failed on d2 (its number must not be drawn).
        record("A", "d1", setting="s2", cate_r2=0.7), record("A", "d2", setting="s2", failed=True, cate_r2=1e6),
        record("B", "d1", setting="s2", cate_r2=0.8), record("B", "d2", setting="s2", cate_r2=0.9),
        record("C", "d1", setting="s2"), record("C", "d2", setting="s2"),
    ]  # fmt: skip
    paths = box_plots(recs, tmp_path / "new" / "plots")  # the folder is created
    assert sorted(p.name for p in paths) == ["fam_lm1_cate_r2.png", "fam_lm1_pehe_sd_ite.png"]
    assert all(p.parent == tmp_path / "new" / "plots" and p.is_file() for p in paths)
    fig = figures["fam_lm1_cate_r2.png"]
    s1, s2 = fig.axes
    assert [s1.get_title(), s2.get_title()] == ["setting: s1", "setting: s2"]
    # Side by side on one shared y axis, so the settings compare at a glance.
    assert s1.get_position().x1 < s2.get_position().x0 and s1.get_shared_y_axes().joined(s1, s2)
    assert s1.get_yscale() == "symlog" and s1.yaxis.get_transform().linthresh == 1.0
    assert s1.get_ylabel() == "CATE R² (symlog axis)"
    assert fig._suptitle.get_text() == "CATE R² (symlog axis) per dataset, family fam, LM lm1"
    for ax in (s1, s2):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]
        assert ax.get_xlim() == (-0.5, 2.5)
    assert boxes[id(s1)] == [([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [-5.0, -4.0, -3.0]], [0, 1, 2])]
    assert boxes[id(s2)] == [([[0.7], [0.8, 0.9]], [0, 1])]  # no failed value, C's slot left empty
    pehe = figures["fam_lm1_pehe_sd_ite.png"]
    assert pehe.axes[0].get_yscale() == "log" and len(pehe.axes) == 2
    assert [t.get_text() for t in pehe.axes[0].get_xticklabels()] == ["A", "B", "C"]
    # 100 dpi; each panel max(4, 0.6 * 3 + 1.5) = 4 inches wide and 4.5 high, one panel per setting.
    assert png_size(tmp_path / "new" / "plots" / "fam_lm1_cate_r2.png") == (800, 450)


def test_box_plot_width_grows_with_the_estimators(tmp_path, captured):
    figures, boxes = captured
    recs = [record(f"E{i}", d, cate_r2=0.1 * i) for i in range(6) for d in ("d1", "d2")]
    (path,) = box_plots(recs, tmp_path)
    assert png_size(path) == (510, 450)  # 0.6 * 6 + 1.5 = 5.1 inches
    assert len(figures[path.name].axes) == 1


# ---------------------------------------------------------------------------------------------------
# Front page


def test_ranking_agreement_pairs_sources_per_setting():
    from sdscm_bench.comparisons import ranking_agreement

    def source(lm, rmses, setting="s1", variant=None, datasets=3):
        return [
            record(e, f"{lm}-d{i}", lm=lm, setting=setting, ate=v, variant=variant)
            for e, v in rmses.items()
            for i in range(datasets)
        ]

    recs = [
        *source("a", {"A": 1.0, "B": 2.0, "C": 3.0}),
        *source("b", {"A": 1.0, "B": 3.0, "C": 2.0}),
        *source("c", {"A": 3.0, "B": 2.0, "C": 1.0}, variant="v2"),
        *source("a2", {"A": 1.0, "B": 2.0}),  # 2 estimators in common: no pair, the next pairs go on
        *source("f", {"A": 1.0, "B": 2.0, "C": 3.0}, setting="s2"),  # alone in its setting
    ]
    rows = ranking_agreement(recs)
    got = [(r.source_a, r.source_b, r.estimators, round(r.tau, 6)) for r in rows]
    # Sources in sorted order ("[" sorts before "·"): c, a, a2, b.
    assert got == [
        ("fam [v2] · c", "fam · a", 3, -1.0),
        ("fam [v2] · c", "fam · b", 3, round(-1 / 3, 6)),
        ("fam · a", "fam · b", 3, round(1 / 3, 6)),
    ]
    assert {r.setting for r in rows} == {"s1"}
    # Constant errors per estimator: every resample gives the same tau, so the CI is that point.
    assert all(r.tau_ci == pytest.approx((r.tau, r.tau)) for r in rows)


def test_front_page_run_log_latest_provenance_and_sections(tmp_path):
    from sdscm_bench.leaderboard import render_front_page

    recs = sample_records()
    runs = [
        {"run_id": "r0", "git_dirty": False, "python": "CPython 0.0"},  # no commit known: a dash, not "None"
        {"run_id": "r1", "date": "2025-01-01", "git_commit": "0123456789abcdef", "git_dirty": True,
         "n_records": 4, "command": "first"},
        {"run_id": "r2", "date": "2025-01-02", "git_commit": "fedcba9876543210", "git_dirty": False,
         "n_records": 9, "command": "second", "python": "CPython 9.9"},
    ]  # fmt: skip
    plots = [tmp_path / "fam_lm1_cate_r2.png"]
    page = render_front_page({"records": recs, "runs": runs}, "# Intro\n\n", plots)
    assert page.startswith("# Intro\n\n**Provenance warning.**\n\n") and "- 1 of 3 runs below ran" in page
    log = cells_of(page.split("## Runs merged into these tables", 1)[1].split("\n\n## ", 1)[0].splitlines())
    assert log[2] == ["r0", "–", "–", "no", "–", "`–`"]
    assert log[3] == ["r1", "2025-01-01", "0123456789", "yes", "4", "`first`"]
    assert log[4] == ["r2", "2025-01-02", "fedcba9876", "no", "9", "`second`"]
    assert "![fam_lm1_cate_r2](fam_lm1_cate_r2.png)" in page.split("## Box plots", 1)[1]
    tables_part = page.split("## Tables\n\nProvenance of the latest run:", 1)[1]
    assert "- Python: CPython 9.9" in tables_part and "# sdscm-bench leaderboard" not in page
    assert "- Command: `second`" in tables_part
    # Without runs or plots: an empty run table, no box plots, and a header of dashes.
    bare = render_front_page({"records": recs}, "# Intro", [])
    assert "## Box plots" not in bare and "- Command: `–`" in bare
    assert "runs below ran" not in bare and f"{len(recs)} of {len(recs)} records were fitted before" in bare


def test_front_page_agreement_section():
    from sdscm_bench.leaderboard import render_front_page

    recs = []
    for est, err in {"A": 0.1, "B": 0.2, "C": 0.3}.items():
        for d in ("d1", "d2"):
            recs += [record(est, d, lm="x", ate=err), record(est, d, lm="y", ate=err)]
    page = render_front_page({"records": recs, "runs": []}, "# Intro", [])
    section = page.split("## Do the rankings carry over between data sources?", 1)[1].split("\n## ", 1)[0]
    _, rule, row = cells_of(section.splitlines())
    assert row == ["s1", "fam · x", "fam · y", "3", "2 / 2", "1 [1, 1]", "agree"]
    assert rule[4].startswith(":")  # the formatted tau is text, not re-parsed as a number
    single = [r for r in recs if r["lm"] == "x"]
    assert "carry over" not in render_front_page({"records": single, "runs": []}, "# Intro", [])


def test_dirty_notice_without_publisher_and_unknown_flags():
    from sdscm_bench.leaderboard import dirty_notice

    recs = [record(run_id="r", git_dirty=True), record(dataset="d2", run_id="r", git_dirty=None)]
    lines = dirty_notice(recs, [{"git_dirty": False}, {"git_dirty": True}, {"git_dirty": True}], None)
    assert lines[0] == "**Provenance warning.**" and lines[-1] == ""
    text = "\n".join(lines)
    assert "rendered from a working tree" not in text
    assert "- 2 of 3 runs below ran from a working tree with uncommitted changes." in text
    assert "- 1 of 1 records with provenance were fitted from such a tree." in text  # None: unknown
    assert "were fitted before records carried" not in text
    assert dirty_notice(recs[1:], [], {"git_dirty": False}) == []


def test_box_plot_of_one_metric_when_the_other_is_missing(tmp_path):
    # PEHE / sd(ITE) without CATE R² (e.g. records predating cate_r2): its plot is still drawn. Records
    # without a "failed" field (absent reads back as None) are successes.
    recs = [{k: v for k, v in record("A", d, pehe_sd_ite=0.5).items() if k != "failed"} for d in ("d1", "d2")]
    assert [p.name for p in box_plots(recs, tmp_path)] == ["fam_lm1_pehe_sd_ite.png"]


def test_a_table_mixing_adapter_versions_says_so_per_estimator():
    """A results file can hold one estimator's records from two versions of its adapter (a rerun on only
    part of the datasets); the table must not present them as one version silently."""
    recs = [
        record("A", f"d{i}", ate=0.1 * i, adapter_fingerprint="old" if i < 3 else "new") for i in range(6)
    ]
    recs += [record("B", f"d{i}", ate=0.2, adapter_fingerprint="b1") for i in range(6)]
    (table,) = ranking_tables(recs)
    assert table.mixed_versions == {"A": 2}
    intro = table_intro(table)
    assert "`A` (2 versions)" in intro and "`B`" not in intro.split("mixed here")[1]
    same = [dict(r, adapter_fingerprint="new") if r["estimator"] == "A" else r for r in recs]
    (one,) = ranking_tables(same)
    assert one.mixed_versions == {} and "versions" not in table_intro(one)


def test_each_main_table_shows_its_own_sources_diagnostics_row():
    from sdscm_bench.leaderboard import render_markdown

    diag = dict(data_overlap_share=0.9, data_ess_share=0.8, data_sd_ite=0.3, data_nonzero_ite_share=0.9,
                data_max_outcome_share=0.5, data_dim_bias=0.01)  # fmt: skip
    recs = [
        record(e, f"d{i}", lm="lmA", ate=0.1 * i, data_treated_share=0.25, **diag)
        for e in "AB"
        for i in range(3)
    ]
    recs += [record(e, f"v{i}", lm="lmB", variant="v2", ate=0.2 * i, data_treated_share=0.75, **diag)
             for e in "AB" for i in range(3)]  # fmt: skip
    recs += [
        record(e, f"d{i}", lm="lmA", ate=0.1, data_treated_share=0.25, **diag) for e in "AC" for i in range(5)
    ]
    page = render_markdown(recs, HEADER)
    sections = {s.split("\n", 1)[0]: s for s in page.split("\n## ")[1:]}
    main_a = sections["family `fam` · LM `lmA` · setting `s1`"]
    main_b = sections["family `fam` · variant `v2` · LM `lmB` · setting `s1`"]
    assert "| fam · lmA " in main_a and "0.25 [0.25, 0.25]" in main_a and "lmB" not in main_a
    assert "| fam [v2] · lmB " in main_b and "0.75 [0.75, 0.75]" in main_b
    # The further table over A and C's larger set repeats no diagnostics (the main table of its source has them).
    further = sections["family `fam` · LM `lmA` · setting `s1` · 5 datasets"]
    assert "The data of this source" not in further
