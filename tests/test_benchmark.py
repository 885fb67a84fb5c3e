"""The benchmark items: one test per estimator × LM × setting, parametrized by the sdscm_bench plugin.

Run them with ``pytest --estimator=NAME[,NAME...]`` or ``pytest --benchmark`` (options under
"sdscm-bench" in ``pytest --help``); without either, the one placeholder item here is skipped and
a plain ``pytest`` runs the unit tests only. Ids read ``<estimator>-<lm>-<setting>``, e.g.
``xlearner-paper-gpt2-all_covariates``, so ``-k`` selects them.

An item fails when the estimator failed on any dataset (raised, or returned a NaN or malformed
estimate; the error is recorded in the results). With ``--compare BASELINE``, the regression gate
decides at the end of the session, per estimator over all its paired datasets, and a regression
makes pytest exit with status 1 (see ``sdscm_bench.gate``).
"""

from __future__ import annotations

import pytest

from sdscm_bench.plugin import BenchSession, Case


def test_estimator(sdscm_case: Case, sdscm_datasets: list, sdscm_bench: BenchSession) -> None:
    records = sdscm_bench.evaluate(sdscm_case, sdscm_datasets)
    failed = [r for r in records if r["failed"]]
    problems = [f"{r['dataset']}: {r['error']}" for r in failed]
    if failed:
        problems.insert(0, f"failed on {len(failed)} of {len(records)} datasets:")
    sdscm_bench.check_pairing(sdscm_case, records)
    if problems:
        pytest.fail(f"{sdscm_case.id}: " + "\n".join(problems), pytrace=False)
