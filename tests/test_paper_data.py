"""The released-data loader reads the paper's datasets faithfully and fails clearly on bad input.

Most tests need ../shared/sdscm-paper-data (or $SDSCM_PAPER_DATA) and skip without it; the
error-path tests that need no data always run.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdscm_bench.dataset import FORMAT_VERSION, SDSCMDataset
from sdscm_bench.paper_data import (
    ENV_VAR,
    PAPER_LMS,
    PaperDataError,
    default_paper_data_dir,
    iter_paper_datasets,
    load_paper_csv,
    load_paper_dataset,
    oncology_family,
    paper_dataset_ids,
    read_paper_table,
    required_columns,
)

LOW, HIGH = "|do(PD-L1 level=low)", "|do(PD-L1 level=high)"


@pytest.fixture(scope="module")
def paper_data_dir() -> Path:
    root = default_paper_data_dir()
    if root is None or not all((root / f"{lm}.parquet").is_file() for lm in PAPER_LMS):
        pytest.skip(
            f"released paper data not found (looked in {root or '<repo>/../shared/sdscm-paper-data'}); "
            f"set {ENV_VAR} to the folder holding gpt2.parquet and llama-3-8b.parquet"
        )
    return root


@pytest.fixture(scope="module")
def gpt2_17(paper_data_dir: Path) -> SDSCMDataset:
    return load_paper_dataset(paper_data_dir, "gpt2", 17)


# --- no data needed -------------------------------------------------------------------------------


def test_default_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert default_paper_data_dir() == tmp_path
    monkeypatch.setenv(ENV_VAR, "")
    fallback = default_paper_data_dir()
    assert fallback is None or fallback.name == "sdscm-paper-data"


def test_unknown_lm_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(PaperDataError, match=r"unknown paper LM 'gpt-5'.*'gpt2', 'llama-3-8b'"):
        load_paper_dataset(tmp_path, "gpt-5", 0)
    with pytest.raises(PaperDataError, match="unknown paper LM"):
        load_paper_csv(tmp_path / "x.csv", "llama3")


def test_missing_parquet_names_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(PaperDataError) as info:
        load_paper_dataset(tmp_path, "gpt2", 0)
    assert str(tmp_path / "gpt2.parquet") in str(info.value) and ENV_VAR in str(info.value)


def test_oncology_family_has_paper_shape() -> None:
    family = oncology_family()
    assert len(family.variables) == 14
    assert (family.variables[12].name, family.variables[13].name) == ("PD-L1 level", "therapy")
    assert family.descendants("PD-L1 level") == {"therapy"}


# --- released data --------------------------------------------------------------------------------


@pytest.mark.paper_data
def test_dataset_loads(gpt2_17: SDSCMDataset) -> None:
    ds, family = gpt2_17, oncology_family()
    table = ds.table
    assert len(ds) == 1000 and list(table.index) == list(range(1000))
    for v in family.variables:
        assert table[v.name].dtype == np.int64
        assert table[v.name].between(0, len(v.candidates) - 1).all()
    assert set(np.unique(table["t"])) <= {0, 1} and set(np.unique(ds.t)) == {0, 1}
    assert (table["t"] == table["PD-L1 level"]).all()  # low is index 0, high is index 1
    np.testing.assert_array_equal(table["ite"], table["y1"] - table["y0"])
    assert ds.sate == pytest.approx(float(np.mean(table["y1"] - table["y0"])))
    np.testing.assert_array_equal(table["y"], table["logp:therapy=0"])
    np.testing.assert_array_equal(table["y0"], table[f"logp:therapy=0{LOW}"])
    np.testing.assert_array_equal(table["y1"], table[f"logp:therapy=0{HIGH}"])
    l0, l1 = table["logp:PD-L1 level=0"], table["logp:PD-L1 level=1"]
    np.testing.assert_allclose(table["propensity"], np.exp(l1) / (np.exp(l0) + np.exp(l1)), rtol=1e-12)
    assert ((table["propensity"] > 0) & (table["propensity"] < 1)).all()
    for world in (LOW, HIGH):
        assert f"therapy{world}" in table and f"age{world}" not in table
    assert ds.covariates("all covariates").shape == (
        1000,
        sum(len(v.candidates) - 1 for v in family.variables[:12]),
    )
    assert ds.covariates("hidden confounding", encoding="ordinal").shape == (1000, 8)
    meta = ds.meta
    assert (meta["name"], meta["lm"], meta["dataset_id"]) == ("paper-gpt2/17", "paper-gpt2", 17)
    assert meta["source"].endswith("gpt2.parquet") and meta["scoring"] == "paper-mean-logits"
    assert meta["format_version"] == FORMAT_VERSION and len(meta["fingerprint"]) == 16
    assert ds.name == "paper-gpt2/17" and ds.meta_json()


@pytest.mark.paper_data
def test_fingerprint_is_content_based(paper_data_dir: Path, gpt2_17: SDSCMDataset) -> None:
    again = load_paper_dataset(paper_data_dir, "gpt2", 17)
    assert again.meta["fingerprint"] == gpt2_17.meta["fingerprint"]
    assert load_paper_dataset(paper_data_dir, "gpt2", 18).meta["fingerprint"] != gpt2_17.meta["fingerprint"]


@pytest.mark.paper_data
@pytest.mark.parametrize(("lm", "dataset_id"), [("gpt2", 17), ("llama-3-8b", 0), ("llama-3-8b", 999)])
def test_released_worlds_are_consistent(paper_data_dir: Path, lm: str, dataset_id: int) -> None:
    """Pre-treatment values agree across worlds; a unit's own do-world scores equal its factual ones."""
    raw = read_paper_table(paper_data_dir, lm, dataset_id)
    assert list(raw.columns) == required_columns() and len(raw) == 1000
    for t in (0, 1):
        for i in range(12):
            assert (raw[f"X{i}|do(X12={t})"] == raw[f"X{i}"]).all(), (t, i)
        assert (raw[f"X12|do(X12={t})"] == t).all()
        own = raw["X12"] == t
        for k in range(4):
            np.testing.assert_array_equal(
                raw.loc[own, f"logP(X13={k})|do(X12={t})"], raw.loc[own, f"logP(X13={k})"]
            )
    ds = load_paper_dataset(paper_data_dir, lm, dataset_id)
    y_own = np.where(ds.table["t"] == 1, ds.table["y1"], ds.table["y0"])
    np.testing.assert_array_equal(ds.table["y"], y_own)


