"""Independent check: the deterministic adapters reproduce the paper's ATE R² and RMSE to 4 decimals.

The reference side below reads the released parquet files with pandas and computes, with numpy
only, what the paper's code computed for its ``NaiveLinReg`` (difference in means) and ``LinReg``
(OLS of y on the candidate indices of the observed covariates and t; the ATE is t's coefficient):
per dataset the ATE estimate and the SATE, the mean of
``logP(X13=0)|do(X12=1) - logP(X13=0)|do(X12=0)``; over datasets ``R² = 1 - SS_res / SS_tot`` with
the SATEs as the truth, and the RMSE. No sdscm-bench code is used there.

The checked side is sdscm-bench's whole path: the released-data loader, the ``diff_in_means`` and
``ols_slearner`` adapters, the per-dataset metrics and the aggregate, both run live here and as
published in ``leaderboard/results.parquet``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sdscm_bench.paths import repo_root

pytestmark = pytest.mark.paper_data

COVARIATES = {
    "all covariates": [f"X{i}" for i in range(12)],
    "hidden confounding": [f"X{i}" for i in range(4, 12)],
}
PAPER_ESTIMATORS = {"diff_in_means": "NaiveLinReg", "ols_slearner": "LinReg"}
LIVE_DATASETS = 100
TOLERANCE = 5e-5  # "agree to 4 decimals"


def paper_dir() -> Path:
    import os

    env = os.environ.get("SDSCM_PAPER_DATA", "").strip()
    root = Path(env) if env else repo_root().parent / "shared" / "sdscm-paper-data"
    if not all((root / f"{lm}.parquet").is_file() for lm in ("gpt2", "llama-3-8b")):
        pytest.skip(f"released paper data not found in {root}; set SDSCM_PAPER_DATA to its folder")
    return root


def reference_ates(root: Path, lm: str) -> pd.DataFrame:
    """Per dataset and setting: the SATE and the two estimators' ATEs, computed from the raw columns."""
    y1, y0 = "logP(X13=0)|do(X12=1)", "logP(X13=0)|do(X12=0)"
    columns = ["dataset_id", "X12", "logP(X13=0)", y1, y0, *COVARIATES["all covariates"]]
    table = pd.read_parquet(root / f"{lm}.parquet", columns=columns)
    rows = []
    for dataset_id, df in table.groupby("dataset_id", sort=True):
        t = df["X12"].to_numpy(dtype=float)
        y = df["logP(X13=0)"].to_numpy(dtype=float)
        sate = float(np.mean(df[y1].to_numpy(dtype=float) - df[y0].to_numpy(dtype=float)))
        naive = float(y[t == 1].mean() - y[t == 0].mean())
        for setting, cols in COVARIATES.items():
            design = np.column_stack([np.ones(len(t)), df[cols].to_numpy(dtype=float), t])
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            rows.append(
                {
                    "dataset": f"paper-{lm}/{dataset_id}",
                    "setting": setting,
                    "sate": sate,
                    "diff_in_means": naive,
                    "ols_slearner": float(coef[-1]),
                }
            )
    return pd.DataFrame(rows)


