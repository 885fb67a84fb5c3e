"""Measure the regression gate (``sdscm_bench.gate``) on the paper's released data: misses and false alarms.

The gate is run exactly as ``pytest --compare`` runs it (records made by ``sdscm_bench.runner``,
verdicts by ``sdscm_bench.gate.compare``) on the first ``--n-datasets`` released datasets per paper LM
and setting (3 by default: 3 x 2 LMs x 2 settings = 12 paired datasets per estimator), against the
published results file. Scenarios:

- ``unchanged``: each adapter as it is. Must pass (and reproduce the published numbers).
- ``crippled``: the X-learner with ``max_iter=1`` boosting. Must fail.
- ``biased``: adapters whose ATE (and ATE interval) is shifted by 3x their typical error (the
  published ATE RMSE of that adapter on that LM and setting, over its main table's datasets). Must fail.
- ``seeds``: randomised learners refitted with ``--seeds`` other seeds. A false alarm is any failure.
- ``patch``: records made in another environment (e.g. a scikit-learn patch release) by the ``fit``
  subcommand. A false alarm is any failure.

    python benchmarks/gate_check.py run --baseline leaderboard/results.parquet --seeds 20
    # a patch release: fit in an environment with it, then gate those records
    PYTHONPATH=/tmp/sklearn-1.9.0 python benchmarks/gate_check.py fit --out /tmp/patch.json
    python benchmarks/gate_check.py run --patch-records /tmp/patch.json --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tabulate import tabulate  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sdscm_bench.estimators._common import HGB_PARAMS  # noqa: E402
from sdscm_bench.estimators.base import EstimatorAdapter  # noqa: E402
from sdscm_bench.estimators.registry import get_adapter  # noqa: E402
from sdscm_bench.gate import compare, regressions  # noqa: E402
from sdscm_bench.paper_data import default_paper_data_dir, load_paper_dataset, oncology_family  # noqa: E402
from sdscm_bench.ranking import ranking_tables  # noqa: E402
from sdscm_bench.results_file import read_results  # noqa: E402
from sdscm_bench.runner import adapter_ident, dataset_fingerprint, dataset_seed, score_dataset  # noqa: E402

LMS = ("paper-gpt2", "paper-llama-3-8b")
SEEDED = ("causal_forest_dml", "rf_slearner")  # randomised learners (forests) for the seed scenario
PATCH = ("xlearner", "causal_forest_dml", "rf_slearner")
BIASED = ("ols_slearner", "xlearner")


class Biased(EstimatorAdapter):
    """Wraps an adapter and shifts its ATE and ATE interval by ``bias[(lm, setting)]``."""

    name = "biased"
    library = "numpy"

    def __init__(self, inner: EstimatorAdapter, bias: float) -> None:
        super().__init__()
        self.inner, self.bias = inner, bias
        self.covariate_encoding = inner.covariate_encoding

    def estimate(self, X, t, y, seed):  # type: ignore[no-untyped-def]
        est = self.inner.run(X, t, y, seed)
        ai = (
            None
            if est.ate_interval is None
            else (est.ate_interval[0] + self.bias, est.ate_interval[1] + self.bias)
        )
        return dataclasses.replace(est, ate=est.ate + self.bias, ate_interval=ai)


def load_cases(paper_data: Path, n: int) -> list[tuple[str, str, Any]]:
    settings = list(oncology_family().settings)
    cases = []
    for lm in LMS:
        for i in range(n):
            ds = load_paper_dataset(paper_data, lm.removeprefix("paper-"), i)
            cases += [(lm, s, ds) for s in settings]
    return cases


def fit(estimator: str, cases, *, adapter: EstimatorAdapter | None = None, seed_offset: int = 0,
        bias: dict[tuple[str, str], float] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Records of ``estimator`` (named so, whatever the adapter) on every case."""
    base = adapter or get_adapter(estimator)
    out = []
    for lm, setting, ds in cases:
        a = base if bias is None else Biased(base, bias[(lm, setting)])
        ident = adapter_ident(base, estimator) | {"lm": lm, "setting": setting}
        seed = None
        if seed_offset:
            seed = (dataset_seed(dataset_fingerprint(ds)) + 7919 * seed_offset) % (2**31 - 1)
        out.append(score_dataset(a, ds, setting, ident, seed=seed))
    return out


def typical_errors(baseline: list[dict[str, Any]], estimator: str) -> dict[tuple[str, str], float]:
    """The published ATE RMSE of ``estimator`` per paper LM and setting (its main table's datasets)."""
    out = {}
    for table in ranking_tables([r for r in baseline if r["lm"] in LMS]):
        if table.main:
            for row in table.rows:
                if row.estimator == estimator:
                    out[(table.lm, table.setting)] = row.ate_rmse
    return out


