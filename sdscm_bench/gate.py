"""Regression gate: does this run's estimator do worse than a saved baseline on the same datasets?

Comparisons are paired: a new record is compared only with the baseline record of the same
estimator, LM, setting and dataset fingerprint, so a run over a subset of datasets is judged on that
subset and a changed dataset (new fingerprint) is never compared with an old one.

**The rule** (:data:`DEFAULT_RULES`). Per estimator, pooling every paired dataset of the run (all
its LMs and settings, "strata"), and for each gated metric:

1. *Effect size, relative to the baseline's own scale.* In each stratum s the summary of the new
   records over the baseline's, ``ratio_s = S_new / S_base`` (S = ATE RMSE, or mean PEHE); the
   pooled ratio is their geometric mean (each stratum counts once, whatever its outcome scale).
2. *Paired test.* Per dataset i of stratum s the loss difference ``d_i = (L_new,i - L_base,i) /
   mean_s(L_base)`` (L = squared ATE error, or PEHE), scaled by the stratum's baseline loss so that
   strata with different outcome units are comparable. One-sided Wilcoxon signed-rank test of
   "d tends to be > 0" (``scipy.stats.wilcoxon``, exact for small n; zero differences dropped).
3. *Decision.* A regression when ``pooled ratio > 1 + min_rel_change`` **and** ``p < alpha``.
   Defaults: ATE RMSE 50% worse, mean PEHE 25% worse, alpha = 0.05. The ATE error of one dataset
   is a single noisy number (PEHE averages over units), hence its larger floor. Requiring both
   keeps the false-alarm rate below alpha: noise must produce a large ratio *and* a consistent sign.

Why both: the test alone flags tiny but consistent shifts (a patch release that moves every error
by 1%), the ratio alone flags noise on a handful of datasets (a new seed of a random forest). A
seeded, unchanged adapter reproduces its records exactly: every d_i = 0, p = 1.

The exact one-sided Wilcoxon p-value cannot go below 2^-n, so below :func:`min_paired` (5 paired
datasets at alpha = 0.05) it cannot reach alpha: the gate then says it cannot decide (a warning, not
a pass).

Besides metrics, a dataset that succeeded in the baseline and fails now is a regression, and so is a
metric the baseline had and the new run lacks (a lost capability, e.g. no more CATE).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from sdscm_bench.errors import SdscmError
from sdscm_bench.results_file import ResultsFileError, read_results, record_key


def min_paired(alpha: float) -> int:
    """The smallest n at which the exact one-sided Wilcoxon p-value (at best 2^-n) can be below alpha."""
    return math.floor(math.log2(1.0 / alpha)) + 1


@dataclass(frozen=True)
class GateRule:
    """How one metric is gated: per-dataset loss, its summary, the minimum effect and the test level."""

    label: str  # "ATE RMSE"
    loss: str  # record field giving the per-dataset loss
    square: bool  # square the field (ATE error -> squared error; summary is then the root mean)
    min_rel_change: float = 0.25
    alpha: float = 0.05

    def losses(self, recs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        v = np.asarray([float(r[self.loss]) for r in recs], dtype=np.float64)
        return v**2 if self.square else v

    def summary(self, losses: np.ndarray) -> float:
        m = float(np.mean(losses))
        return float(np.sqrt(m)) if self.square else m


DEFAULT_RULES: tuple[GateRule, ...] = (
    GateRule("ATE RMSE", loss="ate_error", square=True, min_rel_change=0.5),
    GateRule("mean PEHE", loss="pehe", square=False, min_rel_change=0.25),
)


class BaselineError(SdscmError):
    """The baseline results file is missing or malformed."""


@dataclass(frozen=True)
class Stratum:
    """One LM × setting of one estimator: baseline and new summaries over its paired datasets."""

    lm: str
    setting: str
    n: int
    baseline: float
    new: float
    variant: str | None = None

    @property
    def ratio(self) -> float:
        if self.baseline == 0.0:
            return 1.0 if self.new == 0.0 else float("inf")
        return self.new / self.baseline


@dataclass(frozen=True)
class Verdict:
    """The gate's decision for one estimator and one metric (or a new failure / lost capability)."""

    estimator: str
    metric: str  # a rule label, "failed" (new failures) or "missing:<field>" (lost capability)
    regression: bool
    decided: bool  # False: too few paired datasets for the test to reach alpha
    n_paired: int
    ratio: float | None = None
    p_value: float | None = None
    strata: tuple[Stratum, ...] = ()
    message: str = ""


def load_baseline(path: str | Path) -> list[dict[str, Any]]:
    """Records of a results file written by :mod:`sdscm_bench.results_file`, with an error naming the file."""
    path = Path(path)
    if not path.exists():
        raise BaselineError(
            f"{path}: baseline results file not found; run the benchmark once to write it, "
            "or point the gate at an existing results file"
        )
    try:
        return read_results(path)["records"]
    except ResultsFileError as exc:
        raise BaselineError(f"baseline is malformed: {exc}") from exc


