"""Contract tests of the estimator adapters (``estimators/``) and of their registry.

Every available adapter is fitted on one small confounded dataset with a known heterogeneous
effect (a ``parametrize_with_checks``-style sweep): output shapes and intervals, accuracy for the
adjusting methods, bias of the unadjusted difference in means, determinism, silence, metadata.
Each adapter is fitted twice in all (the fits are cached across the tests of a module), the R-learner
a third time with its corrected interval. Intervals are checked against the true effect, never against
the adapter's own estimate.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import warnings
from typing import Any, ClassVar

import numpy as np
import pytest

from sdscm_bench.estimators import base as base_module
from sdscm_bench.estimators import registry
from sdscm_bench.estimators.base import CAPABILITIES, EffectEstimate, EstimatorAdapter, check_inputs
from sdscm_bench.estimators.conformal_ite import weighted_conformal_quantile

N, P = 600, 8
ADAPTERS = sorted(registry.available())
#: ATE tolerance for the adapters that adjust for confounding (the confounding bias of the
#: difference in means on this dataset is about 1.0).
ATE_TOL = 0.5
UNADJUSTED = {"diff_in_means"}
#: Library defaults too slow for a sweep over every adapter: paper_bart runs bartCause's 10 chains of
#: 500 + 500 draws (about 4 minutes per fit here). The sweep fits it with fewer MCMC draws (same model and
#: priors); tests/test_paper_adapters.py checks the defaults themselves.
SWEEP_PARAMS: dict[str, dict[str, int]] = {"paper_bart": {"n_chains": 2, "n_burn": 100, "n_samples": 100}}


def make_data(n: int = N, p: int = P, seed: int = 2024) -> dict[str, np.ndarray]:
    """Binary covariates, logistic confounded treatment, tau(x) = 1 + x0."""
    rng = np.random.default_rng(seed)
    X = rng.binomial(1, 0.5, size=(n, p)).astype(float)
    e = 1 / (1 + np.exp(-(-0.5 + 1.5 * X[:, 1] + 1.0 * X[:, 2] - 1.0 * X[:, 3])))
    t = rng.binomial(1, e).astype(int)
    tau = 1.0 + X[:, 0]
    y = 1.0 + 2.0 * X[:, 1] + 1.5 * X[:, 2] - X[:, 3] + 0.5 * X[:, 4] + tau * t + rng.normal(size=n)
    return {"X": X, "t": t, "y": y, "tau": tau}


DATA = make_data()
TRUE_ATE = float(DATA["tau"].mean())

_fits: dict[tuple[str, int, bool], tuple[EffectEstimate, list[str]]] = {}


def fit(name: str, seed: int = 0, again: bool = False) -> tuple[EffectEstimate, list[str]]:
    """Fitted estimate of adapter ``name`` and the warnings that escaped it (cached)."""
    key = (name, seed, again)
    if key not in _fits:
        adapter = registry.get_adapter(name, **SWEEP_PARAMS.get(name, {}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = adapter.estimate(DATA["X"], DATA["t"], DATA["y"], seed)
        _fits[key] = (est, [f"{w.category.__name__}: {w.message}" for w in caught])
    return _fits[key]


# -- every adapter ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ADAPTERS)
def test_metadata(name: str) -> None:
    cls = registry.available()[name]
    adapter = registry.get_adapter(name)
    assert adapter.name == name == cls.name
    assert isinstance(adapter.library, str) and adapter.library
    assert adapter.version != "not installed"
    assert adapter.description
    assert adapter.capabilities <= CAPABILITIES
    hyper = adapter.hyperparameters()
    assert json.loads(json.dumps(hyper)) == hyper
    assert hyper["random_state"] == "seed"
    fp = adapter.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == adapter.fingerprint() == registry.get_adapter(name).fingerprint()
    meta = adapter.metadata()
    assert meta["fingerprint"] == fp and meta["name"] == name
    json.dumps(meta)


@pytest.mark.parametrize("name", ADAPTERS)
def test_estimate_contract(name: str) -> None:
    adapter = registry.get_adapter(name)
    est, _ = fit(name)
    assert isinstance(est, EffectEstimate)
    est.validate(N, adapter.capabilities)  # shapes, lower <= upper, no NaN, declared outputs
    assert np.isfinite(est.ate)
    if "cate" in adapter.capabilities:
        assert est.cate.shape == (N,)
        assert est.ate == pytest.approx(est.cate.mean(), abs=0.5)
    if est.ate_interval is not None:
        lo, hi = est.ate_interval
        assert np.isfinite(lo) and np.isfinite(hi)
        assert lo <= hi
    if est.cate_interval is not None:
        assert est.cate_interval.shape == (N, 2)
        lo, hi = est.cate_interval[:, 0], est.cate_interval[:, 1]
        assert np.all(lo <= hi)
        assert np.mean(np.isfinite(lo) & np.isfinite(hi)) > 0.8


@pytest.mark.parametrize("name", [a for a in ADAPTERS if a not in UNADJUSTED])
def test_ate_close_to_truth(name: str) -> None:
    est, _ = fit(name)
    assert abs(est.ate - TRUE_ATE) < ATE_TOL, f"{name}: ATE {est.ate:.3f}, true {TRUE_ATE:.3f}"


@pytest.mark.parametrize("name", ADAPTERS)
def test_same_seed_same_result_and_quiet(name: str) -> None:
    first, warned_first = fit(name)
    second, warned_second = fit(name, again=True)
    assert first.ate == second.ate
    for attr in ("cate", "cate_interval"):
        a, b = getattr(first, attr), getattr(second, attr)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert first.ate_interval == second.ate_interval
    assert not warned_first and not warned_second, warned_first + warned_second


def test_diff_in_means_is_confounded() -> None:
    naive, _ = fit("diff_in_means")
    ols, _ = fit("ols_slearner")
    naive_err, ols_err = abs(naive.ate - TRUE_ATE), abs(ols.ate - TRUE_ATE)
    assert naive_err > 0.5
    assert naive_err > 3 * ols_err
    # and the interval misses the truth while the adjusted one covers it
    assert not naive.ate_interval[0] <= TRUE_ATE <= naive.ate_interval[1]
    assert ols.ate_interval[0] <= TRUE_ATE <= ols.ate_interval[1]


# -- intervals against the known true effect -------------------------------------------------
# The intervals are checked against the effect DATA was generated with, never against the adapter's own
# estimate (an interval always "covers" the estimate it is built around, however biased that is).

#: Adapters whose ATE interval is not expected to cover the truth, and why (each is tested below).
ATE_INTERVAL_MISSES = {
    "diff_in_means": "unadjusted: the interval is centred on the confounded difference (test_diff_in_means_is_confounded)",
    "rlearner": "causalml's analytic R-learner interval is about sqrt(n) too narrow, reported as returned by default "
    "(estimators/rlearner.py; test_rlearner_ate_interval_is_causalml_s_unless_corrected)",
}  # fmt: skip
#: Loose floor for the share of units whose CATE interval holds their true effect tau(x). The measured
#: shares at seed 0 are 0.82 (causal_forest_dml, the lowest) to 1.0 (BART, conformal): a nominal 95%
#: interval of a consistent method clears it with room; one built around a biased or shifted CATE, or
#: far too narrow, does not (test_cate_coverage_check_can_fail).
CATE_COVERAGE_FLOOR = 0.7


def covers(interval: tuple[float, float], truth: float, slack: float = 0.5) -> bool:
    """Whether ``truth`` lies in the interval widened by ``slack`` times its width on each side.

    A single dataset's interval misses the truth 5% of the time at the nominal level; the slack keeps a
    borderline miss under library drift from failing the suite, while an interval around a biased ATE
    (or a much too narrow one) still misses.
    """
    lo, hi = interval
    pad = slack * (hi - lo)
    return lo - pad <= truth <= hi + pad


def cate_coverage(est: EffectEstimate, tau: np.ndarray) -> float:
    """Share of units with a finite CATE interval that holds their true effect (an infinite one says nothing)."""
    lo, hi = est.cate_interval[:, 0], est.cate_interval[:, 1]
    finite = np.isfinite(lo) & np.isfinite(hi)
    return float(np.mean((lo[finite] <= tau[finite]) & (tau[finite] <= hi[finite])))


def with_capability(capability: str) -> list[str]:
    return [a for a in ADAPTERS if capability in registry.available()[a].capabilities]


@pytest.mark.parametrize("name", [a for a in with_capability("ate_interval") if a not in ATE_INTERVAL_MISSES])
def test_ate_interval_covers_the_true_ate(name: str) -> None:
    est, _ = fit(name)
    assert covers(est.ate_interval, TRUE_ATE), (
        f"{name}: ATE interval {est.ate_interval}, true ATE {TRUE_ATE:.3f}"
    )


@pytest.mark.parametrize("name", with_capability("cate_interval"))
def test_cate_intervals_cover_the_true_effect(name: str) -> None:
    est, _ = fit(name)
    coverage = cate_coverage(est, DATA["tau"])
    assert coverage >= CATE_COVERAGE_FLOOR, f"{name}: {coverage:.0%} of the CATE intervals hold tau(x)"
    # Both effect levels (tau = 1 where x0 = 0, 2 where x0 = 1) are covered, not just the common one.
    for level in (0, 1):
        rows = DATA["X"][:, 0] == level
        sub = EffectEstimate(ate=est.ate, cate_interval=est.cate_interval[rows])
        assert cate_coverage(sub, DATA["tau"][rows]) >= CATE_COVERAGE_FLOOR - 0.1, (name, level)


@pytest.mark.parametrize("name", with_capability("cate_interval"))
def test_cate_coverage_check_can_fail(name: str) -> None:
    """The check above rejects intervals that only hold the adapter's own estimate: a narrow band around it,
    or the adapter's own intervals moved by the size of the confounding bias."""
    est, _ = fit(name)
    tau = DATA["tau"]
    narrow = EffectEstimate(ate=est.ate, cate_interval=np.column_stack([est.cate - 0.01, est.cate + 0.01]))
    assert cate_coverage(narrow, tau) < CATE_COVERAGE_FLOOR
    finite = np.isfinite(est.cate_interval).all(axis=1)
    width = np.median(np.diff(est.cate_interval[finite], axis=1))
    if width < 3:  # not the conformal ITE intervals, which hold the noise of y as well
        shifted = EffectEstimate(ate=est.ate, cate_interval=est.cate_interval + 1.0)
        assert cate_coverage(shifted, tau) < CATE_COVERAGE_FLOOR


