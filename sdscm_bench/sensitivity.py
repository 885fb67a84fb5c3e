"""Phrasing sensitivity: how much a family's true effects move across phrasing draws vs across seeds.

Each dataset of a family draws one phrasing per variable and its Gumbel noise from the same seed,
so in a family of K datasets the two sources of variation are confounded. Here they are separated:

- a *phrasing draw* fixes one phrasing per variable: draw p takes ``phrasing_choice(family, s)``
  for the p-th source seed s that gives a combination not seen before (variables outside
  ``--variable`` keep their first phrasing), and becomes a family whose every variable holds only
  that phrasing (its own spec fingerprint, so its own cache entries);
- each phrasing draw is generated with the same S noise seeds (seed, ..., seed+S-1). The noise of
  a seed does not depend on the phrasings, so the design is crossed: seed k of every draw shares
  the same exogenous noise and differs only in wording.

Per dataset: SATE, sd(ITE), the share of units with ITE != 0, ITE quantiles and the treated share.
For the SATE and sd(ITE) (and the other summaries) the P x S table is decomposed into the
between-phrasing variance (of the per-draw means) and the within-phrasing variance (across seeds),
with a one-way ANOVA F test, a Kruskal-Wallis test, the random-effects variance components with an
exact confidence interval for the phrasing share (intraclass correlation), and, because the seeds
are shared, a two-way ANOVA that blocks on the seed.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from tabulate import tabulate
from tqdm.auto import tqdm

from sdscm_bench.cache import DatasetCache
from sdscm_bench.dataset import SDSCMDataset
from sdscm_bench.errors import SdscmError
from sdscm_bench.families import resolve_spec
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity, load_lm
from sdscm_bench.paths import spec_dir
from sdscm_bench.sampler import phrasing_choice
from sdscm_bench.spec import Family, load_family

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Per-dataset summaries that are decomposed; (key, label).
METRICS = (
    ("sate", "SATE"),
    ("sd_ite", "sd(ITE)"),
    ("share_nonzero", "share ITE != 0"),
    ("ite_q50", "median ITE"),
    ("treated_share", "treated share"),
)
MAX_SOURCE_SEEDS = 100_000  # phrasing_choice seeds tried before giving up on finding P distinct draws


# ---------------------------------------------------------------- phrasing draws


@dataclass(frozen=True)
class PhrasingDraw:
    """One fixed phrasing per variable, and the single-phrasing family that holds it."""

    index: int  # 0..P-1
    source_seed: int  # phrasing_choice(family, source_seed) gave the varied variables' phrasings
    choice: dict[str, int]  # variable -> index into the original family's phrasings
    family: Family

    def label(self, varied: list[str]) -> str:
        """The varied variables' phrasing indices, in ``varied`` order (one digit each when possible)."""
        idx = [self.choice[name] for name in varied]
        return "".join(map(str, idx)) if max(idx, default=0) < 10 else ".".join(map(str, idx))


def load_spec(spec: str | Path) -> Family:
    """The family of a spec path or shipped spec name, with a clear error for an unknown one."""
    path = resolve_spec(spec)
    if not path.exists():
        shipped = sorted(p.stem for p in spec_dir().glob("*.y*ml"))
        raise SdscmError(
            f"unknown spec {str(spec)!r}: no such file, and no datasets/{spec}.yaml; "
            f"give a spec file or one of {shipped}"
        )
    return load_family(path)


