"""The adapter interface every estimator implements.

An adapter wraps one causal effect estimator from some library behind a single numpy-in,
:class:`EffectEstimate`-out call::

    est = adapter.estimate(X, t, y, seed=0)

Adding an estimator means writing one short module in this package (or in a third-party
package exposed through the ``sdscm_bench.estimators`` entry-point group) with a subclass of
:class:`EstimatorAdapter` decorated with :func:`sdscm_bench.estimators.registry.register`.

This module must stay import-light: it is imported by ``sdscm_bench.estimators.registry`` on every start.
"""

from __future__ import annotations

import abc
import ast
import copy
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

#: Capabilities an adapter may declare beyond the (always present) point ATE.
CAPABILITIES = frozenset({"cate", "ate_interval", "cate_interval"})

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

#: The sdscm-bench extra that installs each adapter library (``pip install 'sdscm-bench[<extra>]'``),
#: so that an unavailable adapter can say what to install. Libraries of the core install are absent.
LIBRARY_EXTRAS: dict[str, str] = {
    "econml": "econml",
    "causalml": "causalml",
    "dowhy": "dowhy",
    "stochtree": "bart",
    "catenets": "catenets",
}


@dataclass
class EffectEstimate:
    """What an adapter returns for one dataset.

    ``ate`` is always set. ``cate`` (shape ``(n,)``) is the per-unit effect for the units that were
    passed in, ``None`` for ATE-only methods. Intervals are nominal 95%: ``ate_interval`` is a
    ``(lower, upper)`` pair and ``cate_interval`` has shape ``(n, 2)``. A bound may be ``±inf``
    where a method cannot bound the effect for a unit (weighted conformal intervals do this for
    units with extreme propensity); bounds are never NaN.
    """

    ate: float
    cate: np.ndarray | None = None
    ate_interval: tuple[float, float] | None = None
    cate_interval: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ate = float(self.ate)
        if self.cate is not None:
            self.cate = np.asarray(self.cate, dtype=float).reshape(-1)
        if self.ate_interval is not None:
            lo, hi = self.ate_interval
            self.ate_interval = (float(lo), float(hi))
        if self.cate_interval is not None:
            self.cate_interval = np.asarray(self.cate_interval, dtype=float)

    def validate(self, n: int, capabilities: frozenset[str] | None = None) -> EffectEstimate:
        """Check shapes and sanity; raise ``ValueError`` on a malformed estimate. Returns self."""
        if not np.isfinite(self.ate):
            raise ValueError(f"ATE is not finite: {self.ate}")
        if self.cate is not None:
            if self.cate.shape != (n,):
                raise ValueError(f"cate has shape {self.cate.shape}, expected ({n},)")
            if not np.all(np.isfinite(self.cate)):
                raise ValueError("cate has non-finite values")
        if self.ate_interval is not None:
            lo, hi = self.ate_interval
            if np.isnan(lo) or np.isnan(hi) or lo > hi:
                raise ValueError(f"bad ate_interval {self.ate_interval}")
        if self.cate_interval is not None:
            ci = self.cate_interval
            if ci.shape != (n, 2):
                raise ValueError(f"cate_interval has shape {ci.shape}, expected ({n}, 2)")
            if np.isnan(ci).any() or np.any(ci[:, 0] > ci[:, 1]):
                raise ValueError("cate_interval has NaN or lower > upper")
        if capabilities is not None:
            for cap, value in (
                ("cate", self.cate),
                ("ate_interval", self.ate_interval),
                ("cate_interval", self.cate_interval),
            ):
                if cap in capabilities and value is None:
                    raise ValueError(f"capability {cap!r} is declared but the estimate has no {cap}")
        return self