def test_ate_interval_misses_are_real() -> None:
    """The listed misses do miss (so the exemption is needed) and the slack does not hide them."""
    for name in ATE_INTERVAL_MISSES:
        if name in ADAPTERS:
            est, _ = fit(name)
            assert not covers(est.ate_interval, TRUE_ATE), name


def test_rlearner_ate_interval_is_causalml_s_unless_corrected() -> None:
    """The documented option: ``ate_interval="corrected"`` widens causalml's interval by sqrt(n) and covers."""
    if "rlearner" not in ADAPTERS:
        pytest.skip("causalml not installed")
    default, _ = fit("rlearner")
    corrected = registry.get_adapter("rlearner", ate_interval="corrected").estimate(
        DATA["X"], DATA["t"], DATA["y"], 0
    )
    assert corrected.ate == default.ate
    lo, hi = default.ate_interval
    np.testing.assert_allclose(np.diff(corrected.ate_interval), (hi - lo) * np.sqrt(N), rtol=1e-9)
    assert corrected.ate_interval[0] <= TRUE_ATE <= corrected.ate_interval[1]


def test_heterogeneous_cates_track_the_truth() -> None:
    for name in ("tlearner", "causal_forest_dml", "bcf"):
        if name in ADAPTERS:
            est, _ = fit(name)
            assert np.corrcoef(est.cate, DATA["tau"])[0, 1] > 0.5, name