def varied_variables(family: Family, names: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Variables whose phrasing varies across draws (``names``, or every one with several phrasings)."""
    by_name = family.by_name
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SdscmError(
            f"--variable {unknown[0]!r}: not a variable of {family.name}; it has {list(by_name)}"
        )
    pool = [v.name for v in family.variables if not names or v.name in names]
    varied = [n for n in pool if len(by_name[n].phrasings) > 1]
    if not varied:
        which = f"the variables {list(names)}" if names else f"every variable of family {family.name!r}"
        raise SdscmError(
            f"{which} {'have' if names else 'has'} a single phrasing, so there is nothing to vary; "
            "list two or more phrasings for a variable in the spec (or name one that has several)"
        )
    return varied


def single_phrasing_family(family: Family, choice: dict[str, int]) -> Family:
    """``family`` with each variable reduced to the phrasing ``choice`` picks for it."""
    variables = tuple(replace(v, phrasings=(v.phrasings[choice[v.name]],)) for v in family.variables)
    tag = ".".join(str(choice[v.name]) for v in family.variables)
    return replace(
        family,
        name=f"{family.name}~phrasing-{tag}",
        variables=variables,
        description=f"{family.description} [phrasings fixed: {tag}]".strip(),
    )


def phrasing_draws(
    family: Family, n_draws: int, varied: list[str], first_seed: int = 0
) -> list[PhrasingDraw]:
    """``n_draws`` distinct phrasing draws: source seeds first_seed, first_seed+1, ..., duplicates skipped."""
    combos = math.prod(len(family.by_name[n].phrasings) for n in varied)
    if n_draws > combos:
        raise SdscmError(
            f"--phrasings {n_draws}: the varied variables {varied} have only {combos} distinct phrasing "
            "combinations; ask for at most that many"
        )
    draws: list[PhrasingDraw] = []
    seen: set[tuple[int, ...]] = set()
    for seed in range(first_seed, first_seed + MAX_SOURCE_SEEDS):
        full = phrasing_choice(family, seed)
        choice = {v.name: (full[v.name] if v.name in varied else 0) for v in family.variables}
        key = tuple(choice[n] for n in varied)
        if key in seen:
            continue
        seen.add(key)
        draws.append(PhrasingDraw(len(draws), seed, choice, single_phrasing_family(family, choice)))
        if len(draws) == n_draws:
            return draws
    raise SdscmError(f"found only {len(draws)} distinct phrasing draws in {MAX_SOURCE_SEEDS} seeds")


# ---------------------------------------------------------------- per-dataset summaries


def dataset_summary(dataset: SDSCMDataset) -> dict[str, float]:
    """SATE, sd(ITE), share of units with ITE != 0, ITE quantiles and treated share of one dataset."""
    ite, t = dataset.ite, dataset.t
    out = {
        "n_units": int(ite.size),
        "sate": float(ite.mean()),
        "sd_ite": float(ite.std(ddof=1)) if ite.size > 1 else float("nan"),
        "share_nonzero": float(np.mean(ite != 0)),
        "treated_share": float(t.mean()),
    }
    for q, value in zip(QUANTILES, np.quantile(ite, QUANTILES), strict=True):
        out[f"ite_q{round(q * 100):02d}"] = float(value)
    return out


# ---------------------------------------------------------------- variance decomposition


def _f_sf(f: float, df1: int, df2: int) -> float:
    if math.isnan(f):
        return float("nan")
    return 0.0 if math.isinf(f) else float(stats.f.sf(f, df1, df2))


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return float("nan") if num == 0 else float("inf")


def decompose(values: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    """Between- vs within-phrasing variance of a P x S table (rows: phrasing draws, columns: seeds).

    One-way random-effects ANOVA, balanced: ``between_var`` is the variance of the P row means,
    ``within_var`` the pooled variance across seeds within a row, F = S * between_var / within_var
    on (P-1, P(S-1)) degrees of freedom (the same F and p as ``scipy.stats.f_oneway``). The variance
    components are sigma2_phrasing = max(0, (MSB - MSW) / S) and sigma2_seed = MSW, and
    ``icc`` = sigma2_phrasing / (sigma2_phrasing + sigma2_seed) is the share of a single dataset's
    variance due to phrasing, with an exact (normal-theory) confidence interval from the F
    distribution. Because every row uses the same noise seeds, ``blocked`` repeats the test in a
    two-way additive ANOVA with the seed as a block (residual = phrasing x seed interaction).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need a P x S table with P >= 2 and S >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the table has non-finite values")
    p, s = x.shape
    grand = float(x.mean())
    row_means, col_means = x.mean(axis=1), x.mean(axis=0)
    between_var = float(row_means.var(ddof=1))
    within_var = float(x.var(axis=1, ddof=1).mean())
    df1, df2 = p - 1, p * (s - 1)
    msb, msw = s * between_var, within_var
    f = _ratio(msb, msw)
    sigma2_p = max(0.0, (msb - msw) / s)
    icc = _ratio(sigma2_p, sigma2_p + msw) if sigma2_p + msw > 0 else float("nan")
    # Exact CI for theta = sigma2_p / sigma2_seed (Searle, Casella & McCulloch 1992, 3.5), then ICC.
    if math.isfinite(f):
        lo_t = (f / stats.f.ppf(1 - alpha / 2, df1, df2) - 1) / s
        hi_t = (f / stats.f.ppf(alpha / 2, df1, df2) - 1) / s
        icc_ci = [max(0.0, lo_t) / (1 + max(0.0, lo_t)), max(0.0, hi_t) / (1 + max(0.0, hi_t))]
    else:
        icc_ci = [1.0, 1.0] if math.isinf(f) else [float("nan"), float("nan")]
    # Kruskal-Wallis is undefined when every value is tied (e.g. a share that is 1 everywhere).
    kw_p = float(stats.kruskal(*x).pvalue) if np.ptp(x) > 0 else float("nan")
    # Two-way additive ANOVA with seeds as blocks.
    resid = x - row_means[:, None] - col_means[None, :] + grand
    df_res = (p - 1) * (s - 1)
    ms_res = float((resid**2).sum() / df_res)
    if ms_res <= 1e-12 * float(x.var()):  # an exactly additive table, up to rounding
        ms_res = 0.0
    ms_seed = float(p * ((col_means - grand) ** 2).sum() / (s - 1))
    f_blocked = _ratio(msb, ms_res)
    return {
        "n_phrasings": p,
        "n_seeds": s,
        "grand_mean": grand,
        "between_var": between_var,
        "within_var": within_var,
        "ratio": _ratio(between_var, within_var),
        "sd_between": math.sqrt(between_var),
        "sd_within": math.sqrt(within_var),
        "sigma2_phrasing": sigma2_p,
        "sigma2_seed": msw,
        "icc": icc,
        "icc_ci": icc_ci,
        "alpha": alpha,
        "f": f,
        "df": [df1, df2],
        "anova_p": _f_sf(f, df1, df2),
        "kruskal_p": kw_p,
        "blocked": {
            "f": f_blocked,
            "df": [df1, df_res],
            "p": _f_sf(f_blocked, df1, df_res),
            "seed_ms": ms_seed,
            "residual_ms": ms_res,
            "seed_f": _ratio(ms_seed, ms_res),
            "seed_p": _f_sf(_ratio(ms_seed, ms_res), s - 1, df_res),
        },
    }


# ---------------------------------------------------------------- the run


@dataclass
class SensitivityRequest:
    spec: str | Path
    lm: str = "smollm2"
    n_phrasings: int = 6
    n_seeds: int = 3
    n_units: int = 300
    seed: int = 0  # first noise seed and first phrasing source seed
    dtype: str | None = "auto"
    device: str | None = "auto"
    scoring: str | None = None  # None: the spec's ``scoring:``, else "sum"
    temperature: float = 1.0
    cache_dir: str | Path | None = None
    variables: tuple[str, ...] = ()

    def noise_seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.n_seeds)]


