"""The benchmark items: one test per estimator × LM × setting, parametrized by the sdscm_bench plugin.

The plugin collects this module itself in benchmark mode (``pytest --estimator=NAME[,NAME...]`` or
``pytest --benchmark``), so a project needs no test file of its own; without benchmark mode it is never
collected. Ids read ``<estimator>-<lm>-<setting>``, e.g. ``xlearner-paper-gpt2-all_covariates``, so
``-k`` selects them.

An item fails when the estimator failed on any dataset (raised, or returned a NaN or malformed
estimate; the error is recorded in the results). With ``--compare BASELINE``, the regression gate
decides at the end of the session, per estimator over all its paired datasets, and a regression
makes pytest exit with status 1 (see ``sdscm_bench.gate``). Each item's headline numbers are
attached as properties (``item.user_properties``), which ``--junitxml`` writes into the report.
"""

from __future__ import annotations

from typing import Any

import pytest

from sdscm_bench.headline import headline
from sdscm_bench.plan import Case
from sdscm_bench.session import REUSED_FLAG, BenchSession


def test_estimator(
    sdscm_case: Case,
    sdscm_datasets: list[Any],
    sdscm_bench: BenchSession,
    request: pytest.FixtureRequest,
) -> None:
    records = sdscm_bench.evaluate(sdscm_case, sdscm_datasets)
    reused = sum(1 for r in records if r.get(REUSED_FLAG))
    # What the record_property fixture does, minus its warning under the default junit_family (xunit2).
    request.node.user_properties += [
        (k, v) for k, v in headline(records, reused=reused).items() if v is not None
    ]
    failed = [r for r in records if r["failed"]]
    problems = [f"{r['dataset']}: {r['error']}" for r in failed]
    if failed:
        problems.insert(0, f"failed on {len(failed)} of {len(records)} datasets:")
    sdscm_bench.check_pairing(sdscm_case, records)
    if problems:
        pytest.fail(f"{sdscm_case.id}: " + "\n".join(problems), pytrace=False)