def r2_rmse(truth: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    residual = float(np.sum((truth - estimate) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    return 1.0 - residual / total, float(np.sqrt(np.mean((truth - estimate) ** 2)))


@pytest.fixture(scope="module", params=["gpt2", "llama-3-8b"])
def reference(request: pytest.FixtureRequest) -> tuple[str, pd.DataFrame]:
    return request.param, reference_ates(paper_dir(), request.param)


def test_reference_is_sane(reference: tuple[str, pd.DataFrame]) -> None:
    lm, ref = reference
    assert ref["dataset"].nunique() == 1000 and len(ref) == 2000
    # Difference in means ignores the covariates: identical in both settings.
    both = ref.pivot(index="dataset", columns="setting", values="diff_in_means")
    assert np.array_equal(both["all covariates"], both["hidden confounding"])


@pytest.mark.parametrize("estimator", sorted(PAPER_ESTIMATORS))
def test_live_pipeline_matches_the_reference(reference: tuple[str, pd.DataFrame], estimator: str) -> None:
    from sdscm_bench.estimators.registry import get_adapter
    from sdscm_bench.metrics import aggregate, dataset_metrics
    from sdscm_bench.paper_data import load_paper_dataset

    lm, ref = reference
    adapter = get_adapter(estimator)
    for setting in COVARIATES:
        records = []
        for dataset_id in range(LIVE_DATASETS):
            ds = load_paper_dataset(paper_dir(), lm, dataset_id)
            est = adapter.run(ds.covariates(setting, encoding=adapter.covariate_encoding), ds.t, ds.y, 0)
            metrics = dataset_metrics(
                ate=est.ate,
                cate=est.cate,
                ate_interval=est.ate_interval,
                cate_interval=est.cate_interval,
                ite=ds.ite,
                y=ds.y,
                fit_seconds=None,
            )
            records.append(metrics | {"ate": est.ate, "sate": ds.sate, "failed": False})
        agg = aggregate(records, n_boot=0)
        sub = ref[
            (ref["setting"] == setting)
            & ref["dataset"].isin([f"paper-{lm}/{i}" for i in range(LIVE_DATASETS)])
        ]
        r2, rmse = r2_rmse(sub["sate"].to_numpy(), sub[estimator].to_numpy())
        assert abs(agg["ate_r2"] - r2) < TOLERANCE, (lm, setting, agg["ate_r2"], r2)
        assert abs(agg["ate_rmse"] - rmse) < TOLERANCE, (lm, setting, agg["ate_rmse"], rmse)
        ours = np.array([r["ate"] for r in records])
        assert np.allclose(ours, sub[estimator].to_numpy(), rtol=0, atol=1e-9)


def test_published_results_match_the_reference(reference: tuple[str, pd.DataFrame]) -> None:
    """Every published diff_in_means / ols_slearner row on this LM: same ATEs, R² and RMSE to 4 decimals."""
    from sdscm_bench.results_file import read_results

    lm, ref = reference
    path = repo_root() / "leaderboard" / "results.parquet"
    records = [
        r
        for r in read_results(path)["records"]
        if r["lm"] == f"paper-{lm}" and r["estimator"] in PAPER_ESTIMATORS and not r["failed"]
    ]
    if not records:
        pytest.skip(f"{path} holds no diff_in_means / ols_slearner results for paper-{lm}")
    indexed = ref.set_index(["dataset", "setting"])
    for estimator in PAPER_ESTIMATORS:
        for setting in COVARIATES:
            recs = [r for r in records if r["estimator"] == estimator and r["setting"] == setting]
            if not recs:
                continue
            keys = [(r["dataset"], setting) for r in recs]
            expected = indexed.loc[keys]
            published = np.array([r["ate"] for r in recs])
            assert np.allclose(published, expected[estimator].to_numpy(), rtol=0, atol=1e-9)
            assert np.allclose([r["sate"] for r in recs], expected["sate"].to_numpy(), rtol=0, atol=1e-12)
            r2, rmse = r2_rmse(expected["sate"].to_numpy(), expected[estimator].to_numpy())
            ours_r2, ours_rmse = r2_rmse(np.array([r["sate"] for r in recs]), published)
            assert abs(ours_r2 - r2) < TOLERANCE and abs(ours_rmse - rmse) < TOLERANCE


def main() -> None:
    """Print the paper-style ATE table: the reference next to the published rows (``python tests/...``)."""
    from tabulate import tabulate

    from sdscm_bench.metrics import aggregate
    from sdscm_bench.results_file import read_results

    records = read_results(repo_root() / "leaderboard" / "results.parquet")["records"]
    rows = []
    for lm in ("gpt2", "llama-3-8b"):
        ref = reference_ates(paper_dir(), lm)
        for setting in COVARIATES:
            sub = ref[ref["setting"] == setting]
            for estimator, paper_name in PAPER_ESTIMATORS.items():
                r2, rmse = r2_rmse(sub["sate"].to_numpy(), sub[estimator].to_numpy())
                ours = [
                    r
                    for r in records
                    if r["lm"] == f"paper-{lm}" and r["setting"] == setting and r["estimator"] == estimator
                ]
                agg = aggregate(ours, n_boot=0) if ours else {"ate_r2": None, "ate_rmse": None}
                # The reference again on exactly the published datasets (a page may hold fewer than all).
                same = sub[sub["dataset"].isin({r["dataset"] for r in ours})]
                r2_same, rmse_same = (
                    r2_rmse(same["sate"].to_numpy(), same[estimator].to_numpy()) if ours else (0, 0)
                )
                fmt = [f"{r2_same:.4f}", f"{rmse_same:.4f}"] if ours else ["–", "–"]
                rows.append(
                    [lm, setting, f"{estimator} ({paper_name})", len(sub), f"{r2:.4f}", f"{rmse:.4f}", len(ours),
                     *fmt, *(f"{agg[k]:.4f}" if agg[k] is not None else "–" for k in ("ate_r2", "ate_rmse"))]
                )  # fmt: skip
    headers = ["LM", "setting", "estimator", "datasets", "reference R²", "reference RMSE", "published rows",
               "reference R² on them", "reference RMSE on them", "published R²", "published RMSE"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