def pair_records(
    baseline_records: Iterable[Mapping[str, Any]], new_records: Iterable[Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(baseline, new) pairs with the same estimator, LM, setting and dataset fingerprint.

    An empty list means there is nothing to compare; the caller should warn rather than pass silently.
    """
    base = {record_key(r): r for r in baseline_records}
    return [(base[k], r) for r in new_records if (k := record_key(r)) in base]


def wilcoxon_greater(d: np.ndarray) -> float:
    """One-sided p-value that the differences tend to be positive; 1.0 when all are zero."""
    nonzero = d[d != 0.0]
    if nonzero.size == 0:
        return 1.0
    return float(stats.wilcoxon(nonzero, alternative="greater").pvalue)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


def judge(
    estimator: str, pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], rule: GateRule
) -> Verdict | None:
    """Apply ``rule`` to one estimator's paired records (both succeeded); None when no pair has the metric."""
    by_stratum: dict[tuple[str, str, str], list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for b, n in pairs:
        if b.get(rule.loss) is not None and n.get(rule.loss) is not None:
            key = (str(n["lm"]), str(n.get("variant") or ""), str(n["setting"]))
            by_stratum.setdefault(key, []).append((b, n))
    if not by_stratum:
        return None
    strata, diffs = [], []
    for (lm, variant, setting), sp in sorted(by_stratum.items()):
        lb, ln = rule.losses([b for b, _ in sp]), rule.losses([n for _, n in sp])
        strata.append(Stratum(lm, setting, len(sp), rule.summary(lb), rule.summary(ln), variant or None))
        scale = float(np.mean(lb)) or float(np.mean(ln)) or 1.0
        diffs.append((ln - lb) / scale)
    d = np.concatenate(diffs)
    ratios = np.asarray([s.ratio for s in strata])
    ratio = float(np.exp(np.mean(np.log(np.maximum(ratios, 1e-300)))))
    p = wilcoxon_greater(d)
    decided = d.size >= min_paired(rule.alpha) or not np.any(d)
    regression = decided and ratio > 1.0 + rule.min_rel_change and p < rule.alpha
    per = "; ".join(
        f"{s.lm}{f' · {s.variant}' if s.variant else ''} · {s.setting}: {_fmt(s.baseline)} -> {_fmt(s.new)} (n = {s.n})"
        for s in strata
    )
    verdict = "REGRESSION" if regression else ("pass" if decided else "cannot decide")
    message = (
        f"{estimator}: {rule.label} {verdict}: x{ratio:.3g} of the baseline (geometric mean over "
        f"{len(strata)} LM × setting), one-sided Wilcoxon signed-rank p = {p:.2g} over {d.size} paired "
        f"datasets; rule: regression when x > {1 + rule.min_rel_change:.3g} and p < {rule.alpha:g}. "
        f"Baseline -> new: {per}"
    )
    if not decided:
        message += (
            f". Fewer than {min_paired(rule.alpha)} paired datasets: the test cannot reach p < {rule.alpha:g}"
        )
    return Verdict(estimator, rule.label, regression, decided, int(d.size), ratio, p, tuple(strata), message)


def compare(
    baseline_records: Iterable[Mapping[str, Any]],
    new_records: Iterable[Mapping[str, Any]],
    rules: Sequence[GateRule] = DEFAULT_RULES,
) -> list[Verdict]:
    """The gate's verdicts per estimator over paired datasets (see the module doc); passes included."""
    groups: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {}
    for b, n in pair_records(baseline_records, new_records):
        groups.setdefault(str(n["estimator"]), []).append((b, n))

    out: list[Verdict] = []
    for est, pairs in sorted(groups.items()):
        newly_failed = [n for b, n in pairs if not b.get("failed") and n.get("failed")]
        if newly_failed:
            names = ", ".join(
                f"{n.get('dataset')} ({n.get('lm')}, {n.get('setting')})" for n in newly_failed[:5]
            )
            more = f" and {len(newly_failed) - 5} more" if len(newly_failed) > 5 else ""
            first_error = sorted({str(n.get("error")) for n in newly_failed})[0]
            message = (
                f"{est}: failed on {len(newly_failed)} of {len(pairs)} paired datasets that succeeded "
                f"in the baseline ({names}{more}); error: {first_error}"
            )
            out.append(Verdict(est, "failed", True, True, len(pairs), message=message))
        both_ok = [(b, n) for b, n in pairs if not b.get("failed") and not n.get("failed")]
        for rule in rules:
            lost = [n for b, n in both_ok if b.get(rule.loss) is not None and n.get(rule.loss) is None]
            if lost:
                message = (
                    f"{est}: {rule.loss} is missing on {len(lost)} of {len(both_ok)} paired datasets "
                    "where the baseline had it"
                )
                out.append(Verdict(est, f"missing:{rule.loss}", True, True, len(both_ok), message=message))
            verdict = judge(est, both_ok, rule)
            if verdict is not None:
                out.append(verdict)
    return out


def regressions(verdicts: Iterable[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.regression]