@pytest.mark.paper_data
def test_dataset_ids_and_iteration(paper_data_dir: Path) -> None:
    for lm in PAPER_LMS:
        assert paper_dataset_ids(paper_data_dir, lm) == list(range(1000))
    picked = list(iter_paper_datasets(paper_data_dir, "gpt2", [5, 3]))
    assert [d.meta["dataset_id"] for d in picked] == [5, 3]
    streamed = list(itertools.islice(iter_paper_datasets(paper_data_dir, "llama-3-8b"), 27))
    assert [d.meta["dataset_id"] for d in streamed] == list(range(27))  # crosses a row-group boundary
    direct = load_paper_dataset(paper_data_dir, "llama-3-8b", 26)
    pd.testing.assert_frame_equal(streamed[26].table, direct.table)
    assert streamed[26].meta == direct.meta


@pytest.mark.paper_data
def test_missing_dataset_id(paper_data_dir: Path) -> None:
    with pytest.raises(
        PaperDataError, match=r"gpt2\.parquet: no dataset with dataset_id 1000; ids present: 0\.\.999"
    ):
        load_paper_dataset(paper_data_dir, "gpt2", 1000)


@pytest.mark.paper_data
def test_csv_round_trip(paper_data_dir: Path, gpt2_17: SDSCMDataset, tmp_path: Path) -> None:
    path = tmp_path / "gpt2_bcancer_17.csv"
    read_paper_table(paper_data_dir, "gpt2", 17).to_csv(path)  # the original layout: unnamed index first
    assert path.read_text().startswith(",X0,X1,")
    ds = load_paper_csv(path, "gpt2")
    pd.testing.assert_frame_equal(ds.table, gpt2_17.table, check_exact=True)
    assert ds.meta["fingerprint"] == gpt2_17.meta["fingerprint"]
    assert (ds.meta["name"], ds.meta["dataset_id"], ds.meta["source"]) == ("paper-gpt2/17", 17, str(path))

    other = tmp_path / "renamed.csv"
    other.write_text(path.read_text())
    assert load_paper_csv(other, "gpt2").meta["name"] == "paper-gpt2/renamed"


@pytest.mark.paper_data
def test_malformed_csv_names_file_and_column(paper_data_dir: Path, tmp_path: Path) -> None:
    raw = read_paper_table(paper_data_dir, "gpt2", 3)
    path = tmp_path / "gpt2_bcancer_3.csv"
    raw.drop(columns=["logP(X13=2)|do(X12=1)"]).to_csv(path)
    with pytest.raises(PaperDataError) as info:
        load_paper_csv(path, "gpt2")
    msg = str(info.value)
    assert msg.startswith(f"{path}: missing column 'logP(X13=2)|do(X12=1)'") and "re-export" in msg

    bad = raw.copy()
    bad.loc[4, "X5|do(X12=0)"] = (bad.loc[4, "X5"] + 1) % 3
    bad.to_csv(path)
    with pytest.raises(PaperDataError, match=r"'X5\|do\(X12=0\)' should equal the factual X5.*1 rows"):
        load_paper_csv(path, "gpt2")

    bad = raw.copy()
    bad.loc[0, "X13"] = 7
    bad.to_csv(path)
    with pytest.raises(PaperDataError, match=r"'X13' \('therapy'\) has values outside 0\.\.3"):
        load_paper_csv(path, "gpt2")

    path.write_text("")
    with pytest.raises(PaperDataError, match="cannot be read as CSV"):
        load_paper_csv(path, "gpt2")
