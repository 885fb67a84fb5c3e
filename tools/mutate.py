"""Mutation testing of the core modules: do the tests notice when the code is subtly wrong?

Line coverage says a line ran; a mutant says whether a test would fail if that line were wrong. For each
module this script makes small semantic changes (``>`` to ``>=``, ``+`` to ``-``, ``and`` to ``or``, a
negated condition, a dropped ``not``, a changed constant, ``return None``, two swapped arguments, ...),
runs the module's mapped tests against each mutant, and prints how many mutants the tests killed.

The working tree is never modified (other people run tests in it while this runs): each mutant is compiled
here and served from memory to a pytest subprocess by an import hook (a ``sitecustomize`` on that
subprocess's ``PYTHONPATH``, so xdist workers and CLI subprocesses get the mutant too). A baseline run
with the unmutated module first checks that the tests pass and really import the module through the hook.

Configuration, in pyproject.toml::

    [tool.sdscm-mutate]
    equivalent = "tools/mutate_equivalent.toml"   # mutants excluded from the score, each with a reason
    [tool.sdscm-mutate.modules]
    "sdscm_bench/store.py" = ["tests/test_store.py", "tests/test_results_file.py"]

An equivalent mutant (one no test can kill because it does not change behaviour) is listed by its id, as
``--list`` prints it::

    [[equivalent]]
    module = "sdscm_bench/store.py"
    id = "json_default: hasattr(obj, 'item') -> not hasattr(obj, 'item')"
    reason = "why no observable behaviour changes"

A line holding ``# pragma: no mutate`` is not mutated. Timeouts count as killed (the mutant made the tests
hang, which a test run notices). Usage::

    .venv/bin/python tools/mutate.py --module store            # one module (a path or its short name)
    .venv/bin/python tools/mutate.py --module store --list     # the mutants, without running anything
    .venv/bin/python tools/mutate.py                           # every configured module, then a table
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import json
import marshal
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mutate_site

ROOT = Path(__file__).resolve().parent.parent
PRAGMA = "pragma: no mutate"

# Every Python process of a test run imports this first (see tools/mutate_site.py, copied next to it).
_SITECUSTOMIZE = "import mutate_site\n\nmutate_site.install_from_env()\n"
# The baseline run: the mapped tests, unmutated, with per-test line coverage of the module.
_BASELINE = (
    "import json, os, sys, pytest, mutate_site\n"
    "plugin = mutate_site.CoveragePlugin(os.environ['SDSCM_MUTATE_ORIGIN'], os.environ['SDSCM_MUTATE_COVERAGE'])\n"
    "sys.exit(pytest.main(json.loads(os.environ['SDSCM_MUTATE_ARGS']), plugins=[plugin]))\n"
)

_COMPARE_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change: the ``index``-th node of ``ast.walk`` order, changed by ``apply``."""

    index: int
    line: int
    col: int
    id: str
    apply: Callable[[ast.AST], ast.AST | None]  # mutates the node in place or returns its replacement
    lines: tuple[int, int] = (0, 0)  # first and last line of the changed code (tests reaching them go first)


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | error
    seconds: float
    detail: str = ""


def _short(node: ast.AST, limit: int = 70) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


