"""Why a ``paper_*`` configuration and ours differ: swap one ingredient at a time, on the same datasets.

    python benchmarks/config_ablation.py rf_slearner --lm paper-gpt2 --setting "all covariates" \\
        --datasets 100

The leaderboard compares each ``paper_<name>`` adapter (the SD-SCM paper's estimation settings:
library defaults, ordinal covariates) with ``<name>`` (this project's configuration, one-hot
covariates). They differ in more than one way. Here each variant changes one of them: the covariate
encoding of either adapter, or one hyperparameter of ours; every variant is fitted on the same
released datasets with the same per-dataset seed as the benchmark, and is compared with the paper's
configuration by the paired bootstrap of the leaderboard (ATE RMSE against the SATE, 95% CI of the
difference; a tie when it includes 0). n is printed with every row.

The released datasets are read from ``--paper-data`` (default: ``$SDSCM_PAPER_DATA`` or
``../shared/sdscm-paper-data``), never copied into the repository.

With ``--results FILE`` (a results file of the benchmark, e.g. ``leaderboard/results.parquet``) a
variant takes its ATE error from a stored record of the same adapter fingerprint (which covers the
hyperparameters and the covariate encoding), dataset fingerprint, setting and seed instead of
refitting: the same fit the benchmark made (the paper's BART takes about 36 s per fit). In practice
the unchanged adapters find one; the DR ``min_propensity`` variants are always fitted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: A variant: (label, adapter name, covariate encoding or None for the adapter's own, params of ours).
Variant = tuple[str, str, str | None, dict[str, Any]]


def _ours_with(name: str, key: str, **changes: Any) -> dict[str, Any]:
    """Our adapter's default ``key`` hyperparameter with ``changes`` applied."""
    from sdscm_bench.estimators.registry import get_adapter

    return {key: {**get_adapter(name).params[key], **changes}}


def variants(pair: str) -> list[Variant]:
    """The paper's configuration first, then one change at a time, then ours."""
    paper = f"paper_{pair}"
    out: list[Variant] = [
        ("paper's configuration (ordinal)", paper, None, {}),
        ("paper's, one-hot covariates", paper, "onehot", {}),
        ("ours, ordinal covariates", pair, "ordinal", {}),
    ]
    if pair == "bart":
        # bartCause's propensity score as a covariate of the response model, which ours has not: the
        # paper's without it (method.trt = "none"), the sampler and the SATE draws unchanged.
        out.append(("paper's, no propensity score", paper, None, {"method_trt": "none"}))
    elif pair == "rf_slearner":
        out.append(("ours, min_samples_leaf=1", pair, None, _ours_with(pair, "model", min_samples_leaf=1)))
        out.append(
            (
                "ours, ordinal, min_samples_leaf=1",
                pair,
                "ordinal",
                _ours_with(pair, "model", min_samples_leaf=1),
            )
        )
    else:
        # The first stage the paper's 'auto' selection can pick for the outcome, in place of our boosting:
        # scikit-learn's default forest (fully grown trees), on our one-hot covariates.
        key = "model_regression" if "drlearner" in pair else "model_y"
        out.append(
            (
                "ours, outcome model = default random forest",
                pair,
                None,
                {
                    key: {
                        "kind": "random_forest",
                        "n_estimators": 100,
                        "min_samples_leaf": 1,
                        "max_features": 1.0,
                    }
                },
            )
        )
    if "drlearner" in pair:
        # The propensity floor: econml's default 1e-6 (the paper's) against our clip at 0.01.
        out.append(("paper's, min_propensity=0.01", paper, None, {"min_propensity": 0.01}))
        out.append(
            (
                "ours, min_propensity=1e-6",
                pair,
                None,
                _ours_with(pair, "model_propensity", clip=[1e-6, 1 - 1e-6]),
            )
        )
    out.append(("ours (one-hot)", pair, None, {}))
    return out


PAIRS = ("rf_slearner", "linear_dml", "causal_forest_dml", "linear_drlearner", "forest_drlearner", "bart")


def _with_min_propensity(build: Callable[[int], Any], value: float) -> Callable[[int], Any]:
    """``build`` whose econml learner floors its propensities at ``value`` (econml's default: 1e-6)."""

    def built(seed: int) -> Any:
        model = build(seed)
        model.min_propensity = value
        return model

    return built


def build(name: str, encoding: str | None, params: dict[str, Any]) -> Any:
    """The adapter, with its covariate encoding replaced on this instance only when asked.

    ``{"min_propensity": x}`` is no adapter hyperparameter: it sets that argument of the econml learner
    a ``paper_*`` DR learner builds, on this instance only. Other params are the adapter's own
    (``paper_bart`` has bartCause's defaults as hyperparameters).
    """
    from sdscm_bench.estimators.registry import get_adapter

    if name.startswith("paper_") and "min_propensity" in params:
        adapter = get_adapter(name)
        adapter.build = _with_min_propensity(adapter.build, params["min_propensity"])
    else:
        adapter = get_adapter(name, **params)
    if encoding is not None:
        adapter.covariate_encoding = encoding
    return adapter