@dataclass
class SensitivityResult:
    request: SensitivityRequest
    family: Family
    varied: list[str]
    draws: list[PhrasingDraw]
    lm: dict[str, str]
    rows: list[dict[str, Any]]  # one per dataset: draw, seed, summary, cache info
    ites: dict[tuple[int, int], np.ndarray] = field(repr=False)  # (draw, seed) -> ITEs
    wall_seconds: float = 0.0
    command: str = ""

    def table(self, key: str) -> np.ndarray:
        """P x S array of one per-dataset summary."""
        seeds = self.request.noise_seeds()
        out = np.full((len(self.draws), len(seeds)), np.nan)
        for row in self.rows:
            out[row["draw"], seeds.index(row["seed"])] = row[key]
        return out

    def decompositions(self) -> dict[str, dict[str, Any]]:
        return {key: decompose(self.table(key)) for key, _ in METRICS}

    @property
    def generation_seconds(self) -> float:
        return float(sum(r["generation_seconds"] for r in self.rows))

    def to_json(self) -> dict[str, Any]:
        req = self.request
        return {
            "family": self.family.name,
            "spec": str(self.family.path),
            "spec_fingerprint": self.family.fingerprint(),
            "lm": self.lm,
            "command": self.command,
            "design": {
                "n_phrasings": len(self.draws),
                "n_seeds": req.n_seeds,
                "n_units": req.n_units,
                "noise_seeds": req.noise_seeds(),
                "scoring": self.family.effective_scoring(req.scoring),
                "temperature": req.temperature,
                "varied_variables": self.varied,
                "fixed_variables": {v.name: 0 for v in self.family.variables if v.name not in self.varied},
            },
            "draws": [
                {
                    "draw": d.index,
                    "source_seed": d.source_seed,
                    "label": d.label(self.varied),
                    "phrasings": d.choice,
                    "spec_fingerprint": d.family.fingerprint(),
                }
                for d in self.draws
            ],
            "datasets": self.rows,
            "decomposition": self.decompositions(),
            "wall_seconds": round(self.wall_seconds, 1),
            "generation_seconds": round(self.generation_seconds, 1),
        }