class _Context(ast.NodeVisitor):
    """Qualified names, parents, and the nodes never mutated (annotations, docstrings, f-string parts)."""

    def __init__(self) -> None:
        self.qualname: dict[int, str] = {}
        self.parent: dict[int, ast.AST] = {}
        self.skip: set[int] = set()
        self._stack: list[str] = []

    def _skip_tree(self, node: ast.AST | None) -> None:
        if node is not None:
            self.skip.update(id(n) for n in ast.walk(node))

    def generic_visit(self, node: ast.AST) -> None:
        self.qualname[id(node)] = ".".join(self._stack) or "<module>"
        for child in ast.iter_child_nodes(node):
            self.parent[id(child)] = node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and _is_str(body[0].value):
                self._skip_tree(body[0])
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._skip_tree(node.returns)
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                self._skip_tree(arg.annotation)
            for arg in (node.args.vararg, node.args.kwarg):
                if arg is not None:
                    self._skip_tree(arg.annotation)
        if isinstance(node, ast.AnnAssign):
            self._skip_tree(node.annotation)
        if isinstance(node, ast.JoinedStr):
            self._skip_tree(node)
        if isinstance(node, ast.If) and _short(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self._skip_tree(node)
        named = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if named:
            self._stack.append(node.name)
        super().generic_visit(node)
        if named:
            self._stack.pop()


def _replace_op(new: type) -> Callable[[ast.AST], None]:
    def apply(node: ast.AST) -> None:
        node.op = new()  # type: ignore[attr-defined]

    return apply


def _replace_cmp(position: int, new: type) -> Callable[[ast.AST], None]:
    def apply(node: ast.AST) -> None:
        node.ops[position] = new()  # type: ignore[attr-defined]

    return apply


def _set_field(field: str, value: Callable[[ast.AST], ast.AST]) -> Callable[[ast.AST], None]:
    def apply(node: ast.AST) -> None:
        setattr(node, field, value(getattr(node, field)))

    return apply


def _negate(expr: ast.AST) -> ast.AST:
    return ast.UnaryOp(op=ast.Not(), operand=expr)


def _negates_itself(test: ast.AST) -> bool:
    """A ``not x`` or ``a is b`` test: negating the whole test repeats the dropped-not or flipped-op mutant."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.NotEq | ast.In | ast.NotIn | ast.Is | ast.IsNot)
    )


def _tweak_number(value: int | float) -> int | float:
    if isinstance(value, int):
        return value + 1
    if value == 0:
        return 1.0
    return value / 2 if abs(value) < 1 else value + 1


def _mutations(
    node: ast.AST, ctx: _Context
) -> Iterator[tuple[str, str, Callable[[ast.AST], ast.AST | None]]]:
    """(before, after, apply) for each mutation of this node."""
    if isinstance(node, ast.Compare):
        for pos, op in enumerate(node.ops):
            new = _COMPARE_SWAP.get(type(op))
            if new is not None:
                changed = copy.deepcopy(node)
                changed.ops[pos] = new()
                yield _short(node), _short(changed), _replace_cmp(pos, new)
    elif isinstance(node, ast.BinOp | ast.AugAssign):
        new = _BINOP_SWAP.get(type(node.op))
        left, right = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
        if new is not None and not (_is_str(left) or _is_str(right)):
            changed = copy.deepcopy(node)
            changed.op = new()
            yield _short(node), _short(changed), _replace_op(new)
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        changed = copy.deepcopy(node)
        changed.op = new()
        yield _short(node), _short(changed), _replace_op(new)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield _short(node), _short(node.operand), lambda n: n.operand  # type: ignore[attr-defined]
    elif isinstance(node, ast.Constant) and not isinstance(node.value, str | bytes):
        parent = ctx.parent.get(id(node))
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub):
            return  # -1 is mutated as a whole by dropping the minus
        if isinstance(parent, ast.keyword) and parent.arg == "stacklevel":
            return  # only moves the line a warning names
        if isinstance(node.value, bool):
            new_value: object = not node.value
        elif isinstance(node.value, int | float):
            new_value = _tweak_number(node.value)
        else:
            return
        where = parent if isinstance(parent, ast.expr) else node

        def apply(n: ast.AST, v: object = new_value) -> None:
            n.value = v  # type: ignore[attr-defined]

        changed = copy.deepcopy(where)
        for sub in ast.walk(changed):
            if (
                isinstance(sub, ast.Constant)
                and sub.lineno == node.lineno
                and sub.col_offset == node.col_offset
            ):
                sub.value = new_value
        yield _short(where), _short(changed), apply
    elif isinstance(node, ast.If | ast.While | ast.IfExp):
        if not _negates_itself(node.test):
            yield f"if {_short(node.test)}", f"if not ({_short(node.test)})", _set_field("test", _negate)
    elif isinstance(node, ast.comprehension):
        for pos, cond in enumerate(node.ifs):
            if _negates_itself(cond):
                continue

            def apply_if(n: ast.AST, p: int = pos) -> None:
                n.ifs[p] = _negate(n.ifs[p])  # type: ignore[attr-defined]

            yield f"if {_short(cond)}", f"if not ({_short(cond)})", apply_if
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield (
                f"return {_short(node.value)}",
                "return None",
                _set_field("value", lambda _: ast.Constant(None)),
            )
    elif isinstance(node, ast.Call):
        args = node.args
        if len(args) >= 2 and not any(isinstance(a, ast.Starred) for a in args[:2]):
            if ast.dump(args[0]) != ast.dump(args[1]):
                changed = copy.deepcopy(node)
                changed.args[0], changed.args[1] = changed.args[1], changed.args[0]

                def swap(n: ast.AST) -> None:
                    n.args[0], n.args[1] = n.args[1], n.args[0]  # type: ignore[attr-defined]

                yield _short(node), _short(changed), swap
    elif isinstance(node, ast.Break):
        yield "break", "continue", lambda n: ast.copy_location(ast.Continue(), n)
    elif isinstance(node, ast.Continue):
        yield "continue", "break", lambda n: ast.copy_location(ast.Break(), n)


def _span(node: ast.AST) -> tuple[int, int]:
    """The lines a mutation of ``node`` changes (an if's test, not its body)."""
    if isinstance(node, ast.If | ast.While | ast.IfExp):
        node = node.test
    if isinstance(node, ast.comprehension):
        parts = [node.target, node.iter, *node.ifs]
        return min(p.lineno for p in parts), max(p.end_lineno or p.lineno for p in parts)
    first = getattr(node, "lineno", 0)
    return first, getattr(node, "end_lineno", None) or first


def generate(source: str) -> list[Mutant]:
    """Every mutant of a module's source, in source order, with ids unique within the module."""
    tree = ast.parse(source)
    ctx = _Context()
    ctx.visit(tree)
    lines = source.splitlines()
    found: list[Mutant] = []
    seen: Counter[str] = Counter()
    for index, node in enumerate(ast.walk(tree)):
        # a comprehension has no position of its own: its target's stands for it
        where = node.target if isinstance(node, ast.comprehension) else node
        if id(node) in ctx.skip or not hasattr(where, "lineno"):
            continue
        line = where.lineno
        if PRAGMA in lines[line - 1]:
            continue
        for before, after, apply in _mutations(node, ctx):
            if before == after:
                continue
            base = f"{ctx.qualname.get(id(node), '<module>')}: {before} -> {after}"
            seen[base] += 1
            ident = base if seen[base] == 1 else f"{base} [{seen[base]}]"
            found.append(Mutant(index, line, where.col_offset, ident, apply, _span(node)))
    found.sort(key=lambda m: (m.line, m.col, m.index))
    return found


def mutated_code(source: str, mutant: Mutant | None, filename: str) -> bytes:
    """The marshalled code object of the module with ``mutant`` applied (None: unmutated)."""
    tree = ast.parse(source)
    if mutant is not None:
        for index, node in enumerate(ast.walk(tree)):
            if index == mutant.index:
                replacement = mutant.apply(node)
                if replacement is not None:
                    _replace_node(tree, node, replacement)
                break
        ast.fix_missing_locations(tree)
    return marshal.dumps(compile(tree, filename, "exec", dont_inherit=True))


def _replace_node(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    ast.copy_location(new, old)
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[[i for i, v in enumerate(value) if v is old][0]] = new
                return
    raise ValueError("mutated node not found in its tree")


# --- configuration -------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    modules: dict[str, list[str]]
    equivalent: dict[str, dict[str, str]]  # module -> id -> reason
    equivalent_file: Path | None
    package_dirs: dict[str, str]


def load_config(pyproject: Path = ROOT / "pyproject.toml") -> Config:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    table = data.get("tool", {}).get("sdscm-mutate", {})
    modules = {str(k): [str(t) for t in v] for k, v in table.get("modules", {}).items()}
    package_dirs = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    eq_name = table.get("equivalent")
    eq_path = ROOT / eq_name if eq_name else None
    equivalent: dict[str, dict[str, str]] = {}
    if eq_path is not None and eq_path.is_file():
        for entry in tomllib.loads(eq_path.read_text(encoding="utf-8")).get("equivalent", []):
            if not entry.get("reason"):
                raise SystemExit(f"{eq_path}: equivalent mutant {entry.get('id')!r} has no reason")
            equivalent.setdefault(entry["module"], {})[entry["id"]] = entry["reason"]
    return Config(modules, equivalent, eq_path, package_dirs)


def module_name(path: str, package_dirs: dict[str, str]) -> str:
    """The import name of a source file, honouring setuptools' package-dir (estimators/ is a subpackage)."""
    rel = Path(path).with_suffix("")
    best = ""
    for package, folder in package_dirs.items():
        folder_parts = Path(folder).parts
        if rel.parts[: len(folder_parts)] == folder_parts and len(package) >= len(best):
            best = package
            rest = rel.parts[len(folder_parts) :]
    if best:
        return ".".join([best, *rest]).removesuffix(".__init__")
    return ".".join(rel.parts).removesuffix(".__init__")


def resolve_module(name: str, config: Config) -> str:
    """A configured module from its path or short name (``store`` for ``sdscm_bench/store.py``)."""
    if name in config.modules:
        return name
    matches = [m for m in config.modules if Path(m).stem == name or m.endswith("/" + name)]
    if len(matches) == 1:
        return matches[0]
    if Path(ROOT / name).is_file():
        return name
    raise SystemExit(f"unknown module {name!r}; configured: {', '.join(config.modules)}")


# --- running -------------------------------------------------------------------------------------


class Runner:
    """Runs a module's tests against served code objects: a baseline subprocess, then fork servers."""

    def __init__(
        self, module: str, tests: list[str], workdir: Path, pytest_args: list[str], name: str
    ) -> None:
        self.module = module
        self.tests = tests
        self.workdir = workdir
        self.name = name
        self.origin = str(ROOT / module)
        # --assert=plain: pytest's assertion rewriter also claims the modules of its plugins (sdscm_bench is
        # one) and would load them from disk, ahead of the hook; failing tests still fail without it.
        self.args = ["-x", "-q", "-p", "no:cacheprovider", "--assert=plain", *pytest_args, *tests]
        self.coverage: dict[str, list[int]] = {}
        self.outside: set[int] = set()
        self._servers: queue.Queue[subprocess.Popen[str]] = queue.Queue()
        self._all: list[subprocess.Popen[str]] = []
        site = workdir / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
        shutil.copy(Path(__file__).with_name("mutate_site.py"), site / "mutate_site.py")
        self.env = dict(os.environ)
        self.env.setdefault("OMP_NUM_THREADS", "1")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), self.env.get("PYTHONPATH")]))
        for key in mutate_site.ENV:
            self.env.pop(key, None)

    def _mutant_env(self, tag: str) -> dict[str, str]:
        return {
            "SDSCM_MUTATE_MODULE": self.name,
            "SDSCM_MUTATE_CODE": str(self.workdir / f"{tag}.code"),
            "SDSCM_MUTATE_ORIGIN": self.origin,
            "SDSCM_MUTATE_MARKER": str(self.workdir / f"{tag}.loaded"),
        }

    def baseline(self, code: bytes) -> tuple[bool, float, str]:
        """Run the unmutated tests with coverage; (passed and imported through the hook, seconds, output)."""
        env = {**self.env, **self._mutant_env("baseline")}
        Path(env["SDSCM_MUTATE_CODE"]).write_bytes(code)
        env["SDSCM_MUTATE_COVERAGE"] = str(self.workdir / "coverage.json")
        env["SDSCM_MUTATE_ARGS"] = json.dumps(self.args)
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", _BASELINE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
        )
        seconds = time.monotonic() - start
        out = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or not Path(env["SDSCM_MUTATE_MARKER"]).is_file():
            why = "" if proc.returncode else "the tests never imported the module through the hook\n"
            return False, seconds, why + "\n".join(out.splitlines()[-30:])
        doc = json.loads(Path(env["SDSCM_MUTATE_COVERAGE"]).read_text(encoding="utf-8"))
        self.coverage, self.outside = doc["tests"], set(doc["outside"])
        self.preload = doc["modules"]
        return True, seconds, out

    def start_servers(self, n: int) -> None:
        for _ in range(n):
            server = subprocess.Popen(
                [sys.executable, "-c", "import mutate_site; mutate_site.serve()"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(json.dumps({"preload": self.preload, "root": str(ROOT)}) + "\n")
            server.stdin.flush()
            if not json.loads(server.stdout.readline() or "{}").get("ready"):
                raise SystemExit("the mutant fork server did not start")
            self._servers.put(server)
            self._all.append(server)

    def reaching(self, mutant: Mutant) -> list[str]:
        """The tests that ran a line of the mutated code in the baseline, in collection order."""
        span = set(range(mutant.lines[0], mutant.lines[1] + 1))
        return [test for test, lines in self.coverage.items() if span.intersection(lines)]

    def run(self, code: bytes, tag: str, timeout: float, first: list[str]) -> tuple[str, float, str]:
        """(status, seconds, tail of the output): killed (tests failed), survived, timeout or error."""
        env = self._mutant_env(tag)
        code_path, marker, log = Path(env["SDSCM_MUTATE_CODE"]), Path(env["SDSCM_MUTATE_MARKER"]), ""
        code_path.write_bytes(code)
        server = self._servers.get()
        start = time.monotonic()
        try:
            request = {"env": env, "args": self.args, "first": first, "timeout": timeout, "cwd": str(ROOT)}
            request["log"] = str(self.workdir / f"{tag}.log")
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            rc = json.loads(server.stdout.readline())["rc"]
        finally:
            self._servers.put(server)
            code_path.unlink(missing_ok=True)
        seconds = time.monotonic() - start
        loaded = marker.is_file()
        marker.unlink(missing_ok=True)
        log_path = self.workdir / f"{tag}.log"
        if log_path.is_file():
            log = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-15:])
            log_path.unlink()
        if rc is None:
            return "timeout", seconds, ""
        # pytest exit codes: 0 passed, 1 tests failed, 2 interrupted (e.g. an import error), 3 internal error
        if rc == 0:
            return ("survived", seconds, "") if loaded else ("error", seconds, "module never imported")
        if rc in (1, 2, 3):
            return "killed", seconds, log
        return "error", seconds, f"pytest exit code {rc}\n{log}"

    def close(self) -> None:
        """Stop the fork servers (and, through their process groups, anything a test left running)."""
        for server in self._all:
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait()