#: (estimator, adapter fingerprint, dataset fingerprint, setting, seed) -> (ATE error, fit seconds)
Stored = dict[tuple[str, str, str, str, int], tuple[float, float]]


def stored_fits(path: Path) -> Stored:
    """The successful fits of a benchmark results file, keyed by what makes a fit the same fit."""
    from sdscm_bench.results_file import read_results

    return {
        (r["estimator"], r["adapter_fingerprint"], r["dataset_fingerprint"], r["setting"], int(r["seed"])): (
            float(r["ate_error"]),
            float(r["fit_seconds"]),
        )
        for r in read_results(path)["records"]
        if not r.get("failed") and r.get("ate_error") is not None and np.isfinite(r["ate_error"])
    }


def reusable(params: dict[str, Any]) -> bool:
    """Whether a variant's fingerprint says all that changed: ``min_propensity`` is set on the econml
    learner after the adapter is built, outside its hyperparameters, so its fingerprint is the plain
    adapter's and a stored fit of that adapter is not this variant's."""
    return "min_propensity" not in params


def fit_all(
    datasets: list[Any],
    setting: str,
    chosen: list[Variant],
    progress: Callable[[str], None],
    stored: Stored | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(ATE error, SATE, fit seconds, fits taken from ``stored``), each array variants × datasets; NaN
    error where a fit failed."""
    from sdscm_bench.runner import dataset_fingerprint, dataset_seed

    errors = np.full((len(chosen), len(datasets)), np.nan)
    sate = np.asarray([ds.sate for ds in datasets])
    seconds = np.full_like(errors, np.nan)
    reused = 0
    fingerprints = [
        build(name, encoding, params).fingerprint() if stored and reusable(params) else None
        for _, name, encoding, params in chosen
    ]
    for j, ds in enumerate(datasets):
        data_fp = dataset_fingerprint(ds)
        seed = dataset_seed(data_fp)
        for i, (_, name, encoding, params) in enumerate(chosen):
            key = (name, fingerprints[i], data_fp, setting, seed)
            hit = stored.get(key) if stored and fingerprints[i] else None
            if hit is not None:
                errors[i, j], seconds[i, j] = hit
                reused += 1
                continue
            adapter = build(name, encoding, params)
            X = ds.covariates(setting, encoding=adapter.covariate_encoding)
            start = time.perf_counter()
            try:
                est = adapter.run(X, ds.t, ds.y, seed)
            except Exception as exc:  # a failed fit is a missing value, reported in the table
                progress(f"{ds.name}: {name} failed: {type(exc).__name__}: {exc}")
                continue
            seconds[i, j] = time.perf_counter() - start
            errors[i, j] = est.ate - sate[j]
        progress(f"{j + 1}/{len(datasets)} datasets")
    return errors, sate, seconds, reused


def summarise(
    chosen: list[Variant], errors: np.ndarray, sate: np.ndarray, seconds: np.ndarray
) -> list[list[str]]:
    """One row per variant on the datasets where every variant succeeded (paired against the first)."""
    from sdscm_bench.leaderboard import fmt_ci, fmt_number
    from sdscm_bench.metrics import r2_score
    from sdscm_bench.ranking import _interval, _rmse, paired_bootstrap

    ok = np.all(np.isfinite(errors), axis=0)
    cols = [errors[i, ok] for i in range(len(chosen))]
    rmse, dist = paired_bootstrap(cols, _rmse)
    rows = []
    for i, (label, name, _encoding, _params) in enumerate(chosen):
        diff = (
            "reference"
            if i == 0
            else "[{}, {}]".format(*(fmt_number(x) for x in _interval(dist[i] - dist[0])))
        )
        lo, hi = _interval(dist[i] - dist[0]) if i else (0.0, 0.0)
        verdict = "–" if i == 0 else ("tie" if lo <= 0.0 <= hi else ("worse" if lo > 0 else "better"))
        rows.append(
            [
                label,
                f"`{name}`",
                int(ok.sum()),
                fmt_ci(float(rmse[i]), _interval(dist[i])),
                diff,
                verdict,
                fmt_number(r2_score(sate[ok], sate[ok] + cols[i])),
                fmt_number(float(np.nanmedian(seconds[i]))),
                int(np.sum(~np.isfinite(errors[i]))),
            ]
        )
    return rows


def outcome_cells(ds: Any, setting: str) -> tuple[int, float]:
    """(distinct (covariates, t) cells, largest sd of y within a cell): a largest sd of 0 means y is an
    exact function of what the setting observes, so a learner's smoothing can only add bias."""
    import pandas as pd

    frame = pd.DataFrame(ds.covariates(setting, encoding="ordinal"))
    frame["t"], frame["y"] = ds.t, ds.y
    groups = frame.groupby(list(frame.columns[:-1]))["y"]
    return int(groups.ngroups), float(groups.std(ddof=1).fillna(0.0).max())


def propensity_extremes(ds: Any, setting: str, name: str) -> tuple[str, int, int]:
    """(the propensity model econml's ``'auto'`` chose, units whose cross-fitted propensity of their own
    arm is 0 before the floor, units where it is below 0.01), for a ``paper_*`` DR learner.

    The cross-fitted propensities are econml's own (``cache_values=True`` keeps the nuisances of the
    fit; read from its ``_cached_values``, which econml has no public accessor for). A unit whose own
    arm gets propensity 0 is weighted 1/min_propensity in the doubly robust pseudo-outcome.
    """
    from sdscm_bench.estimators._paper import quiet_model_selection
    from sdscm_bench.runner import dataset_fingerprint, dataset_seed

    adapter = build(name, None, {})
    seed = dataset_seed(dataset_fingerprint(ds))
    X = ds.covariates(setting, encoding=adapter.covariate_encoding)
    with quiet_model_selection():
        model = adapter.build(seed)
        model.fit(ds.y, ds.t, X=X, W=None, cache_values=True)
    chosen = {type(getattr(m, "best_model", m)).__name__ for m in model.models_propensity[0]}
    # econml 0.17's DR nuisances: (pseudo-outcomes, clipped propensities, raw propensities)
    treated = np.asarray(model._cached_values.nuisances[2])[:, 1]
    own = np.where(np.asarray(ds.t) == 1, treated, 1.0 - treated)
    return "/".join(sorted(chosen)), int(np.sum(own == 0.0)), int(np.sum(own < 0.01))


def _describe(ids: list[int]) -> str:
    """``0..99`` for a leading range, the ids themselves otherwise."""
    return f"{ids[0]}..{ids[-1]}" if ids == list(range(ids[0], ids[-1] + 1)) else ", ".join(map(str, ids))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pair", choices=PAIRS, help="our adapter's name; its partner is paper_<name>")
    parser.add_argument("--lm", default="paper-gpt2", choices=["paper-gpt2", "paper-llama-3-8b"])
    parser.add_argument("--setting", default="all covariates")
    parser.add_argument("--datasets", type=int, default=100, help="the first N released datasets (by id)")
    parser.add_argument("--ids", type=int, nargs="+", default=None, help="these released dataset ids instead")
    parser.add_argument("--paper-data", type=Path, default=None)
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="a benchmark results file: unchanged adapters take their stored fits of the same "
        "fingerprints instead of refitting",
    )
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--propensities",
        action="store_true",
        help="DR pairs: also print, per dataset, the propensity model the paper's 'auto' chose and its "
        "units with an own-arm propensity of 0",
    )
    args = parser.parse_args()

    from tabulate import tabulate

    from sdscm_bench.paper_data import default_paper_data_dir, iter_paper_datasets, paper_dataset_ids

    root = args.paper_data or default_paper_data_dir()
    if root is None or not Path(root).is_dir():
        raise SystemExit("no released data: pass --paper-data DIR or set SDSCM_PAPER_DATA")
    lm = args.lm.removeprefix("paper-")  # the released file's name
    ids = paper_dataset_ids(Path(root), lm)
    if args.ids:
        missing = sorted(set(args.ids) - set(ids))
        if missing:
            raise SystemExit(f"--ids: no released {lm} dataset with id {missing} under {root}")
        ids = list(args.ids)
    else:
        ids = ids[: args.datasets]
    datasets = list(iter_paper_datasets(Path(root), lm, ids))
    chosen = variants(args.pair)
    say = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    stored = stored_fits(args.results) if args.results else None
    errors, sate, seconds, reused = fit_all(datasets, args.setting, chosen, say, stored)
    rows = summarise(chosen, errors, sate, seconds)
    print(f"\n{args.pair}: {args.lm}, setting {args.setting!r}, datasets {_describe(ids)} ({len(ids)})\n")
    if stored is not None:
        print(
            f"fits taken from {args.results}: {reused} of {errors.size} (the rest fitted now; a stored "
            "fit's seconds are those of the run that made it)\n"
        )
    cells = [outcome_cells(ds, args.setting) for ds in datasets]
    print(
        f"(covariates, t) cells per dataset: {min(c for c, _ in cells)}-{max(c for c, _ in cells)} of "
        f"{min(len(ds.t) for ds in datasets)}-{max(len(ds.t) for ds in datasets)} units; "
        f"largest within-cell sd(y): {max(sd for _, sd in cells):.3g}\n"
    )
    headers = ["variant", "adapter", "n", "ATE RMSE [95% CI]", "Δ vs paper's [95% CI]", "verdict", "ATE R²",
               "median fit s", "failures"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    if args.propensities and "drlearner" in args.pair:
        print(f"\npaper_{args.pair}'s cross-fitted propensities (econml's 'auto', floor 1e-6):\n")
        table = [
            [ds.name, *propensity_extremes(ds, args.setting, f"paper_{args.pair}"), len(ds.t)]
            for ds in datasets
        ]
        print(tabulate(table, headers=["dataset", "propensity model", "own arm = 0", "own arm < 0.01", "units"],
                       tablefmt="github", disable_numparse=True))  # fmt: skip


if __name__ == "__main__":
    main()
