"""Quality thresholds at generation: warnings that name the dataset, and --require-quality redraws."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from sdscm_bench.families import DataQualityWarning, FamilyRequest, load_or_generate

TOY = {
    "name": "qtoy",
    "separator": " ",
    "variables": [
        {"name": "grade", "exogenous": True, "candidates": ["low", "high"], "phrasings": ["Levels are {value}."]},
        {"name": "therapy", "parents": ["grade"], "candidates": ["started", "stopped"],
         "phrasings": ["Treatment is {value}."]},
        {"name": "result", "parents": ["grade", "therapy"], "candidates": ["positive", "negative"],
         "phrasings": ["The result is {value}."]},
    ],
    "treatment": {"variable": "therapy", "control": "stopped", "treated": "started"},
    "outcome": {"variable": "result", "definition": "category", "candidate": "positive"},
    "settings": {"all covariates": ["grade"]},
}  # fmt: skip


def write_spec(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "qtoy.yaml"
    path.write_text(yaml.safe_dump({**TOY, **extra}, sort_keys=False))
    return path


def request(tmp_path: Path, spec: Path, **kw) -> FamilyRequest:
    return FamilyRequest(
        spec=spec, lm="tiny-random", n_datasets=2, n_units=40, cache_dir=tmp_path / "cache", **kw
    )


def test_diagnostics_are_stored_at_generation_and_violations_warn_by_name(tmp_path, torch_single_thread):
    spec = write_spec(tmp_path, quality={"max_outcome_share": 0.0})  # every dataset violates this one
    with pytest.warns(DataQualityWarning) as caught:
        datasets = load_or_generate(request(tmp_path, spec), progress=False)
    messages = [str(w.message) for w in caught]
    for ds in datasets:
        diag = ds.meta["diagnostics"]
        assert 0.0 <= diag["treated_share"] <= 1.0 and diag["n_units"] <= 40
        assert any(m.startswith(f"{ds.name}: share of the most common outcome value") for m in messages), (
            messages
        )
    # The diagnostics come back from the cache with the dataset.
    again = load_or_generate(request(tmp_path, spec), progress=False)
    assert again[0].meta["diagnostics"] == datasets[0].meta["diagnostics"]


def test_no_warning_when_every_threshold_is_off(tmp_path, torch_single_thread):
    keys = ["min_treated_share", "max_treated_share", "min_overlap_share", "min_ess_share",
            "min_nonzero_ite_share", "max_outcome_share", "max_value_share"]  # fmt: skip
    spec = write_spec(tmp_path, quality=dict.fromkeys(keys))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        load_or_generate(request(tmp_path, spec), progress=False)


def test_require_quality_redraws_seeds_reproducibly_and_records_them(tmp_path, torch_single_thread):
    spec = write_spec(tmp_path, quality={"max_outcome_share": 0.0})  # impossible: every redraw fails
    req = request(tmp_path, spec, require_quality=True, max_redraws=2)
    with pytest.warns(DataQualityWarning, match=r"\(after 2 redraws\)"):
        datasets = load_or_generate(req, progress=False)
    for slot, ds in enumerate(datasets):
        redraws = ds.meta["quality_redraws"]
        assert [r["seed"] for r in redraws] == [slot, req.redraw_seed(slot, 1)]
        assert ds.meta["seed"] == req.redraw_seed(slot, 2)  # the last draw is kept
        assert all(any("max_outcome_share" in p for p in r["problems"]) for r in redraws)
    assert req.redraw_seed(0, 1) == 2 and req.redraw_seed(1, 1) == 3 and req.redraw_seed(0, 2) == 4
    with pytest.warns(DataQualityWarning):
        again = load_or_generate(req, progress=False)
    assert [d.meta["quality_redraws"] for d in again] == [d.meta["quality_redraws"] for d in datasets]


def test_require_quality_keeps_a_passing_dataset(tmp_path, torch_single_thread):
    spec = write_spec(tmp_path, quality={"max_outcome_share": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # other default thresholds may still complain
        datasets = load_or_generate(request(tmp_path, spec, require_quality=False), progress=False)
    assert all("quality_redraws" not in d.meta for d in datasets)