def verdict_row(scenario: str, estimator: str, verdicts) -> list[Any]:  # type: ignore[no-untyped-def]
    ate = next((v for v in verdicts if v.metric == "ATE RMSE"), None)
    pehe = next((v for v in verdicts if v.metric == "mean PEHE"), None)
    failed = sorted({v.metric for v in regressions(verdicts)})
    return [
        scenario, estimator,
        "FAIL" if failed else "pass", ", ".join(failed) or "-",
        ate and f"x{ate.ratio:.3g}", ate and f"{ate.p_value:.2g}", pehe and f"x{pehe.ratio:.3g}",
        pehe and f"{pehe.p_value:.2g}", ate and ate.n_paired,
    ]  # fmt: skip


def cmd_fit(args: argparse.Namespace) -> None:
    cases = load_cases(args.paper_data, args.n_datasets)
    records = [r for e in args.estimators.split(",") for r in fit(e, cases)]
    Path(args.out).write_text(json.dumps(records, default=float))
    print(f"wrote {len(records)} records to {args.out}")


def cmd_run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    baseline = read_results(args.baseline)["records"]
    cases = load_cases(args.paper_data, args.n_datasets)
    rows = []
    print(f"{len(cases)} paired datasets per estimator ({args.n_datasets} per LM and setting)")

    unchanged = sorted({*SEEDED, *PATCH, *BIASED})
    for e in tqdm(unchanged, desc="unchanged"):
        recs = fit(e, cases)
        rows.append(verdict_row("unchanged", e, compare(baseline, recs)))

    crippled = get_adapter("xlearner", learner={**HGB_PARAMS, "max_iter": 1})
    rows.append(
        verdict_row(
            "crippled max_iter=1", "xlearner", compare(baseline, fit("xlearner", cases, adapter=crippled))
        )
    )

    for e in BIASED:
        bias = {k: 3.0 * v for k, v in typical_errors(baseline, e).items()}
        rows.append(verdict_row("ATE + 3x typical error", e, compare(baseline, fit(e, cases, bias=bias))))

    seed_rows = []
    for e in SEEDED:
        alarms, worst_ratio, least_p = 0, 0.0, 1.0
        for s in tqdm(range(1, args.seeds + 1), desc=f"seeds {e}"):
            verdicts = compare(baseline, fit(e, cases, seed_offset=s))
            alarms += bool(regressions(verdicts))
            if regressions(verdicts):
                rows.append(verdict_row(f"seed +{s} (false alarm)", e, verdicts))
            gated = [v for v in verdicts if v.ratio is not None]
            worst_ratio = max([worst_ratio, *(v.ratio for v in gated)])
            least_p = min([least_p, *(v.p_value for v in gated)])
        seed_rows.append([e, args.seeds, alarms, f"x{worst_ratio:.3g}", f"{least_p:.2g}"])
    if args.patch_records:
        patched = json.loads(Path(args.patch_records).read_text())
        for e in sorted({r["estimator"] for r in patched}):
            versions = sorted(
                {json.dumps(r.get("versions"), sort_keys=True) for r in patched if r["estimator"] == e}
            )
            rows.append(verdict_row(f"patch release {', '.join(versions)}", e,
                                    compare(baseline, [r for r in patched if r["estimator"] == e])))  # fmt: skip

    headers = [
        "scenario",
        "estimator",
        "gate",
        "failed on",
        "ATE RMSE ratio",
        "ATE p",
        "PEHE ratio",
        "PEHE p",
        "n",
    ]
    print(tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True))
    if seed_rows:
        print()
        print(tabulate(seed_rows, headers=["seed scenario", "seeds", "false alarms", "largest ratio", "smallest p"],
                       tablefmt="pipe", disable_numparse=True))  # fmt: skip
    print(f"wall time {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--paper-data", type=Path, default=default_paper_data_dir())
    parser.add_argument("--n-datasets", type=int, default=3, help="released datasets per LM and setting")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="all scenarios against the baseline")
    run.add_argument("--baseline", default="leaderboard/results.parquet")
    run.add_argument("--seeds", type=int, default=20)
    run.add_argument("--patch-records", help="records written by the fit subcommand in another environment")
    run.set_defaults(func=cmd_run)
    fit_p = sub.add_parser("fit", help="write default-seed records (run it in another environment)")
    fit_p.add_argument("--estimators", default=",".join(PATCH))
    fit_p.add_argument("--out", required=True)
    fit_p.set_defaults(func=cmd_fit)
    args = parser.parse_args()
    if args.paper_data is None:
        parser.error("no released data: pass --paper-data or set SDSCM_PAPER_DATA")
    args.func(args)


if __name__ == "__main__":
    main()