def mutate_module(module: str, config: Config, args: argparse.Namespace) -> dict[str, object]:
    source = (ROOT / module).read_text(encoding="utf-8")
    mutants = generate(source)
    equivalent = config.equivalent.get(module, {})
    known = {m.id for m in mutants}
    stale = sorted(set(equivalent) - known)
    excluded = [m for m in mutants if m.id in equivalent]
    if args.line:
        mutants = [m for m in mutants if m.line in args.line]
    todo = [m for m in mutants if m.id not in equivalent]
    tests = args.tests or config.modules.get(module, [])
    print(f"\n== {module}  ({len(todo)} mutants; tests: {' '.join(tests) or 'NONE'})", flush=True)
    if not tests:
        raise SystemExit(f"{module}: no tests mapped; add it to [tool.sdscm-mutate.modules] or pass --tests")
    name = module_name(module, config.package_dirs)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="sdscm-mutate-") as tmp:
        runner = Runner(module, tests, Path(tmp), args.pytest_args, name)
        try:
            ok, base_seconds, tail = runner.baseline(mutated_code(source, None, runner.origin))
            if not ok:
                raise SystemExit(f"{module}: the unmutated baseline does not pass:\n{tail}")
            timeout = args.timeout or max(30.0, 3 * base_seconds + 10)
            print(f"   baseline passes in {base_seconds:.1f}s; per-mutant timeout {timeout:.0f}s", flush=True)
            runner.start_servers(max(1, args.jobs))
            # The unmutated code through the fork server must pass too, or every "kill" would be the server's.
            status, _, detail = runner.run(mutated_code(source, None, runner.origin), "check", timeout, [])
            if status != "survived":
                raise SystemExit(
                    f"{module}: the unmutated code fails in the fork server ({status}):\n{detail}"
                )

            def one(mutant: Mutant) -> Outcome:
                try:
                    code = mutated_code(source, mutant, runner.origin)
                except (SyntaxError, ValueError, TypeError) as exc:
                    return Outcome(mutant, "error", 0.0, f"does not compile: {exc}")
                reaching = runner.reaching(mutant)
                status, seconds, detail = runner.run(code, f"m{mutant.index}-{id(mutant)}", timeout, reaching)
                if status == "survived" and not reaching:
                    detail = "no test runs this code" + (
                        " (outside tests)" if mutant.line in runner.outside else ""
                    )
                return Outcome(mutant, status, seconds, detail)

            pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
            try:
                for n, outcome in enumerate(pool.map(one, todo), start=1):
                    outcomes.append(outcome)
                    if args.verbose:
                        m = outcome.mutant
                        print(
                            f"   [{n}/{len(todo)}] {outcome.status:8} {outcome.seconds:5.1f}s L{m.line} {m.id}"
                        )
                    else:
                        mark = {"killed": ".", "survived": "S", "timeout": "T", "error": "E"}[outcome.status]
                        print(mark, end="" if n % 80 else "\n", flush=True)
            except KeyboardInterrupt:
                runner.close()  # unblocks the workers waiting on a server
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
            # Tests edited (and briefly failing) during the run would count as kills: check again at the end.
            status, _, detail = runner.run(mutated_code(source, None, runner.origin), "recheck", timeout, [])
            if status != "survived":
                print(f"\n   WARNING: the unmutated code now fails ({status}): the tests changed during the run, so "
                      f"kills may be false; rerun\n{detail}")  # fmt: skip
        finally:
            runner.close()
    print()
    counts = Counter(o.status for o in outcomes)
    scored = counts["killed"] + counts["survived"] + counts["timeout"]
    rate = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
    print(
        f"   mutants {len(outcomes)}  killed {counts['killed']}  survived {counts['survived']}  "
        f"timeouts {counts['timeout']}  errors {counts['error']}  equivalent (excluded) {len(excluded)}  "
        f"kill rate {rate:.1%}"
    )
    for title, wanted in (("survived", "survived"), ("errors", "error")):
        rows = [o for o in outcomes if o.status == wanted]
        if rows:
            print(f"   {title}:")
            for o in rows:
                note = f"   [{o.detail}]" if wanted == "survived" and o.detail else ""
                print(f"     L{o.mutant.line}: {o.mutant.id}{note}")
                if wanted == "error" and o.detail:
                    print("       " + o.detail.replace("\n", "\n       "))
    if excluded:
        print("   equivalent (excluded from the score):")
        for m in excluded:
            print(f"     L{m.line}: {m.id}\n       reason: {equivalent[m.id]}")
    if stale:
        print(f"   stale entries in {config.equivalent_file} (no such mutant any more): {stale}")
    return {"module": module, "mutants": len(outcomes), "excluded": len(excluded), "rate": rate, **counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", "-m", action="append", help="module path or short name (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--tests", nargs="+", help="test files to run instead of the configured ones")
    parser.add_argument("--line", type=int, action="append", help="only mutants on this line (repeatable)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3x the baseline + 10)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="mutants tested in parallel (default 1)")
    parser.add_argument("--verbose", "-v", action="store_true", help="one line per mutant")
    parser.add_argument(
        "--pytest-args", nargs=argparse.REMAINDER, default=[], help="extra pytest arguments (last option)"
    )
    args = parser.parse_args(argv)
    config = load_config()
    modules = [resolve_module(m, config) for m in args.module] if args.module else list(config.modules)
    if args.list:
        for module in modules:
            equivalent = config.equivalent.get(module, {})
            mutants = generate((ROOT / module).read_text(encoding="utf-8"))
            print(f"== {module}: {len(mutants)} mutants ({len(equivalent)} listed as equivalent)")
            for m in mutants:
                if not args.line or m.line in args.line:
                    print(f"  L{m.line}: {m.id}{'   [equivalent]' if m.id in equivalent else ''}")
        return 0
    results = []
    try:
        for module in modules:
            results.append(mutate_module(module, config, args))
    except KeyboardInterrupt:
        print("\ninterrupted; the working tree was never modified", file=sys.stderr)
        return 130
    print("\n| module | mutants | killed | survived | timeouts | errors | equivalent | kill rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['module']} | {r['mutants']} | {r.get('killed', 0)} | {r.get('survived', 0)} | "
            f"{r.get('timeout', 0)} | {r.get('error', 0)} | {r['excluded']} | {r['rate']:.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
