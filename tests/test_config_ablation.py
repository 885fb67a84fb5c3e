"""`benchmarks/config_ablation.py`: one ingredient changed at a time, compared paired with the paper's
configuration; end to end on two released datasets where they are present."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdscm_bench.paper_data import ENV_VAR, default_paper_data_dir

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import config_ablation  # noqa: E402


@pytest.mark.parametrize("pair", config_ablation.PAIRS)
def test_variants_start_at_the_papers_configuration_and_end_at_ours(pair):
    chosen = config_ablation.variants(pair)
    assert chosen[0][1:] == (f"paper_{pair}", None, {})
    assert chosen[-1][1:] == (pair, None, {})
    swapped = {(name, enc) for _, name, enc, params in chosen if enc and not params}
    assert swapped == {(f"paper_{pair}", "onehot"), (pair, "ordinal")}
    for _, name, encoding, params in chosen:
        adapter = config_ablation.build(name, encoding, params)
        assert adapter.covariate_encoding == (encoding or type(adapter).covariate_encoding)


def test_a_swapped_encoding_changes_that_instance_only():
    from sdscm_bench.estimators.registry import get_adapter

    assert config_ablation.build("rf_slearner", "ordinal", {}).covariate_encoding == "ordinal"
    assert get_adapter("rf_slearner").covariate_encoding == "onehot"


def test_rf_variant_changes_one_hyperparameter_of_ours():
    from sdscm_bench.estimators.registry import get_adapter

    (params,) = [
        p
        for label, name, _, p in config_ablation.variants("rf_slearner")
        if label == "ours, min_samples_leaf=1"
    ]
    ours = get_adapter("rf_slearner").params["model"]
    changed = {k for k in ours if params["model"][k] != ours[k]}
    assert changed == {"min_samples_leaf"} and params["model"]["min_samples_leaf"] == 1


@pytest.mark.parametrize("pair", [p for p in config_ablation.PAIRS if p not in ("rf_slearner", "bart")])
def test_first_stage_variant_swaps_our_outcome_model_for_the_default_forest(pair):
    from sklearn.ensemble import RandomForestRegressor

    from sdscm_bench.estimators._common import make_regressor

    (params,) = [p for label, _, _, p in config_ablation.variants(pair) if "default random forest" in label]
    (key,) = params
    assert key in config_ablation.build(pair, None, {}).params  # a hyperparameter ours really has
    defaults = RandomForestRegressor().get_params()
    built = make_regressor(params[key], 0).get_params()
    assert {k: built[k] for k in ("n_estimators", "min_samples_leaf", "max_features")} == {
        k: defaults[k] for k in ("n_estimators", "min_samples_leaf", "max_features")
    }


def test_bart_variant_drops_only_the_propensity_score():
    """The paper's BART without bartCause's propensity-score covariate: one hyperparameter of
    ``paper_bart`` changed, the rest bartCause's defaults, and it still fits (small sampler here)."""
    from sdscm_bench.estimators._paper import BARTC_DEFAULTS

    (params,) = [
        p for label, _, _, p in config_ablation.variants("bart") if label == "paper's, no propensity score"
    ]
    adapter = config_ablation.build("paper_bart", None, params)
    assert {k for k, v in adapter.params.items() if BARTC_DEFAULTS[k] != v} == {"method_trt"}
    assert (
        adapter.params["method_trt"] == "none"
        and config_ablation.build("paper_bart", None, {}).params == BARTC_DEFAULTS
    )
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(60, 2)).astype(float)
    t = (rng.random(60) < 0.5).astype(int)
    y = X[:, 0] + 0.5 * t + rng.normal(0, 0.1, 60)
    small = {**params, "n_chains": 1, "n_burn": 5, "n_samples": 5, "n_trees": 5}
    est = config_ablation.build("paper_bart", None, small).run(X, t, y, 0)
    assert np.isfinite(est.ate) and est.cate.shape == (60,)


def test_summary_is_paired_on_datasets_where_every_variant_succeeded():
    rng = np.random.default_rng(0)
    chosen = [("ref", "a", None, {}), ("same", "b", None, {}), ("worse", "c", None, {})]
    base = rng.normal(0.0, 0.01, 60)
    errors = np.stack([base, base + rng.normal(0, 1e-5, 60), 3.0 * base])
    errors[2, 5] = np.nan  # one failed fit: that dataset leaves every row
    sate = rng.normal(0.05, 0.02, 60)
    rows = config_ablation.summarise(chosen, errors, sate, np.ones_like(errors))
    assert [r[2] for r in rows] == [59, 59, 59]
    assert [r[5] for r in rows] == ["–", "tie", "worse"]
    assert rows[0][4] == "reference" and [r[-1] for r in rows] == [0, 0, 1]


def test_runs_end_to_end_on_two_released_datasets():
    root = default_paper_data_dir()
    if root is None or not (root / "gpt2.parquet").is_file():
        pytest.skip(f"released paper data not found; set {ENV_VAR} to the folder holding gpt2.parquet")
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "config_ablation.py"), "rf_slearner", "--datasets", "2", "--quiet"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(config_ablation.variants("rf_slearner"))
    assert all(row.split("|")[3].strip() == "2" for row in rows)
    assert "datasets 0..1 (2)" in out
    # with all covariates the released outcome is an exact function of (covariates, t)
    assert "largest within-cell sd(y): 0\n" in out