def run_sensitivity(request: SensitivityRequest, progress: bool = True) -> SensitivityResult:
    """Generate (or fetch from the cache) P phrasing draws x S seeds and summarise each dataset."""
    if request.n_phrasings < 2 or request.n_seeds < 2:
        raise SdscmError("--phrasings and --seeds must both be at least 2 to compare the two variances")
    if request.n_units < 2:
        raise SdscmError("--units must be at least 2")
    started = time.perf_counter()
    family = load_spec(request.spec)
    varied = varied_variables(family, request.variables)
    draws = phrasing_draws(family, request.n_phrasings, varied, request.seed)
    identity = lm_identity(request.lm, request.dtype, request.device)
    cache = DatasetCache(request.cache_dir)
    lm: LanguageModel | None = None
    rows: list[dict[str, Any]] = []
    ites: dict[tuple[int, int], np.ndarray] = {}
    jobs = [(d, seed) for d in draws for seed in request.noise_seeds()]
    bar = tqdm(jobs, unit="dataset", desc=f"{family.name} phrasing x seed", disable=not progress)
    for draw, seed in bar:
        scoring = family.effective_scoring(request.scoring)
        settings = GenerationSettings(request.n_units, seed, scoring, request.temperature)

        def create(fam: Family = draw.family, settings: GenerationSettings = settings) -> SDSCMDataset:
            nonlocal lm
            if lm is None:
                lm = load_lm(request.lm, request.dtype, request.device)
            return generate_dataset(fam, lm, settings)

        dataset, hit = cache.get_or_create(draw.family, identity, settings, create)
        summary = dataset_summary(dataset)
        rows.append(
            {
                "draw": draw.index,
                "label": draw.label(varied),
                "seed": seed,
                **summary,
                "cache_hit": hit,
                "cache_key": dataset.meta.get("cache_key"),
                "generation_seconds": float(dataset.meta.get("generation_seconds", 0.0)),
            }
        )
        ites[(draw.index, seed)] = dataset.ite
        bar.set_postfix(sate=f"{summary['sate']:+.3f}")
    bar.close()
    return SensitivityResult(
        request, family, varied, draws, identity, rows, ites, wall_seconds=time.perf_counter() - started
    )


# ---------------------------------------------------------------- report


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def _p(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:.2g}" if x < 1e-4 else f"{x:.4f}"


def _peq(x: float) -> str:
    """``p = 0.0123``."""
    return f"p = {_p(x)}"