# -- base -------------------------------------------------------------------------------------


def test_hyperparameter_override_changes_fingerprint() -> None:
    base = registry.get_adapter("rf_slearner")
    other = registry.get_adapter("rf_slearner", model={"kind": "random_forest", "n_estimators": 10})
    assert other.hyperparameters()["model"]["n_estimators"] == 10
    assert base.fingerprint() != other.fingerprint()
    # defaults are copied, not shared
    base.params["model"]["n_estimators"] = 1
    assert registry.get_adapter("rf_slearner").params["model"]["n_estimators"] != 1
    with pytest.raises(TypeError, match="unknown hyperparameters"):
        registry.get_adapter("rf_slearner", n_trees=3)


def test_run_checks_inputs_and_output() -> None:
    adapter = registry.get_adapter("ols_slearner")
    est = adapter.run(DATA["X"].tolist(), DATA["t"].astype(bool), DATA["y"], seed=0)
    assert est.cate.shape == (N,)
    with pytest.raises(ValueError, match="binary"):
        check_inputs(DATA["X"], DATA["t"] + 1, DATA["y"])
    with pytest.raises(ValueError, match="both"):
        check_inputs(DATA["X"], np.ones(N), DATA["y"])
    with pytest.raises(ValueError, match="shapes"):
        check_inputs(DATA["X"][:-1], DATA["t"], DATA["y"])
    with pytest.raises(ValueError, match="cate has shape"):
        EffectEstimate(ate=1.0, cate=np.zeros(3)).validate(4)
    with pytest.raises(ValueError, match="lower > upper"):
        EffectEstimate(ate=1.0, cate_interval=np.array([[1.0, 0.0]])).validate(1)
    with pytest.raises(ValueError, match="declared"):
        EffectEstimate(ate=1.0).validate(1, frozenset({"cate"}))