def test_outcome_cells_finds_noise_within_a_cell():
    class Toy:
        t = np.array([0, 0, 1, 1])
        y = np.array([1.0, 1.0, 2.0, 3.0])

        def covariates(self, setting, encoding):
            return np.zeros((4, 1))

    cells, sd = config_ablation.outcome_cells(Toy(), "s")
    assert cells == 2 and sd == pytest.approx(np.std([2.0, 3.0], ddof=1))


@pytest.mark.parametrize("pair", ["linear_drlearner", "forest_drlearner"])
def test_propensity_floor_variants_change_only_min_propensity(pair):
    from sdscm_bench.estimators.registry import get_adapter

    by_label = {label: (name, params) for label, name, _, params in config_ablation.variants(pair)}
    name, params = by_label["paper's, min_propensity=0.01"]
    paper = config_ablation.build(name, None, params)
    assert paper.build(3).min_propensity == 0.01
    assert get_adapter(f"paper_{pair}").build(3).min_propensity == 1e-6  # the class is untouched
    name, params = by_label["ours, min_propensity=1e-6"]
    ours = get_adapter(pair).params["model_propensity"]
    changed = config_ablation.build(name, None, params).params["model_propensity"]
    assert {k for k in ours if changed[k] != ours[k]} == {"clip"} and changed["clip"][0] == 1e-6


def test_chosen_ids_are_described_as_given():
    assert config_ablation._describe([0, 1, 2]) == "0..2"
    assert config_ablation._describe([136, 123]) == "136, 123"


def test_propensity_extremes_finds_the_units_a_default_floor_weights_a_million_times():
    root = default_paper_data_dir()
    if root is None or not (root / "gpt2.parquet").is_file():
        pytest.skip(f"released paper data not found; set {ENV_VAR} to the folder holding gpt2.parquet")
    from sdscm_bench.paper_data import load_paper_dataset

    ds = load_paper_dataset(root, "gpt2", 136)  # a blow-up of the leaderboard's pair table
    model, at_zero, below = config_ablation.propensity_extremes(
        ds, "hidden confounding", "paper_linear_drlearner"
    )
    assert model == "RandomForestClassifier"  # econml's 'auto' picked fully grown trees
    assert 1 <= at_zero <= below < len(ds.t) // 10


class _ToyDataset:
    """The little of a released dataset that ``fit_all`` reads."""

    name = "toy/0"
    meta = {"fingerprint": "toy-fingerprint"}

    def __init__(self, n: int = 200) -> None:
        rng = np.random.default_rng(0)
        self._X = rng.integers(0, 3, size=(n, 2)).astype(float)
        self.t = (rng.random(n) < 0.5).astype(int)
        self.y = self._X[:, 0] + 0.5 * self.t + rng.normal(0, 0.1, n)
        self.sate = 0.5

    def covariates(self, setting, encoding):
        return self._X


def test_stored_fits_replace_only_unchanged_adapters():
    from sdscm_bench.runner import dataset_seed

    ds = _ToyDataset()
    seed = dataset_seed(ds.meta["fingerprint"])
    chosen = [
        ("paper's", "paper_linear_drlearner", None, {}),
        ("paper's, floor", "paper_linear_drlearner", None, {"min_propensity": 0.01}),
        ("ours, ordinal", "linear_drlearner", "ordinal", {}),
    ]
    # a stored fit under each variant's fingerprint: any variant the fingerprint fully describes (an
    # encoding swap included) takes it; the propensity floor is set outside the hyperparameters, so its
    # fingerprint is the plain adapter's and it must be refitted
    stored = {
        (name, config_ablation.build(name, enc, p).fingerprint(), "toy-fingerprint", "s", seed): (123.0, 9.0)
        for _, name, enc, p in chosen
    }
    errors, _, seconds, reused = config_ablation.fit_all([ds], "s", chosen, lambda _m: None, stored)
    assert reused == 2 and errors[[0, 2], 0].tolist() == [123.0, 123.0] and seconds[0, 0] == 9.0
    assert abs(errors[1, 0]) < 1.0
    other_seed = {(k[0], k[1], k[2], k[3], k[4] + 1): v for k, v in stored.items()}
    assert config_ablation.fit_all([ds], "s", chosen[:1], lambda _m: None, other_seed)[3] == 0


def test_a_stored_fit_is_the_fit_the_ablation_would_make():
    """The leaderboard's records of the unchanged rf pair, refitted here: the same ATE errors."""
    root = default_paper_data_dir()
    if root is None or not (root / "gpt2.parquet").is_file():
        pytest.skip(f"released paper data not found; set {ENV_VAR} to the folder holding gpt2.parquet")
    from sdscm_bench.paper_data import iter_paper_datasets

    results = Path(__file__).resolve().parent.parent / "leaderboard" / "results.parquet"
    stored = config_ablation.stored_fits(results)
    chosen = [v for v in config_ablation.variants("rf_slearner") if v[2] is None and not v[3]]
    datasets = list(iter_paper_datasets(root, "gpt2", [0, 1]))
    quiet = lambda _m: None  # noqa: E731
    kept, _, _, reused = config_ablation.fit_all(datasets, "all covariates", chosen, quiet, stored)
    if reused == 0:
        pytest.skip("no stored record has these adapters' fingerprints (other library versions here)")
    refit, _, _, none = config_ablation.fit_all(datasets, "all covariates", chosen, quiet, None)
    assert none == 0 and reused == kept.size
    np.testing.assert_allclose(kept, refit, rtol=0, atol=1e-12)