def _abbrev(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def draw_table(result: SensitivityResult) -> str:
    """One row per phrasing draw: its phrasing indices and the SATE of each seed."""
    seeds = result.request.noise_seeds()
    sate, sd = result.table("sate"), result.table("sd_ite")
    headers = ["draw", "source seed", "phrasings", *[f"SATE seed {s}" for s in seeds]]
    headers += ["mean SATE", "sd across seeds", "mean sd(ITE)"]
    rows = []
    for d in result.draws:
        r = sate[d.index]
        rows.append(
            [d.index, d.source_seed, f"`{d.label(result.varied)}`", *[f"{v:+.4g}" for v in r],
             f"{r.mean():+.4g}", f"{r.std(ddof=1):.3g}", f"{sd[d.index].mean():.4g}"]
        )  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def decomposition_table(result: SensitivityResult) -> str:
    headers = [
        "summary", "grand mean", "between var (of draw means)", "within var (across seeds)", "ratio",
        "phrasing share (ICC) [95% CI]", "ANOVA F", "p", "Kruskal-Wallis p", "seed-blocked F", "p",
    ]  # fmt: skip
    rows = []
    for key, label in METRICS:
        d = decompose(result.table(key))
        lo, hi = d["icc_ci"]
        rows.append(
            [label, _fmt(d["grand_mean"]), _fmt(d["between_var"]), _fmt(d["within_var"]), _fmt(d["ratio"], 3),
             f"{_fmt(d['icc'], 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}]", _fmt(d["f"], 3), _p(d["anova_p"]),
             _p(d["kruskal_p"]), _fmt(d["blocked"]["f"], 3), _p(d["blocked"]["p"])]
        )  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def dataset_table(result: SensitivityResult) -> str:
    qs = [f"ite_q{round(q * 100):02d}" for q in QUANTILES]
    headers = ["draw", "seed", "n", "SATE", "sd(ITE)", "ITE != 0", *[f"q{k[-2:]}" for k in qs], "treated"]
    rows = [
        [r["draw"], r["seed"], r["n_units"], f"{r['sate']:+.4g}", f"{r['sd_ite']:.4g}",
         f"{r['share_nonzero']:.3f}", *[f"{r[k]:+.3g}" for k in qs], f"{r['treated_share']:.3f}"]
        for r in result.rows
    ]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)


def phrasing_legend(result: SensitivityResult) -> str:
    """The varied variables in label order, with the phrasings each draw used (abbreviated)."""
    used = {name: sorted({d.choice[name] for d in result.draws}) for name in result.varied}
    rows = []
    for pos, name in enumerate(result.varied):
        var = result.family.by_name[name]
        for i in used[name]:
            ph = var.phrasings[i]
            rows.append([pos + 1, name, i, _abbrev(ph.prefix + "{value}" + ph.suffix)])
    return tabulate(
        rows,
        headers=["label position", "variable", "phrasing", "text"],
        tablefmt="pipe",
        disable_numparse=True,
    )


