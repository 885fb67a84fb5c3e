"""The test-process side of tools/mutate.py: the import hook, per-test line coverage, and a fork server.

Every Python process of a mutant's test run imports this first (a ``sitecustomize`` on its
``PYTHONPATH``), so the mutated module is served from memory (a marshalled code object, line numbers
those of the real file) in the pytest process and in any subprocess a test starts; the working tree is
never modified. The fork server imports the heavy third-party libraries once and forks a fresh child per
mutant, so a mutant costs its tests, not the interpreter's start-up.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import marshal
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

ENV = ("SDSCM_MUTATE_MODULE", "SDSCM_MUTATE_CODE", "SDSCM_MUTATE_ORIGIN", "SDSCM_MUTATE_MARKER")


class _MutantLoader(importlib.abc.Loader):
    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        with open(os.environ["SDSCM_MUTATE_CODE"], "rb") as fh:
            code = marshal.load(fh)
        with open(os.environ["SDSCM_MUTATE_MARKER"], "a") as fh:  # proof that the tests imported it
            fh.write(f"{os.getpid()}\n")
        exec(code, module.__dict__)


class _MutantFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != os.environ.get("SDSCM_MUTATE_MODULE"):
            return None
        return importlib.util.spec_from_file_location(
            fullname, os.environ["SDSCM_MUTATE_ORIGIN"], loader=_MutantLoader()
        )


def install_from_env() -> None:
    """Serve the module named in the environment from the code file named there (no-op without it)."""
    if os.environ.get("SDSCM_MUTATE_MODULE") and not any(isinstance(f, _MutantFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MutantFinder())


class CoveragePlugin:
    """A pytest plugin recording which lines of one file each test runs (setup, call and teardown)."""

    def __init__(self, origin: str, out: str) -> None:
        self.origin, self.out = origin, out
        self.lines: dict[str, set[int]] = {}
        self.current: set[int] = set()
        self.outside: set[int] = set()  # run outside any test: at import, or by a wider-scoped fixture
        self.current = self.outside
        sys.settrace(self._global)
        threading.settrace(self._global)

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != self.origin:
            return None
        self.current.add(frame.f_lineno)
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self.current.add(frame.f_lineno)
        return self._local

    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> None:
        self.current = self.lines.setdefault(item.nodeid, set())

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.current = self.outside

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        sys.settrace(None)
        modules = sorted({name.partition(".")[0] for name in list(sys.modules)})
        doc = {"tests": {k: sorted(v) for k, v in self.lines.items()}, "outside": sorted(self.outside)}
        Path(self.out).write_text(json.dumps({**doc, "modules": modules}), encoding="utf-8")


class OrderPlugin:
    """Runs the tests that reach the mutated lines first (with -x a killed mutant stops early)."""

    def __init__(self, first: list[str]) -> None:
        self.rank = {nodeid: i for i, nodeid in enumerate(first)}

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list[Any]) -> None:
        last = len(self.rank)
        items.sort(key=lambda item: self.rank.get(item.nodeid, last))


def _preload(names: list[str], root: Path) -> None:
    """Import the third-party libraries the baseline used (never the project's own modules)."""
    for name in names:
        if name in sys.modules or name.startswith("__") or name in ("sitecustomize", "mutate_site"):
            continue
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        origin = getattr(spec, "origin", None) or ""
        if not origin or (origin.startswith(str(root)) and not origin.startswith(sys.prefix)):
            continue
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a library that fails here is imported by the child, or not
            pass


def _child(request: dict[str, Any]) -> None:
    """In the forked child: serve the mutant, run pytest, exit with its status (never returns)."""
    os.setsid()
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.environ.update(request["env"])
    install_from_env()
    os.chdir(request["cwd"])
    status = 3
    try:
        import pytest

        status = int(pytest.main(request["args"], plugins=[OrderPlugin(request["first"])]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def serve() -> None:
    """Read one JSON request a line; fork a child per request; answer ``{"rc": int | None}`` (None: timeout)."""
    request = json.loads(sys.stdin.readline())
    _preload(request["preload"], Path(request["root"]))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        deadline = time.monotonic() + request["timeout"]
        rc: int | None = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                _kill_group(pid)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        _kill_group(pid)  # whatever the tests started and left behind
        print(json.dumps({"rc": rc}), flush=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


if __name__ == "__main__":
    serve()