def test_weighted_conformal_quantile_matches_split_conformal_with_equal_weights() -> None:
    scores = np.arange(1.0, 20.0)  # m = 19 calibration scores
    q = weighted_conformal_quantile(scores, np.ones(19), np.ones(3), level=0.9)
    # unweighted split conformal: the ceil((m + 1) * 0.9) = 18th smallest score
    np.testing.assert_array_equal(q, [18.0, 18.0, 18.0])
    # a test point carrying most of the weight gets an infinite quantile
    assert np.isinf(weighted_conformal_quantile(scores, np.ones(19), np.array([10.0]), 0.9)[0])


# -- registry ---------------------------------------------------------------------------------


class ConstantAdapter(EstimatorAdapter):
    """A plug-in adapter, as a third-party package would expose it (not decorated)."""

    name = "test_constant"
    library = "numpy"
    capabilities = frozenset({"cate"})
    description = "always 0.5"
    default_params: ClassVar[dict[str, Any]] = {"value": 0.5}

    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        value = self.params["value"]
        return EffectEstimate(ate=value, cate=np.full(len(t), value))


class NeedsMissingLibrary(ConstantAdapter):
    name = "test_needs_missing"
    library = "not-a-real-distribution"
    requires = ("not_a_real_module_xyz",)


def _entry_points(**targets: str) -> Any:
    eps = [
        importlib.metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)
        for name, value in targets.items()
    ]

    def fake(**kwargs: Any) -> list[importlib.metadata.EntryPoint]:
        return eps if kwargs.get("group") == registry.ENTRY_POINT_GROUP else []

    return fake