def render_markdown(result: SensitivityResult, plot_name: str | None = None) -> str:
    req, fam = result.request, result.family
    dec = result.decompositions()
    sate, sdi = dec["sate"], dec["sd_ite"]
    n_units = sorted({r["n_units"] for r in result.rows})
    fixed = [v.name for v in fam.variables if v.name not in result.varied]
    hits = sum(r["cache_hit"] for r in result.rows)
    lines = [
        f"# Phrasing sensitivity: {fam.name}",
        "",
        "How much do a family's *true* effects move when only the wording of the structural equations "
        "changes, compared with changing only the exogenous noise? (An open question in Bynum & Cho "
        "2024.) Each of P phrasing draws fixes one phrasing per variable; each draw is generated with "
        "the same S noise seeds, so seed k of every draw has the same Gumbel noise and differs only in "
        "wording. Generated by `sdscm-bench sensitivity` (`sdscm_bench/sensitivity.py`).",
        "",
        f"- Family `{fam.name}` (spec fingerprint `{fam.fingerprint()}`), LM `{result.lm['lm']}` "
        f"({result.lm['dtype']}, {result.lm['device']}), scoring {fam.effective_scoring(req.scoring)}, "
        f"temperature {req.temperature}.",
        f"- Treatment {fam.treatment.variable} ({fam.treatment.control} -> {fam.treatment.treated}); "
        f"outcome: {fam.outcome.definition} of {fam.outcome.variable} = {fam.outcome.candidate!r}.",
        f"- n: P = {len(result.draws)} phrasing draws x S = {req.n_seeds} seeds "
        f"({', '.join(map(str, req.noise_seeds()))}) = {len(result.rows)} datasets of "
        f"{'/'.join(map(str, n_units))} units with a binary treatment value (N = {req.n_units} units asked).",
        f"- Varied: {len(result.varied)} variables ({', '.join(result.varied)})"
        + (f"; fixed at their first phrasing: {', '.join(fixed)}." if fixed else "."),
        f"- Command: `{result.command}`" if result.command else "- Command: (library call)",
        f"- Wall time of this run: {result.wall_seconds / 60:.1f} min ({hits}/{len(result.rows)} datasets "
        f"from the cache); generation time recorded in the datasets: {result.generation_seconds / 60:.1f} min.",
        "",
        "## Headline",
        "",
        f"- SATE: between-phrasing variance of the draw means {_fmt(sate['between_var'])} "
        f"(sd {_fmt(sate['sd_between'], 3)}) vs within-phrasing variance across seeds "
        f"{_fmt(sate['within_var'])} (sd {_fmt(sate['sd_within'], 3)}), ratio {_fmt(sate['ratio'], 3)}; "
        f"one-way ANOVA F({sate['df'][0]}, {sate['df'][1]}) = {_fmt(sate['f'], 3)}, {_peq(sate['anova_p'])}; "
        f"Kruskal-Wallis {_peq(sate['kruskal_p'])}; seed-blocked F {_peq(sate['blocked']['p'])}. "
        f"Share of a dataset's SATE variance due to phrasing (ICC) {_fmt(sate['icc'], 2)} "
        f"[95% CI {_fmt(sate['icc_ci'][0], 2)}, {_fmt(sate['icc_ci'][1], 2)}].",
        f"- sd(ITE): between {_fmt(sdi['between_var'])} vs within {_fmt(sdi['within_var'])}, "
        f"ratio {_fmt(sdi['ratio'], 3)}; ANOVA {_peq(sdi['anova_p'])}; Kruskal-Wallis "
        f"{_peq(sdi['kruskal_p'])}; ICC {_fmt(sdi['icc'], 2)} "
        f"[{_fmt(sdi['icc_ci'][0], 2)}, {_fmt(sdi['icc_ci'][1], 2)}].",
        _spread_sentence(result, sate),
        "",
        "Between var is the variance of the P per-draw means (it contains 1/S of the seed variance "
        "even when phrasing has no effect: then ratio ~ 1/S and F ~ 1). Within var is the pooled "
        "variance across seeds within a draw. ICC = sigma2_phrasing / (sigma2_phrasing + sigma2_seed) "
        "from the one-way random-effects ANOVA, with sigma2_phrasing = max(0, (MSB - MSW)/S); its CI is "
        "exact under normality. Seed-blocked F tests phrasing against the phrasing x seed interaction, "
        "using that the seeds' noise is shared across draws.",
        "",
        "## Variance decomposition",
        "",
        decomposition_table(result),
        "",
        "## SATE per phrasing draw",
        "",
        "`phrasings`: for each varied variable in turn (positions in the legend below), the index of "
        "the phrasing it uses in the spec (0 = first).",
        "",
        draw_table(result),
        "",
    ]
    if plot_name:
        lines += [f"![SATE and ITE distribution per phrasing draw]({plot_name})", ""]
    lines += [
        "## Every dataset",
        "",
        dataset_table(result),
        "",
        "## Phrasings used",
        "",
        phrasing_legend(result),
        "",
    ]
    return "\n".join(lines)