def check_inputs(X: Any, t: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coerce ``(X, t, y)`` to ``float (n, p)``, ``int 0/1 (n,)``, ``float (n,)`` and check them."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    t_arr = np.asarray(t).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if X.ndim != 2 or not (X.shape[0] == t_arr.shape[0] == y.shape[0]):
        raise ValueError(f"inconsistent shapes X{X.shape}, t{t_arr.shape}, y{y.shape}")
    if not np.isin(t_arr, (0, 1)).all():
        raise ValueError("t must be binary 0/1")
    t_arr = t_arr.astype(int)
    if t_arr.min() == t_arr.max():
        raise ValueError("t must contain both treated and control units")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    return X, t_arr, y


class EstimatorAdapter(abc.ABC):
    """Base class of all estimator adapters.

    Subclasses set the class attributes, optionally ``default_params`` (the tunable
    hyperparameters, overridable through ``__init__`` keyword arguments) and implement
    :meth:`estimate`. Heavy libraries are imported inside :meth:`estimate`, never at module
    level, so that discovering adapters stays fast.
    """

    #: The ``--estimator`` key, short snake_case.
    name: ClassVar[str]
    #: PyPI distribution providing the method (its version is reported and fingerprinted).
    library: ClassVar[str]
    #: Subset of :data:`CAPABILITIES`.
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: One line for listings.
    description: ClassVar[str] = ""
    #: Importable top-level modules that must be present for the adapter to work. Checked with
    #: ``importlib.util.find_spec`` (nothing is imported) by the registry.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The sdscm-bench extra that installs what ``requires`` names; ``None``: looked up from ``library``
    #: in :data:`LIBRARY_EXTRAS` (an adapter of the core install, or a third-party one, has none).
    extra: ClassVar[str | None] = None
    #: Other distributions whose versions change the results (fingerprinted too).
    also_depends_on: ClassVar[tuple[str, ...]] = ("numpy", "scikit-learn")
    #: Tunable hyperparameters (JSON-serialisable); instances may override them.
    default_params: ClassVar[dict[str, Any]] = {}
    #: How the harness encodes categorical covariates for this adapter: ``onehot`` (one indicator
    #: per non-reference candidate) or ``ordinal`` (candidate indices, as the paper's code did).
    covariate_encoding: ClassVar[str] = "onehot"

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.default_params)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown hyperparameters {sorted(unknown)}; "
                f"known: {sorted(self.default_params)}"
            )
        self.params: dict[str, Any] = copy.deepcopy({**self.default_params, **params})

    # -- metadata ---------------------------------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that determines the fit.

        Every random state is the ``seed`` passed to :meth:`estimate`; this is recorded as
        ``"random_state": "seed"``.
        """
        return copy.deepcopy({"random_state": "seed", **self.params})

    @property
    def version(self) -> str:
        return distribution_version(self.library)

    @classmethod
    def install_command(cls) -> str:
        """What to run to make the adapter available: the sdscm-bench extra when there is one, so
        that the pins the extra carries (dowhy's) come along, else the library itself."""
        extra = cls.extra or LIBRARY_EXTRAS.get(cls.library)
        return f"pip install 'sdscm-bench[{extra}]'" if extra else f"pip install {cls.library}"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, reason)`` without importing anything heavy."""
        missing = [m for m in cls.requires if not _importable(m)]
        if missing:
            return False, (
                f"needs the Python module(s) {', '.join(missing)} (PyPI distribution "
                f"{cls.library!r}), which is not installed: {cls.install_command()}"
            )
        return True, ""

    def library_versions(self) -> dict[str, str]:
        """Installed versions of the method's library and of every library it depends on for the fit
        (nuisance models included), for the provenance of each record."""
        return {dist: distribution_version(dist) for dist in (self.library, *self.also_depends_on)}

    def fingerprint(self) -> str:
        """sha256 over the source of the adapter's module and of the modules it imports, directly or
        not, that can change its results: the private helpers ``sdscm_bench.estimators._*`` and, for
        an adapter outside sdscm_bench, every module of its own top-level package; plus the
        hyperparameters and the versions of the libraries used (like asv's benchmark versions):
        equal fingerprints, comparable results."""
        h = hashlib.sha256()
        for module_name in _source_closure(type(self).__module__):
            h.update(f"{module_name}\0{_module_source(module_name)}\0".encode())
        h.update(json.dumps(self.hyperparameters(), sort_keys=True, default=str).encode())
        h.update(f"covariates={self.covariate_encoding}".encode())
        for dist, version in self.library_versions().items():
            h.update(f"{dist}=={version}".encode())
        return h.hexdigest()

    def metadata(self) -> dict[str, Any]:
        """Everything a result record needs to identify the estimator."""
        return {
            "name": self.name,
            "library": self.library,
            "version": self.version,
            "capabilities": sorted(self.capabilities),
            "description": self.description,
            "hyperparameters": self.hyperparameters(),
            "covariate_encoding": self.covariate_encoding,
            "fingerprint": self.fingerprint(),
        }

    # -- the work ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def estimate(self, X: np.ndarray, t: np.ndarray, y: np.ndarray, seed: int) -> EffectEstimate:
        """Fit on ``(X, t, y)`` and return the effects for these same units.

        ``X`` float ``(n, p)``, ``t`` int 0/1 ``(n,)``, ``y`` float ``(n,)``. Must be
        deterministic given ``seed``, single-threaded, and quiet.
        """

    def run(self, X: Any, t: Any, y: Any, seed: int) -> EffectEstimate:
        """:meth:`estimate` with the inputs coerced and checked and the output validated."""
        X, t, y = check_inputs(X, t, y)
        return self.estimate(X, t, y, int(seed)).validate(len(t), self.capabilities)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.library})>"

    # -- class checks -----------------------------------------------------------------------------

    @classmethod
    def check_class(cls) -> None:
        """Raise ``TypeError`` if the class attributes are malformed (used by ``register``)."""
        if inspect.isabstract(cls):
            raise TypeError(f"{cls.__name__} is abstract (does it implement estimate()?)")
        for attr in ("name", "library"):
            if not isinstance(getattr(cls, attr, None), str):
                raise TypeError(f"{cls.__name__} must set the class attribute {attr!r} (a str)")
        if not _NAME_RE.match(cls.name):
            raise TypeError(f"adapter name {cls.name!r} must be snake_case")
        if not isinstance(cls.capabilities, frozenset) or not cls.capabilities <= CAPABILITIES:
            raise TypeError(
                f"{cls.__name__}.capabilities must be a frozenset subset of {sorted(CAPABILITIES)}"
            )
        try:
            json.dumps(cls.default_params)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}.default_params is not JSON-serialisable: {exc}") from None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing
        return False


def distribution_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


_SOURCE_CACHE: dict[str, str] = {}
_CLOSURE_CACHE: dict[str, tuple[str, ...]] = {}
_HELPER_IMPORT_RE = re.compile(r"^\s*(?:from|import)\s+(sdscm_bench\.estimators\._\w+)", re.MULTILINE)


def _source_closure(module_name: str) -> list[str]:
    """``module_name`` and the modules it imports, transitively, whose source is fingerprinted.

    Always the ``sdscm_bench.estimators._*`` helpers. For a module outside ``sdscm_bench`` (a
    third-party adapter) also every module of its own top-level package that it imports, so that
    editing the plug-in's helper module changes the fingerprint as editing a built-in helper does.
    Other libraries are covered by their versions, not their source.
    """
    if module_name in _CLOSURE_CACHE:  # sources are read once per process too (_SOURCE_CACHE)
        return list(_CLOSURE_CACHE[module_name])
    top = module_name.partition(".")[0]
    own_package = top != "sdscm_bench"
    seen: list[str] = []
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        source = _module_source(name)
        todo.extend(_HELPER_IMPORT_RE.findall(source))
        if own_package:
            todo.extend(_imports_within(name, source, top))
    _CLOSURE_CACHE[module_name] = tuple(sorted(seen))
    return sorted(seen)


def _imports_within(module_name: str, source: str, top: str) -> list[str]:
    """Modules of the top-level package ``top`` that ``source`` (module ``module_name``) imports.

    Read from the syntax tree, imports inside functions included (adapters import lazily):
    ``import top.a``, ``from top.a import b`` and relative forms; ``b`` counts when it is a module,
    and the packages above each module count too (importing ``top.a.b`` runs ``top/__init__.py``
    and ``top/a/__init__.py``).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    package = module_name if _is_package(module_name) else module_name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.partition(".")[0] == top)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except (ImportError, ValueError):
                    continue
            if base.partition(".")[0] != top:
                continue
            found.append(base)
            found.extend(
                f"{base}.{alias.name}"
                for alias in node.names
                if alias.name != "*" and _module_exists(f"{base}.{alias.name}")
            )
    parents = {name.rsplit(".", k)[0] for name in found for k in range(1, name.count(".") + 1)}
    return sorted(set(found) | parents)


def _is_package(module_name: str) -> bool:
    module = sys.modules.get(module_name)
    if module is not None:
        return hasattr(module, "__path__")
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError, AttributeError):
        return False
    return spec is not None and spec.submodule_search_locations is not None


def _module_exists(module_name: str) -> bool:
    if module_name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def _module_source(module_name: str) -> str:
    if module_name not in _SOURCE_CACHE:
        module = sys.modules.get(module_name)
        try:
            if module is None:
                spec = importlib.util.find_spec(module_name)
                origin = spec.origin if spec is not None else None
                src = Path(origin).read_text(encoding="utf-8") if origin else ""
            else:
                src = inspect.getsource(module)
        except (OSError, TypeError, ValueError):
            src = ""
        _SOURCE_CACHE[module_name] = src
    return _SOURCE_CACHE[module_name]
