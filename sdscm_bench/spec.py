"""SD-SCM spec files: parse, validate and order a DAG over text variables.

A spec is YAML, TOML or JSON (by extension). Every problem is reported as a
``SpecError`` naming the file, the offending item and what to change. Things that are legal but
probably not meant (post-treatment adjustment, a "hidden" setting that hides nothing, variables
that cannot affect the outcome) are reported as ``SpecWarning`` (see :func:`spec_warnings`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from sdscm_bench.errors import SpecError

SLOT = "{value}"
OUTCOME_DEFINITIONS = ("score", "probability", "category")
SCORING_MODES = ("sum", "mean")
#: Keys of a spec's ``quality:`` mapping (thresholds read by :mod:`sdscm_bench.diagnostics`).
QUALITY_KEYS = (
    "min_treated_share",
    "max_treated_share",
    "min_overlap_share",
    "min_ess_share",
    "min_nonzero_ite_share",
    "max_outcome_share",
    "max_value_share",
)
VARIANT_KEYS = ("temperature", "scoring", "quality")
#: The name that selects the family without a variant's overrides (``--variant base``).
BASE_VARIANT = "base"


class SpecWarning(UserWarning):
    """A spec is valid but probably not what its author meant; the message names the file, item and fix."""


def name_slug(text: str) -> str:
    """The test-id form of a name (``strong confounding`` -> ``strong_confounding``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


@dataclass(frozen=True)
class Phrasing:
    """Text before and after a variable's value."""

    prefix: str
    suffix: str

    def render(self, value: str) -> str:
        return f"{self.prefix}{value}{self.suffix}"


@dataclass(frozen=True)
class Variable:
    name: str
    candidates: tuple[str, ...]
    phrasings: tuple[Phrasing, ...]
    parents: tuple[str, ...] = ()
    exogenous: bool = False  # may not be intervened on: an exogenous root, or 'intervenable: false'
    temperature: float | None = None  # None: the global temperature (--temperature, default 1.0)


@dataclass(frozen=True)
class Variant:
    """Named generation overrides of a family (``variants:`` in the spec)."""

    name: str
    temperature: dict[str, float] = field(default_factory=dict)  # variable -> its own temperature
    scoring: str | None = None  # None: the family's scoring
    quality: dict[str, float | None] = field(default_factory=dict)  # merged over the family's


@dataclass(frozen=True)
class Treatment:
    variable: str
    control: str
    treated: str


@dataclass(frozen=True)
class Outcome:
    """How the numeric outcome y is read off the outcome variable.

    ``score``: the LM score of ``candidate`` (the paper's choice); ``probability``:
    its probability under the domain-restricted softmax; ``category``: 1 if the
    sampled value is ``candidate``, else 0.
    """

    variable: str
    definition: str
    candidate: str


@dataclass(frozen=True)
class Family:
    """One SD-SCM family: a DAG of text variables plus the causal question asked of it."""

    name: str
    variables: tuple[Variable, ...]
    treatment: Treatment
    outcome: Outcome
    settings: dict[str, tuple[str, ...]]
    separator: str = " "
    description: str = ""
    scoring: str | None = None  # the spec's default scoring mode; an explicit --scoring wins
    quality: dict[str, float | None] = field(default_factory=dict)  # diagnostics thresholds given
    variants: dict[str, Variant] = field(default_factory=dict)
    variant_name: str | None = None  # set on the family that Family.variant() returns
    path: str = field(default="<memory>", compare=False)

    @property
    def by_name(self) -> dict[str, Variable]:
        return {v.name: v for v in self.variables}

    def graph(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(v.name for v in self.variables)
        g.add_edges_from((p, v.name) for v in self.variables for p in v.parents)
        return g

    def order(self) -> list[str]:
        """Topological order; ties broken by declaration order so the order is stable."""
        rank = {v.name: i for i, v in enumerate(self.variables)}
        return list(nx.lexicographical_topological_sort(self.graph(), key=rank.__getitem__))

    def descendants(self, name: str) -> set[str]:
        return nx.descendants(self.graph(), name)

    def index_of(self, variable: str, candidate: str) -> int:
        return self.by_name[variable].candidates.index(candidate)

    def temperature_of(self, variable: str, default: float = 1.0) -> float:
        """The variable's own temperature, else ``default`` (the global temperature)."""
        own = self.by_name[variable].temperature
        return default if own is None else own

    def effective_scoring(self, requested: str | None = None) -> str:
        """An explicitly requested scoring mode, else the spec's (or its variant's), else ``sum``."""
        return requested or self.scoring or "sum"

    def fingerprint(self) -> str:
        """Hash of everything that changes generated data (not the file's path).

        Per-variable temperatures and the variant's name are in it; the spec-level scoring default
        (the effective scoring is in the cache key), the variant definitions and the quality
        thresholds are not. Fields at their defaults are left out, so specs that do not use them
        keep the fingerprints (and cache keys) they had before those fields existed.
        """
        payload = asdict(self)
        for key in ("path", "scoring", "quality", "variants"):
            payload.pop(key)
        if payload["variant_name"] is None:
            payload.pop("variant_name")
        for var in payload["variables"]:
            if var["temperature"] is None:
                var.pop("temperature")
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def variant(self, name: str | None) -> Family:
        """The family with the named variant's overrides applied (``None`` or ``base``: this family).

        Names match exactly or in their test-id form (``strong_confounding``). The result keeps
        ``name`` and has ``variant_name`` set, and its own fingerprint (so its own cache entries).
        """
        if name is None or name == BASE_VARIANT:
            if self.variant_name is not None:
                raise SpecError(self.path, f"variant '{self.variant_name}'", "is not the base family; "
                                "select the base from the family the spec file gives")  # fmt: skip
            return self
        found = self.variants.get(name) or next(
            (v for v in self.variants.values() if name_slug(v.name) == name_slug(name)), None
        )
        if found is None:
            listing = (
                ", ".join(repr(v) for v in self.variants) or "none; add a 'variants:' mapping to the spec"
            )
            raise SpecError(
                self.path, f"variant {name!r}", f"is not defined; this family's variants: {listing}"
            )
        if self.variant_name is not None:
            if found.name == self.variant_name:
                return self
            raise SpecError(self.path, f"variant {found.name!r}", f"cannot be applied on top of variant "
                            f"'{self.variant_name}'; apply it to the base family")  # fmt: skip
        variables = tuple(
            replace(v, temperature=found.temperature[v.name]) if v.name in found.temperature else v
            for v in self.variables
        )
        return replace(
            self,
            variables=variables,
            scoring=found.scoring or self.scoring,
            quality={**self.quality, **found.quality},
            variant_name=found.name,
        )


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), "file", f"cannot be read ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise SpecError(str(path), "file", "is not UTF-8 text; save it as UTF-8") from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise SpecError(str(path), "file", "unknown extension; use .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(str(path), "file", f"is not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), "file", "must hold a mapping with 'variables', 'treatment', 'outcome'")
    return data


def _parse_phrasing(path: str, var: str, text: Any) -> Phrasing:
    if not isinstance(text, str) or text.count(SLOT) != 1:
        raise SpecError(
            path, f"variable '{var}'", f"phrasing {text!r} must contain the slot {SLOT} exactly once"
        )
    prefix, suffix = text.split(SLOT)
    return Phrasing(prefix, suffix)


def _parse_variable(path: str, i: int, raw: Any) -> Variable:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise SpecError(path, f"variables[{i}]", "needs a non-empty 'name'")
    name = raw["name"]
    where = f"variable '{name}'"
    if name in RESERVED_NAMES or name.startswith("logp:") or "|do(" in name:
        raise SpecError(
            path, where, f"is a reserved column name of the dataset table ({sorted(RESERVED_NAMES)}, 'logp:...', "
            "'...|do(...)'); rename the variable"
        )  # fmt: skip
    unknown = set(raw) - {
        "name",
        "candidates",
        "phrasings",
        "parents",
        "exogenous",
        "intervenable",
        "temperature",
    }
    if unknown:
        raise SpecError(path, where, f"unknown keys {sorted(unknown)}")
    if "exogenous" in raw and not isinstance(raw["exogenous"], bool):
        raise SpecError(path, where, f"'exogenous: {raw['exogenous']!r}' must be true or false (unquoted)")
    cands = raw.get("candidates")
    if isinstance(cands, str):
        raise SpecError(
            path, where, f'\'candidates: {cands!r}\' is one string; give a list, e.g. ["low", "high"]'
        )
    if not isinstance(cands, list) or not cands:
        raise SpecError(path, where, "has an empty candidate set; list at least two 'candidates'")
    if any(isinstance(c, bool) or not isinstance(c, str | int | float) for c in cands):
        raise SpecError(
            path,
            where,
            f"candidates {cands} must be text; quote values like yes/no/on/off, which YAML reads as booleans",
        )
    cands = [str(c) for c in cands]
    if len(cands) < 2:
        raise SpecError(path, where, "has a single candidate; a variable needs at least two")
    dup = sorted({c for c in cands if cands.count(c) > 1})
    if dup:
        raise SpecError(path, where, f"has duplicate candidates {dup}")
    if any(not c.strip() for c in cands):
        raise SpecError(path, where, "has a blank candidate")
    phrasings = raw.get("phrasings")
    if isinstance(phrasings, str):
        phrasings = [phrasings]
    if not isinstance(phrasings, list) or not phrasings:
        raise SpecError(path, where, f"needs at least one phrasing with the slot {SLOT}")
    parents = raw.get("parents") or []
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise SpecError(path, where, "'parents' must be a list of variable names")
    if len(set(parents)) != len(parents):
        raise SpecError(path, where, "lists a parent twice")
    if "intervenable" in raw and not isinstance(raw["intervenable"], bool):
        raise SpecError(
            path, where, f"'intervenable: {raw['intervenable']!r}' must be true or false (unquoted)"
        )
    if raw.get("exogenous") is True and raw.get("intervenable") is True:
        raise SpecError(
            path, where, "is exogenous and 'intervenable: true'; an exogenous variable may not be intervened "
            "on: drop one of the two"
        )  # fmt: skip
    return Variable(
        name=name,
        candidates=tuple(cands),
        phrasings=tuple(_parse_phrasing(path, name, p) for p in phrasings),
        parents=tuple(parents),
        # ``exogenous`` on the Variable means "may not be intervened on" (the field keeps its name so
        # fingerprints do not change): an exogenous root, or a caused variable marked intervenable: false.
        exogenous=raw.get("exogenous", False) or raw.get("intervenable") is False,
        temperature=_parse_temperature(path, where, raw.get("temperature")),
    )


def _parse_temperature(path: str, where: str, value: Any) -> float | None:
    """A positive finite temperature, or None (absent: the global temperature)."""
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise SpecError(
            path,
            where,
            f"temperature {value!r} must be a positive finite number (below 1 sharpens the variable's "
            "mechanism, above 1 flattens it); fix it, or drop it to use the global temperature",
        )
    return float(value)


def _parse_scoring(path: str, where: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in SCORING_MODES:
        raise SpecError(path, where, f"{value!r} is not a scoring mode; use one of {list(SCORING_MODES)}")
    return str(value)


def _parse_quality(path: str, where: str, raw: Any) -> dict[str, float | None]:
    """Diagnostics thresholds: known keys only, each a number in [0, 1] or null (switched off)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(
            path, where, f"must map threshold names to numbers in [0, 1]; keys: {list(QUALITY_KEYS)}"
        )
    out: dict[str, float | None] = {}
    for key, value in raw.items():
        if key not in QUALITY_KEYS:
            raise SpecError(
                path, f"{where}.{key}", f"is not a quality threshold; use one of {list(QUALITY_KEYS)}"
            )
        if value is None:
            out[key] = None
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not 0 <= value <= 1:
            raise SpecError(
                path,
                f"{where}.{key}",
                f"{value!r} must be a number in [0, 1] (a share), or null to switch it off",
            )
        out[key] = float(value)
    return out


def _parse_variants(path: str, raw: Any, variables: list[Variable]) -> dict[str, Variant]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(
            path, "variants", "must map a variant name to its overrides (temperature, scoring, quality)"
        )
    known = [v.name for v in variables]
    out: dict[str, Variant] = {}
    slugs: dict[str, str] = {}
    for name, body in raw.items():
        where = f"variants.{name}"
        if not isinstance(name, str) or not name.strip():
            raise SpecError(path, "variants", f"variant name {name!r} must be non-empty text")
        if name == BASE_VARIANT or name_slug(name) == BASE_VARIANT:
            raise SpecError(
                path, where, f"'{BASE_VARIANT}' names the family without overrides; rename the variant"
            )
        if name_slug(name) in slugs:
            raise SpecError(
                path, where, f"has the same test-id form as variant '{slugs[name_slug(name)]}'; rename one"
            )
        slugs[name_slug(name)] = name
        if not isinstance(body, dict) or not body:
            raise SpecError(path, where, f"must be a mapping with at least one of {list(VARIANT_KEYS)}")
        unknown = sorted(set(body) - set(VARIANT_KEYS))
        if unknown:
            raise SpecError(path, where, f"unknown keys {unknown}; a variant may set {list(VARIANT_KEYS)}")
        temps_raw = body.get("temperature") or {}
        if not isinstance(temps_raw, dict):
            raise SpecError(
                path, f"{where}.temperature", "must map variable names to temperatures, e.g. {treatment: 0.5}"
            )
        temps: dict[str, float] = {}
        for var, value in temps_raw.items():
            if var not in known:
                raise SpecError(
                    path, f"{where}.temperature", f"names unknown variable {var!r}; use one of {known}"
                )
            temp = _parse_temperature(path, f"{where}.temperature.{var}", value)
            if temp is None:
                raise SpecError(path, f"{where}.temperature.{var}", "is empty; give a positive number")
            temps[var] = temp
        out[name] = Variant(
            name=name,
            temperature=temps,
            scoring=_parse_scoring(path, f"{where}.scoring", body.get("scoring")),
            quality=_parse_quality(path, f"{where}.quality", body.get("quality")),
        )
    return out


def _require(path: str, data: dict, key: str, what: str) -> Any:
    if key not in data or data[key] in (None, "", {}):
        raise SpecError(path, key, f"is missing; {what}")
    return data[key]


#: The keys a spec file may have at its top level (a misspelt one is an error, never silently ignored).
TOP_LEVEL_KEYS: tuple[str, ...] = (
    "name", "description", "separator", "variables", "treatment", "outcome", "settings", "scoring",
    "quality", "variants",
)  # fmt: skip
#: Columns of the dataset table that a variable of the same name would overwrite.
RESERVED_NAMES: frozenset[str] = frozenset({"t", "y", "y0", "y1", "ite", "propensity"})


def _check_top_level(path: str, data: dict[str, Any]) -> None:
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    for key in unknown:
        close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"the keys are {list(TOP_LEVEL_KEYS)}"
        raise SpecError(path, f"key '{key}'", f"is not a spec key; {hint}")
    name = data.get("name")
    if name is not None:
        text = str(name)
        if not isinstance(name, str) or not text.strip():
            raise SpecError(path, "name", f"{name!r} must be non-empty text")
        if any(sep in text for sep in ("/", "\\")) or text.startswith(".") or Path(text).is_absolute():
            raise SpecError(
                path, "name", f"{text!r} looks like a path (it names the cache folder); use a plain name"
            )


def parse_family(data: dict[str, Any], path: str = "<memory>") -> Family:
    """Build and validate a Family from an already-parsed mapping."""
    _check_top_level(path, data)
    raw_vars = _require(path, data, "variables", "list the variables of the DAG")
    if not isinstance(raw_vars, list) or not raw_vars:
        raise SpecError(path, "variables", "must be a non-empty list of variables")
    variables = [_parse_variable(path, i, r) for i, r in enumerate(raw_vars)]
    names = [v.name for v in variables]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(path, f"variable '{dup[0]}'", "is declared more than once; rename one")
    known = set(names)
    for v in variables:
        for p in v.parents:
            if p not in known:
                raise SpecError(path, f"variable '{v.name}'", f"has unknown parent '{p}'")
            if p == v.name:
                raise SpecError(path, f"variable '{v.name}'", "lists itself as a parent")

    graph = nx.DiGraph((p, v.name) for v in variables for p in v.parents)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        text = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
        raise SpecError(path, "parents", f"the DAG has a cycle: {text}; remove one of these edges")

    treat_raw = _require(path, data, "treatment", "give 'variable', 'control' and 'treated'")
    if not isinstance(treat_raw, dict):
        raise SpecError(path, "treatment", "must be a mapping with 'variable', 'control', 'treated'")
    tname = treat_raw.get("variable")
    if not isinstance(tname, str) or tname not in known:
        raise SpecError(path, "treatment", f"variable {tname!r} is not a declared variable")
    tvar = variables[names.index(tname)]
    for key in ("control", "treated"):
        if isinstance(treat_raw.get(key), bool):
            raise SpecError(path, f"treatment.{key}", "is a YAML boolean; quote values like yes/no")
        val = str(treat_raw.get(key))
        if val not in tvar.candidates:
            raise SpecError(
                path, f"treatment.{key}", f"{val!r} is not a candidate of '{tname}' {list(tvar.candidates)}"
            )
    treatment = Treatment(tname, str(treat_raw["control"]), str(treat_raw["treated"]))
    if treatment.control == treatment.treated:
        raise SpecError(path, "treatment", "control and treated must differ")
    if tvar.exogenous:
        raise SpecError(
            path, "treatment", f"'{tname}' is exogenous and cannot be intervened on; mark it exogenous: false"
        )

    for raw in raw_vars:  # after the treatment check, whose message fits an exogenous treatment better
        if raw.get("exogenous") is True and raw.get("parents"):
            # An exogenous variable is a root of the DAG (its value comes from the noise alone).
            raise SpecError(
                path, f"variable '{raw['name']}'", f"is marked exogenous but has parents {raw['parents']}; an "
                "exogenous variable has no causes in the DAG: drop its 'parents', or replace 'exogenous: true' "
                "by 'intervenable: false' if you mean a caused variable that may not be intervened on"
            )  # fmt: skip

    out_raw = _require(path, data, "outcome", "give 'variable', 'definition' and 'candidate'")
    if not isinstance(out_raw, dict):
        raise SpecError(path, "outcome", "must be a mapping with 'variable', 'definition', 'candidate'")
    oname = out_raw.get("variable")
    if not isinstance(oname, str) or oname not in known:
        raise SpecError(path, "outcome", f"variable {oname!r} is not a declared variable")
    ovar = variables[names.index(oname)]
    definition = out_raw.get("definition", "score")
    if definition not in OUTCOME_DEFINITIONS:
        raise SpecError(path, "outcome.definition", f"{definition!r}; use one of {list(OUTCOME_DEFINITIONS)}")
    ocand = str(out_raw.get("candidate", ovar.candidates[0]))
    if ocand not in ovar.candidates:
        raise SpecError(path, "outcome.candidate", f"{ocand!r} is not a candidate of '{oname}'")
    outcome = Outcome(oname, definition, ocand)

    raw_settings = _require(path, data, "settings", "name at least one set of observed covariates")
    if not isinstance(raw_settings, dict):
        raise SpecError(path, "settings", "must map a setting name to a list of observed variables")
    settings: dict[str, tuple[str, ...]] = {}
    for sname, observed in raw_settings.items():
        if not isinstance(observed, list) or not observed:
            raise SpecError(path, f"settings.{sname}", "must be a non-empty list of variable names")
        bad = [o for o in observed if not isinstance(o, str) or o not in known]
        if bad:
            raise SpecError(path, f"settings.{sname}", f"names unknown variables {bad}")
        if tname in observed or oname in observed:
            raise SpecError(path, f"settings.{sname}", "must not list the treatment or the outcome")
        if len(set(observed)) != len(observed):
            raise SpecError(path, f"settings.{sname}", "lists a variable twice")
        settings[str(sname)] = tuple(observed)

    family = Family(
        name=str(data.get("name") or Path(path).stem),
        variables=tuple(variables),
        treatment=treatment,
        outcome=outcome,
        settings=settings,
        separator=str(data.get("separator", " ")),
        description=str(data.get("description", "")),
        scoring=_parse_scoring(path, "scoring", data.get("scoring")),
        quality=_parse_quality(path, "quality", data.get("quality")),
        variants=_parse_variants(path, data.get("variants"), variables),
        path=path,
    )
    if oname not in family.descendants(tname):
        raise SpecError(path, "outcome", f"'{oname}' is not a descendant of the treatment '{tname}'")
    for message in spec_warnings(family):
        warnings.warn(SpecWarning(message), stacklevel=2)
    return family


def spec_warnings(family: Family) -> list[str]:
    """What is legal but probably unintended in a family; each message names the file, item and fix.

    - a setting observing descendants of the treatment (post-treatment adjustment: adjusting for a
      collider of treatment and outcome biases every estimator);
    - a setting named "...hidden..." that observes every common cause of treatment and outcome (an
      ancestor of the treatment that reaches the outcome by a path avoiding the treatment), so it
      blocks every back-door path and hides nothing; or a family with no common cause at all;
    - a variable that cannot affect the outcome (not an ancestor of it): noise when a setting
      observes it, wasted generation when none does.
    """
    path, g = family.path, family.graph()
    t, y = family.treatment.variable, family.outcome.variable
    downstream = family.descendants(t)
    without_t = g.copy()
    without_t.remove_node(t)
    common = nx.ancestors(g, t) & nx.ancestors(without_t, y)
    rank = {name: i for i, name in enumerate(family.order())}
    out = []
    for setting, observed in family.settings.items():
        post = [o for o in observed if o in downstream]
        if post:
            out.append(
                f"{path}: settings.{setting}: observes {post}, descendants of the treatment '{t}' "
                "(post-treatment adjustment: conditioning on a mediator, or on a collider of treatment and "
                "outcome, biases the effect estimate); remove them from the setting unless it is meant as "
                "a bad-adjustment case"
            )
        if "hidden" in setting.lower():
            if not common:
                out.append(
                    f"{path}: settings.{setting}: is named as hiding confounding, but '{t}' and '{y}' have "
                    f"no common cause in the DAG, so there is none to hide; add a common cause (an ancestor "
                    f"of both) or rename the setting"
                )
            elif common <= set(observed):
                names = sorted(common, key=rank.__getitem__)
                out.append(
                    f"{path}: settings.{setting}: is named as hiding confounding, but observes every common "
                    f"cause of '{t}' and '{y}' ({names}), so it blocks every back-door path and hides "
                    "nothing; leave at least one of them out of the setting, or rename it"
                )
    upstream = nx.ancestors(g, y)
    for var in family.order():
        if var == y or var in upstream:
            continue
        observers = [s for s, obs in family.settings.items() if var in obs]
        if observers:
            out.append(
                f"{path}: variable '{var}': cannot affect the outcome '{y}' (it is not an ancestor of it), "
                f"yet settings {observers} observe it; make it a parent of the outcome or of one of its "
                "ancestors, or remove it from those settings"
            )
        else:
            out.append(
                f"{path}: variable '{var}': cannot affect the outcome '{y}' (it is not an ancestor of it) "
                "and no setting observes it, so generating it is wasted work; remove it, or make it a parent "
                "of the outcome or of one of its ancestors"
            )
    return out


def load_family(path: str | Path) -> Family:
    """Read and validate a spec file."""
    path = Path(path)
    return parse_family(_read_mapping(path), str(path))