def _spread_sentence(result: SensitivityResult, sate: dict[str, Any]) -> str:
    """Phrasing vs seed spread of the SATE in sd units, the range of the draw means and their signs."""
    means = result.table("sate").mean(axis=1)
    sd_p, sd_s = math.sqrt(sate["sigma2_phrasing"]), math.sqrt(sate["sigma2_seed"])
    pos, neg = int((means > 0).sum()), int((means < 0).sum())
    signs = (
        f"the sign of the effect depends on the wording ({pos} draws positive, {neg} negative)"
        if pos and neg
        else "every draw has the same sign"
    )
    return (
        f"- In sd units: the SATE's phrasing component sd {_fmt(sd_p, 3)} is {_fmt(_ratio(sd_p, sd_s), 3)}x "
        f"its seed component sd {_fmt(sd_s, 3)} at N = {result.request.n_units} units (the seed component "
        f"shrinks like 1/sqrt(N); the phrasing component does not). Draw means range from "
        f"{means.min():+.4g} to {means.max():+.4g}: {signs}."
    )


def plot(result: SensitivityResult, path: Path) -> Path:
    """SATE and sd(ITE) per phrasing draw (one point per seed, lines join a seed across draws) and
    the pooled ITE distribution of each draw."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    seeds = result.request.noise_seeds()
    p = len(result.draws)
    xs = np.arange(p)
    labels = [str(d.index) for d in result.draws]  # the draws' phrasings: the report's table
    fig = Figure(figsize=(min(16.0, max(10.0, 4.0 + 1.5 * p)), 5.2))
    axes = fig.subplots(1, 3)
    for ax, key, title in ((axes[0], "sate", "SATE"), (axes[1], "sd_ite", "sd(ITE)")):
        table = result.table(key)
        for k, seed in enumerate(seeds):
            ax.plot(xs, table[:, k], marker="o", lw=0.8, alpha=0.75, label=f"seed {seed}")
        ax.scatter(xs, table.mean(axis=1), marker="_", s=400, color="black", zorder=3, label="draw mean")
        d = decompose(table)
        ax.set_title(
            f"{title}: between/within var = {_fmt(d['ratio'], 3)}\nANOVA {_peq(d['anova_p'])}", fontsize=9
        )
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_xlabel("phrasing draw (its phrasings: see the table)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    pooled = [np.concatenate([result.ites[(d.index, s)] for s in seeds]) for d in result.draws]
    axes[2].boxplot(pooled, positions=xs, widths=0.6, showfliers=False, whis=(5, 95))
    axes[2].set_xticks(xs, labels, fontsize=8)
    axes[2].set_title("ITE per phrasing draw\n(seeds pooled; box 25-75%, whiskers 5-95%)", fontsize=9)
    axes[2].set_xlabel("phrasing draw (its phrasings: see the table)", fontsize=8)
    axes[2].axhline(0, color="0.5", lw=0.6)
    axes[2].grid(alpha=0.3)
    fig.suptitle(
        f"{result.family.name} [{result.lm['lm']}, {result.lm['dtype']}]: P = {p} phrasing draws x "
        f"S = {len(seeds)} seeds x N = {result.request.n_units} units",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_report(result: SensitivityResult, out: str | Path) -> dict[str, Path]:
    """``<out>.md``, ``<out>.png`` and ``<out>.json``."""
    out = Path(out)
    if out.suffix in (".md", ".png", ".json"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"md": out.with_name(out.name + ".md"), "png": out.with_name(out.name + ".png"),
             "json": out.with_name(out.name + ".json")}  # fmt: skip
    plot(result, paths["png"])
    paths["md"].write_text(render_markdown(result, paths["png"].name), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(_finite(result.to_json()), indent=1, allow_nan=False, default=str) + "\n",
        encoding="utf-8",
    )
    return paths


def _finite(obj: Any) -> Any:
    """The object with NaN and infinite floats as None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
