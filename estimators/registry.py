"""Discovery and lookup of estimator adapters.

Adapters come from two places:

* **built-in**: every module of the ``estimators`` package (except ``base``, ``registry`` and
  ``_private`` ones) is imported and the adapter classes it decorates with :func:`register` are
  recorded. Adapter modules import their heavy libraries inside ``estimate``, so this is fast;
* **third-party**: distributions declare entry points in the group ``sdscm_bench.estimators``,
  each loading an :class:`~sdscm_bench.estimators.base.EstimatorAdapter` subclass::

      [project.entry-points."sdscm_bench.estimators"]
      my_method = "my_package.my_module:MyAdapter"

Adapters whose library is missing (``EstimatorAdapter.requires`` not importable), or whose
module or entry point fails to load, are listed by :func:`unavailable` with the reason and are
left out of :func:`available`; they never break discovery.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import threading
from typing import Any, TypeVar

from sdscm_bench.estimators.base import EstimatorAdapter

ENTRY_POINT_GROUP = "sdscm_bench.estimators"

_PACKAGE = "sdscm_bench.estimators"
_SKIP_MODULES = frozenset({"base", "registry"})

HOW_TO_ADD = (
    "To add one, write a module in the estimators/ package with an EstimatorAdapter subclass "
    "decorated with @sdscm_bench.estimators.registry.register (see estimators/diff_in_means.py), or expose "
    f"the class from another distribution through the entry-point group {ENTRY_POINT_GROUP!r}."
)


class UnknownEstimatorError(KeyError, ValueError):
    """No adapter is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class EstimatorUnavailableError(ImportError):
    """The adapter exists but cannot be used here (its library is not installed, ...)."""


A = TypeVar("A", bound=type[EstimatorAdapter])

# Classes registered by @register (import side effect of the built-in modules); kept apart from
# the entry-point ones so that refresh() can rebuild the latter.
_decorated: dict[str, type[EstimatorAdapter]] = {}
_adapters: dict[str, type[EstimatorAdapter]] = {}
_unavailable: dict[str, str] = {}
_discovered = False
_lock = threading.RLock()


def register(cls: A) -> A:
    """Class decorator recording an adapter under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, EstimatorAdapter)):
        raise TypeError(f"@register expects an EstimatorAdapter subclass, got {cls!r}")
    cls.check_class()
    with _lock:
        existing = _decorated.get(cls.name)
        if existing is not None and _qualname(existing) != _qualname(cls):
            raise ValueError(
                f"adapter name {cls.name!r} is registered twice: by {_qualname(existing)} "
                f"and by {_qualname(cls)}"
            )
        _decorated[cls.name] = cls
        if _discovered:
            _add(cls.name, cls)
    return cls


def available() -> dict[str, type[EstimatorAdapter]]:
    """Usable adapters, ``{name: class}``, sorted by name."""
    _discover()
    return dict(sorted(_adapters.items()))


def unavailable() -> dict[str, str]:
    """Adapters that were found but cannot be used, ``{name: reason}``."""
    _discover()
    return dict(sorted(_unavailable.items()))


def get_adapter(name: str, **params: Any) -> EstimatorAdapter:
    """An instance of the adapter registered as ``name``; ``params`` override its defaults.

    Raises :class:`UnknownEstimatorError` (a ``KeyError`` and ``ValueError``) for an unknown
    name and :class:`EstimatorUnavailableError` (an ``ImportError``) for a known one whose
    library is missing.
    """
    _discover()
    if name in _adapters:
        return _adapters[name](**params)
    if name in _unavailable:
        raise EstimatorUnavailableError(f"estimator {name!r} is unavailable: {_unavailable[name]}")
    names = ", ".join(sorted(_adapters)) or "(none)"
    extra = f" Unavailable here: {', '.join(sorted(_unavailable))}." if _unavailable else ""
    raise UnknownEstimatorError(
        f"unknown estimator {name!r}. Available estimators: {names}.{extra} {HOW_TO_ADD}"
    )


def describe() -> list[dict[str, Any]]:
    """One row per known adapter (available or not) for listings."""
    rows = []
    for name, cls in available().items():
        rows.append(
            {
                "name": name,
                "library": cls.library,
                "capabilities": sorted(cls.capabilities),
                "description": cls.description,
                "available": True,
                "reason": "",
            }
        )
    for name, reason in unavailable().items():
        rows.append({"name": name, "available": False, "reason": reason})
    return sorted(rows, key=lambda r: r["name"])


def refresh() -> None:
    """Forget the discovery results and discover again (e.g. after installing a plug-in)."""
    global _discovered
    with _lock:
        _discovered = False
        _adapters.clear()
        _unavailable.clear()
    _discover()


# -- internals ------------------------------------------------------------------------------------


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _add(name: str, cls: type[EstimatorAdapter]) -> None:
    ok, reason = cls.availability()
    if ok:
        _adapters[name] = cls
        _unavailable.pop(name, None)
    else:
        _unavailable[name] = reason
        _adapters.pop(name, None)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    with _lock:
        if _discovered:
            return
        package = importlib.import_module(_PACKAGE)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name in _SKIP_MODULES or info.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"{_PACKAGE}.{info.name}")
            except Exception as exc:  # a broken module must not break discovery
                _unavailable[info.name] = f"module {_PACKAGE}.{info.name} failed to import: {exc!r}"
        for name, cls in _decorated.items():
            _add(name, cls)
        _discover_entry_points()
        _discovered = True


def _discover_entry_points() -> None:
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:
        _unavailable[f"<entry points {ENTRY_POINT_GROUP}>"] = f"could not be read: {exc!r}"
        return
    for ep in eps:
        try:
            obj = ep.load()
        except Exception as exc:
            _unavailable[ep.name] = f"entry point {ep.value!r} failed to load: {exc!r}"
            continue
        if not (isinstance(obj, type) and issubclass(obj, EstimatorAdapter)):
            _unavailable[ep.name] = f"entry point {ep.value!r} is not an EstimatorAdapter subclass"
            continue
        try:
            obj.check_class()
        except TypeError as exc:
            _unavailable[ep.name] = f"entry point {ep.value!r}: {exc}"
            continue
        if obj.name != ep.name:
            _unavailable[ep.name] = (
                f"entry point {ep.name!r} loads an adapter named {obj.name!r}; the names must match"
            )
            continue
        if obj.name in _adapters and _qualname(_adapters[obj.name]) != _qualname(obj):
            _unavailable[f"{obj.name} ({ep.value})"] = (
                f"name clashes with {_qualname(_adapters[obj.name])}; ignored"
            )
            continue
        _add(obj.name, obj)