@pytest.fixture
def plugin_registry(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Registry refreshed with fake entry points; restored afterwards."""

    def install(**targets: str) -> None:
        monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(**targets))
        registry.refresh()

    yield install
    monkeypatch.undo()
    registry.refresh()


def test_unknown_name_lists_available_and_how_to_add() -> None:
    with pytest.raises(KeyError) as info:
        registry.get_adapter("no_such_estimator")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "no_such_estimator" in message
    for name in ADAPTERS:
        assert name in message
    assert "register" in message and registry.ENTRY_POINT_GROUP in message


def test_entry_point_discovery(plugin_registry: Any) -> None:
    plugin_registry(
        test_constant=f"{__name__}:ConstantAdapter",
        test_needs_missing=f"{__name__}:NeedsMissingLibrary",
        test_broken="no_such_package_xyz.module:Adapter",
        test_not_adapter="json:dumps",
    )
    assert "test_constant" in registry.available()
    adapter = registry.get_adapter("test_constant", value=2.0)
    assert adapter.run(DATA["X"], DATA["t"], DATA["y"], seed=0).ate == 2.0
    assert set(ADAPTERS) <= set(registry.available())  # built-ins still there

    gone = registry.unavailable()
    assert "not_a_real_module_xyz" in gone["test_needs_missing"]
    assert "failed to load" in gone["test_broken"]
    assert "not an EstimatorAdapter" in gone["test_not_adapter"]
    with pytest.raises(registry.EstimatorUnavailableError, match="not_a_real_module_xyz"):
        registry.get_adapter("test_needs_missing")


def test_entry_points_are_forgotten_on_refresh(plugin_registry: Any) -> None:
    plugin_registry(test_constant=f"{__name__}:ConstantAdapter")
    assert "test_constant" in registry.available()
    plugin_registry()
    assert "test_constant" not in registry.available()


def test_catenets_reported_unavailable_without_catenets() -> None:
    try:
        import catenets  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("catenets is installed")
    gone = registry.unavailable()
    for name in ("catenets_tnet", "catenets_tarnet"):
        assert "catenets" in gone[name]
        with pytest.raises(ImportError, match="catenets"):
            registry.get_adapter(name)


def test_register_rejects_malformed_adapters() -> None:
    class BadName(ConstantAdapter):
        name = "Bad-Name"

    class BadCapability(ConstantAdapter):
        name = "bad_capability"
        capabilities = frozenset({"cate", "quantiles"})

    class Abstract(EstimatorAdapter):
        name = "abstract_one"
        library = "numpy"

    for cls in (BadName, BadCapability, Abstract):
        with pytest.raises(TypeError):
            registry.register(cls)
    with pytest.raises(ValueError, match="registered twice"):

        @registry.register
        class Clash(ConstantAdapter):
            name = "xlearner"


def test_discovery_is_fast_and_imports_no_heavy_library() -> None:
    code = (
        "import json, sys, time; t0 = time.perf_counter(); import sdscm_bench.estimators.registry as r; "
        "names = r.available(); dt = time.perf_counter() - t0; "
        "heavy = [m for m in ('causalml', 'econml', 'dowhy', 'stochtree', 'torch', 'sklearn', "
        "'pandas', 'catenets') if m in sys.modules]; "
        "fp = r.get_adapter('xlearner').fingerprint(); "
        "print(json.dumps({'names': sorted(names), 'heavy': heavy, 'seconds': dt, 'fp': fp}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["names"] == ADAPTERS
    assert result["seconds"] < 2.0
    assert result["fp"] == registry.get_adapter("xlearner").fingerprint()  # stable across processes


def test_unavailable_reason_names_the_extra_that_installs_the_library() -> None:
    class NeedsEconml(ConstantAdapter):
        name = "test_needs_econml"
        library = "econml"
        requires = ("not_a_real_module_xyz",)

    class NeedsStochtree(NeedsEconml):
        library = "stochtree"

    class ExplicitExtra(NeedsEconml):
        library = "some-other-distribution"
        extra = "dowhy"

    assert NeedsEconml.availability() == (
        False,
        "needs the Python module(s) not_a_real_module_xyz (PyPI distribution 'econml'), which is not "
        "installed: pip install 'sdscm-bench[econml]'",
    )
    assert NeedsStochtree.availability()[1].endswith("pip install 'sdscm-bench[bart]'")
    assert ExplicitExtra.availability()[1].endswith("pip install 'sdscm-bench[dowhy]'")
    # a library no extra installs: the distribution itself
    assert NeedsMissingLibrary.availability()[1].endswith("pip install not-a-real-distribution")
    assert ConstantAdapter.availability() == (True, "")


def test_builtin_fingerprints_hash_only_the_adapter_and_private_helpers() -> None:
    """Built-in adapters keep their scope: their own module and ``sdscm_bench.estimators._*``."""
    for name, cls in registry.available().items():
        closure = base_module._source_closure(cls.__module__)
        assert cls.__module__ in closure, name
        others = [m for m in closure if m != cls.__module__]
        assert all(m.startswith("sdscm_bench.estimators._") for m in others), (name, others)
    assert base_module._source_closure("sdscm_bench.estimators.linear_dml") == [
        "sdscm_bench.estimators._common",
        "sdscm_bench.estimators._econml",
        "sdscm_bench.estimators.linear_dml",
    ]


PLUGIN_FILES = {
    "__init__.py": "",
    "adapter.py": (
        "import numpy as np\n"
        "from sdscm_bench.estimators.base import EffectEstimate, EstimatorAdapter\n"
        "from . import helpers\n"
        "\n"
        "class PlugAdapter(EstimatorAdapter):\n"
        "    name = 'test_plug'\n"
        "    library = 'numpy'\n"
        "\n"
        "    def estimate(self, X, t, y, seed):\n"
        "        from testplug_xyz.sub.deep import scale  # lazy, as adapters import\n"
        "        return EffectEstimate(ate=scale(helpers.offset(y[t == 1].mean() - y[t == 0].mean())))\n"
    ),
    "helpers.py": "def offset(value):\n    return value + 0.0\n",
    "sub/__init__.py": "",
    "sub/deep.py": "from ..leaf import ONE\n\ndef scale(value):\n    return value * ONE\n",
    "leaf.py": "ONE = 1.0\n",
    "unused.py": "NOT_IMPORTED = True\n",
}


def _plug_fingerprint(root: Any) -> tuple[str, list[str]]:
    """Fingerprint and source closure of the fake third-party adapter, in a fresh process."""
    code = (
        "import json; from testplug_xyz.adapter import PlugAdapter; "
        "from sdscm_bench.estimators import base; "
        "print(json.dumps([PlugAdapter().fingerprint(), base._source_closure(PlugAdapter.__module__)]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    fp, closure = json.loads(out.stdout.strip().splitlines()[-1])
    return fp, closure


def test_third_party_fingerprint_covers_its_own_package_modules(tmp_path: Any) -> None:
    package = tmp_path / "testplug_xyz"
    for rel, text in PLUGIN_FILES.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text, encoding="utf-8")
    first, closure = _plug_fingerprint(tmp_path)
    # relative and absolute imports, at module level and inside estimate(), transitively
    assert closure == [
        "testplug_xyz",
        "testplug_xyz.adapter",
        "testplug_xyz.helpers",
        "testplug_xyz.leaf",
        "testplug_xyz.sub",
        "testplug_xyz.sub.deep",
    ]
    assert _plug_fingerprint(tmp_path)[0] == first  # stable across processes

    (package / "unused.py").write_text("NOT_IMPORTED = False\n", encoding="utf-8")
    assert _plug_fingerprint(tmp_path)[0] == first  # a module the adapter does not import

    (package / "helpers.py").write_text("def offset(value):\n    return value + 1.0\n", encoding="utf-8")
    second = _plug_fingerprint(tmp_path)[0]
    assert second != first  # a helper module of the adapter's own package

    (package / "leaf.py").write_text("ONE = 2.0\n", encoding="utf-8")
    assert _plug_fingerprint(tmp_path)[0] not in (first, second)  # reached through sub.deep
