"""SD-SCM spec files: parse, validate and order a DAG over text variables.

A spec is YAML, TOML or JSON (by extension). Every problem is reported as a
``SpecError`` naming the file, the offending item and what to change.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from sdscm_bench.errors import SpecError

SLOT = "{value}"
OUTCOME_DEFINITIONS = ("score", "probability", "category")


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
    exogenous: bool = False


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

    def fingerprint(self) -> str:
        """Hash of everything that changes generated data (not the file's path)."""
        payload = asdict(self)
        payload.pop("path")
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


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
    unknown = set(raw) - {"name", "candidates", "phrasings", "parents", "exogenous"}
    if unknown:
        raise SpecError(path, where, f"unknown keys {sorted(unknown)}")
    cands = raw.get("candidates")
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
    return Variable(
        name=name,
        candidates=tuple(cands),
        phrasings=tuple(_parse_phrasing(path, name, p) for p in phrasings),
        parents=tuple(parents),
        exogenous=bool(raw.get("exogenous", False)),
    )


def _require(path: str, data: dict, key: str, what: str) -> Any:
    if key not in data or data[key] in (None, "", {}):
        raise SpecError(path, key, f"is missing; {what}")
    return data[key]


def parse_family(data: dict[str, Any], path: str = "<memory>") -> Family:
    """Build and validate a Family from an already-parsed mapping."""
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
        path=path,
    )
    if oname not in family.descendants(tname):
        raise SpecError(path, "outcome", f"'{oname}' is not a descendant of the treatment '{tname}'")
    return family


def load_family(path: str | Path) -> Family:
    """Read and validate a spec file."""
    path = Path(path)
    return parse_family(_read_mapping(path), str(path))
