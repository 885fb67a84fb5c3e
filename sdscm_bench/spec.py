"""SD-SCM spec files: parse, validate and order a DAG over text variables.

A spec is YAML, TOML or JSON (by extension). It is read in two steps: its shape and types against a
strict schema (:class:`SpecSchema`, pydantic: an unknown key anywhere is an error with a did-you-mean,
never ignored), then its meaning (a DAG, candidates of the right variables ...). Every problem is
reported as a ``SpecError`` naming the file, the offending item and what to change. Things that are legal but
probably not meant (post-treatment adjustment, a "hidden" setting that hides nothing, variables
that cannot affect the outcome) are reported as ``SpecWarning`` (see :func:`spec_warnings`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import networkx as nx
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from sdscm_bench.errors import SpecError

SLOT = "{value}"
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


# ---------------------------------------------------------------------------------------------------
# The schema: the shape and types of a spec file. Unknown keys anywhere are errors (a misspelt key must
# never be ignored silently); what the values mean (a DAG, candidates of the right variable ...) is
# checked after it, by hand, in parse_family.


def _as_text(value: Any) -> Any:
    """Numbers are text (``candidates: [25, 35]``); YAML's booleans (unquoted yes/no) are refused."""
    if isinstance(value, bool):
        raise PydanticCustomError("yaml_boolean", "a YAML boolean")
    return str(value) if isinstance(value, int | float) else value


def _one_or_many(value: Any) -> Any:
    """A single phrasing may be given as one string."""
    return [value] if isinstance(value, str) else value


Text = Annotated[str, BeforeValidator(_as_text)]
Temperature = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class VariableSchema(_Strict):
    name: str
    candidates: list[Text] = []
    phrasings: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    parents: list[str] | None = None
    exogenous: bool = False
    intervenable: bool | None = None  # false: a caused variable that may not be intervened on
    temperature: Temperature | None = None


class QualitySchema(_Strict):
    """Diagnostics thresholds (read by :mod:`sdscm_bench.diagnostics`): shares, or null (switched off)."""

    min_treated_share: Share | None = None
    max_treated_share: Share | None = None
    min_overlap_share: Share | None = None
    min_ess_share: Share | None = None
    min_nonzero_ite_share: Share | None = None
    max_outcome_share: Share | None = None
    max_value_share: Share | None = None


class VariantSchema(_Strict):
    temperature: dict[str, Temperature] | None = None
    scoring: Literal["sum", "mean"] | None = None
    quality: QualitySchema | None = None


class TreatmentSchema(_Strict):
    variable: str
    control: Text
    treated: Text


class OutcomeSchema(_Strict):
    variable: str
    definition: Literal["score", "probability", "category"] = "score"
    candidate: Text | None = None  # None: the outcome variable's first candidate


class SpecSchema(_Strict):
    name: str | None = None
    description: str = ""
    separator: str = " "
    variables: list[VariableSchema]
    treatment: TreatmentSchema
    outcome: OutcomeSchema
    settings: dict[Text, list[str]]
    scoring: Literal["sum", "mean"] | None = None
    quality: QualitySchema | None = None
    variants: dict[Text, VariantSchema] | None = None


OUTCOME_DEFINITIONS: tuple[str, ...] = get_args(OutcomeSchema.model_fields["definition"].annotation)
SCORING_MODES: tuple[str, ...] = ("sum", "mean")
#: Keys of a spec's ``quality:`` mapping (thresholds read by :mod:`sdscm_bench.diagnostics`).
QUALITY_KEYS: tuple[str, ...] = tuple(QualitySchema.model_fields)
VARIANT_KEYS: tuple[str, ...] = tuple(VariantSchema.model_fields)
#: The keys a spec file may have at its top level (a misspelt one is an error, never silently ignored).
TOP_LEVEL_KEYS: tuple[str, ...] = tuple(SpecSchema.model_fields)
#: Columns of the dataset table that a variable of the same name would overwrite.
RESERVED_NAMES: frozenset[str] = frozenset({"t", "y", "y0", "y1", "ite", "propensity"})

_TEMPERATURE = (
    "temperature {v} must be a positive finite number (below 1 sharpens the variable's mechanism, above 1 "
    "flattens it); fix it, or drop it to use the global temperature"
)
_TEMPERATURE_MAP = "temperature {v} must map variable names to temperatures, e.g. {{treatment: 0.5}}"
_SHARE = "{v} must be a number in [0, 1] (a share), or null to switch it off"
#: What a value at a schema location must be, by the location's tail ("*": a list index or a user's name).
_FIXES: dict[tuple[str, ...], str] = {
    ("name",): "{v} must be non-empty text",
    ("description",): "{v} must be text",
    ("separator",): "{v} must be text",
    ("variables",): "{v} must be a list of variables (mappings with 'name', 'candidates', 'phrasings')",
    ("variables", "*"): "{v} must be a mapping with 'name', 'candidates' and 'phrasings'",
    ("variables", "*", "name"): "name {v} must be non-empty text",
    ("candidates",): 'candidates {v} must be a list of texts, e.g. ["low", "high"]',
    ("candidates", "*"): "candidate {v} must be text",
    ("phrasings",): "phrasings {v} must be a list of texts, each with the slot {{value}} exactly once",
    ("phrasings", "*"): "phrasing {v} must contain the slot {{value}} exactly once",
    ("parents",): "'parents' {v} must be a list of variable names",
    ("parents", "*"): "'parents' must be a list of variable names, not {v}",
    ("exogenous",): "'exogenous: {v}' must be true or false (unquoted)",
    ("intervenable",): "'intervenable: {v}' must be true or false (unquoted)",
    ("temperature",): _TEMPERATURE,
    ("variants", "*", "temperature"): _TEMPERATURE_MAP,
    ("temperature", "*"): _TEMPERATURE,
    ("treatment",): "{v} must be a mapping with 'variable', 'control', 'treated'",
    ("outcome",): "{v} must be a mapping with 'variable', 'definition', 'candidate'",
    ("variable",): "variable {v} must be the name of a declared variable",
    ("control",): "{v} must be a candidate of the treatment, as text",
    ("treated",): "{v} must be a candidate of the treatment, as text",
    ("definition",): f"{{v}} is not an outcome definition; use one of {list(OUTCOME_DEFINITIONS)}",
    ("candidate",): "{v} must be a candidate of the outcome, as text",
    ("settings",): "{v} must map a setting name to a list of observed variables",
    ("settings", "*"): "must be a non-empty list of variable names, not {v}",
    ("settings", "*", "*"): "{v} must be a variable name",
    ("scoring",): f"{{v}} is not a scoring mode; use one of {list(SCORING_MODES)}",
    ("quality",): f"{{v}} must map threshold names to numbers in [0, 1]; keys: {list(QUALITY_KEYS)}",
    ("quality", "*"): _SHARE,
    ("variants",): "{v} must map a variant name to its overrides (temperature, scoring, quality)",
    ("variants", "*"): f"{{v}} must be a mapping with at least one of {list(VARIANT_KEYS)}",
}
_MISSING: dict[tuple[str, ...], str] = {
    ("variables",): "is missing; list the variables of the DAG",
    ("treatment",): "is missing; give 'variable', 'control' and 'treated'",
    ("outcome",): "is missing; give 'variable', 'definition' and 'candidate'",
    ("settings",): "is missing; name at least one set of observed covariates",
    ("variables", "*", "name"): "needs a non-empty 'name'",
    ("treatment", "variable"): "is missing; name the treatment variable",
    ("treatment", "control"): "is missing; give the treatment's control value (one of its candidates)",
    ("treatment", "treated"): "is missing; give the treatment's treated value (one of its candidates)",
    ("outcome", "variable"): "is missing; name the outcome variable",
}
#: The mapping (model) at each location that has fixed keys, for did-you-mean on an unknown key.
_MODELS: dict[tuple[str, ...], type[BaseModel]] = {
    (): SpecSchema,
    ("variables", "*"): VariableSchema,
    ("treatment",): TreatmentSchema,
    ("outcome",): OutcomeSchema,
    ("quality",): QualitySchema,
    ("variants", "*"): VariantSchema,
    ("variants", "*", "quality"): QualitySchema,
}


_NAMED: frozenset[tuple[str, ...]] = frozenset(
    {
        ("settings",),
        ("variants",),
        ("quality",),
        ("variants", "*", "temperature"),
        ("variants", "*", "quality"),
    }
)


def _pattern(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """A location as a schema path: list indices and the names a user chooses (settings, variants, the
    variables of a variant's temperatures, quality keys: the parts after a location in _NAMED) become "*"."""
    out: list[str] = []
    for part in loc:
        out.append("*" if isinstance(part, int) or tuple(out) in _NAMED else str(part))
    return tuple(out)


def _lookup(table: dict[tuple[str, ...], str], pattern: tuple[str, ...]) -> str | None:
    """The entry for the longest tail of ``pattern`` that ``table`` has."""
    return next((table[pattern[i:]] for i in range(len(pattern)) if pattern[i:] in table), None)


def _item(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """How a message names a location: ``variable 'x'`` inside a variable, else the dotted keys."""
    if loc[:1] == ("variables",) and len(loc) > 1 and isinstance(loc[1], int):
        raw = data["variables"][loc[1]]
        name = raw.get("name") if isinstance(raw, dict) else None
        return f"variable '{name}'" if isinstance(name, str) and name else f"variables[{loc[1]}]"
    return ".".join(str(p) for p in loc if not isinstance(p, int)) or "file"


def _schema_error(path: str, data: dict[str, Any], exc: ValidationError) -> SpecError:
    """The first schema violation as a SpecError naming the item and the fix (unknown keys first: a
    misspelt key also makes the real one look missing)."""
    errors = exc.errors()
    extras = [e for e in errors if e["type"] == "extra_forbidden"]
    if extras:
        container = tuple(extras[0]["loc"][:-1])
        keys = [str(e["loc"][-1]) for e in extras if tuple(e["loc"][:-1]) == container]
        model = _MODELS.get(_pattern(container))
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(keys[0], known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"the keys are {known}"
        if not container:
            return SpecError(path, f"key '{keys[0]}'", f"is not a spec key; {hint}")
        if model is QualitySchema:
            return SpecError(path, _item((*container, keys[0]), data), f"is not a quality threshold; {hint}")
        return SpecError(path, _item(container, data), f"has unknown keys {keys}; {hint}")
    error = errors[0]
    loc, value = tuple(error["loc"]), error.get("input")
    if loc[-1:] == ("[key]",):
        if error["type"] == "yaml_boolean":  # pydantic reports the key True as 1: name it as written
            return SpecError(path, _item(loc[:-2], data), f"has a name that YAML reads as the boolean {value!r}; "
                             "quote names like yes/no/on/off")  # fmt: skip
        return SpecError(path, _item(loc[:-2], data), f"has the name {loc[-2]!r}; names must be text")
    item, pattern = _item(loc, data), _pattern(loc)
    if error["type"] == "missing" or (value is None and pattern in _MISSING):
        return SpecError(path, item, _lookup(_MISSING, pattern) or "is missing")
    if error["type"] == "yaml_boolean":
        return SpecError(path, item, f"{value!r} is a YAML boolean, not text; quote values like yes/no/on/off, "
                         "which YAML reads as booleans")  # fmt: skip
    if error["type"] == "list_type" and isinstance(value, str):
        example = json.dumps([part.strip() for part in value.split(",")], ensure_ascii=False)
        return SpecError(path, item, f"'{loc[-1]}: {value!r}' is one string; give a list, e.g. {example}")
    fix = _lookup(_FIXES, pattern) or "{v} has the wrong type"
    return SpecError(path, item, fix.format(v=repr(value)))


def _parse_variable(path: str, i: int, raw: VariableSchema) -> Variable:
    """The meaning of one variable entry (its types are the schema's)."""
    if not raw.name:
        raise SpecError(path, f"variables[{i}]", "needs a non-empty 'name'")
    name, where = raw.name, f"variable '{raw.name}'"
    if name in RESERVED_NAMES or name.startswith("logp:") or "|do(" in name:
        raise SpecError(
            path, where, f"is a reserved column name of the dataset table ({sorted(RESERVED_NAMES)}, 'logp:...', "
            "'...|do(...)'); rename the variable"
        )  # fmt: skip
    cands = raw.candidates
    if not cands:
        raise SpecError(path, where, "has an empty candidate set; list at least two 'candidates'")
    if len(cands) < 2:
        raise SpecError(path, where, "has a single candidate; a variable needs at least two")
    dup = sorted({c for c in cands if cands.count(c) > 1})
    if dup:
        raise SpecError(path, where, f"has duplicate candidates {dup}")
    if any(not c.strip() for c in cands):
        raise SpecError(path, where, "has a blank candidate")
    if not raw.phrasings:
        raise SpecError(path, where, f"needs at least one phrasing with the slot {SLOT}")
    for text in raw.phrasings:
        if text.count(SLOT) != 1:
            raise SpecError(path, where, f"phrasing {text!r} must contain the slot {SLOT} exactly once")
    parents = raw.parents or []
    if len(set(parents)) != len(parents):
        raise SpecError(path, where, "lists a parent twice")
    if raw.exogenous and raw.intervenable:
        raise SpecError(
            path, where, "is exogenous and 'intervenable: true'; an exogenous variable may not be intervened "
            "on: drop one of the two"
        )  # fmt: skip
    return Variable(
        name=name,
        candidates=tuple(cands),
        phrasings=tuple(Phrasing(*text.split(SLOT)) for text in raw.phrasings),
        parents=tuple(parents),
        # ``exogenous`` on the Variable means "may not be intervened on" (the field keeps its name so
        # fingerprints do not change): an exogenous root, or a caused variable marked intervenable: false.
        exogenous=raw.exogenous or raw.intervenable is False,
        temperature=raw.temperature,
    )


def _quality(raw: QualitySchema | None) -> dict[str, float | None]:
    """The thresholds given (absent keys are left to the diagnostics' defaults; null switches one off)."""
    return {} if raw is None else raw.model_dump(exclude_unset=True)


def _parse_variants(
    path: str, raw: dict[str, VariantSchema] | None, variables: list[Variable]
) -> dict[str, Variant]:
    known = [v.name for v in variables]
    out: dict[str, Variant] = {}
    slugs: dict[str, str] = {}
    for name, body in (raw or {}).items():
        where = f"variants.{name}"
        if not name.strip():
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
        given = [key for key in body.model_fields_set if getattr(body, key) is not None]
        if body.quality is not None and not body.quality.model_fields_set:
            given.remove("quality")  # an empty mapping ({}) overrides nothing
        if body.temperature == {}:
            given.remove("temperature")
        if not given:
            raise SpecError(
                path, where, f"overrides nothing; give at least one of {list(VARIANT_KEYS)} with a value "
                "(an empty mapping or null changes nothing)"
            )  # fmt: skip
        for var in body.temperature or {}:
            if var not in known:
                raise SpecError(
                    path, f"{where}.temperature", f"names unknown variable {var!r}; use one of {known}"
                )
        out[name] = Variant(
            name=name,
            temperature=dict(body.temperature or {}),
            scoring=body.scoring,
            quality=_quality(body.quality),
        )
    return out


def _check_name(path: str, name: str | None) -> None:
    if name is None:
        return
    if not name.strip():
        raise SpecError(path, "name", f"{name!r} must be non-empty text")
    if any(sep in name for sep in ("/", "\\")) or name.startswith(".") or Path(name).is_absolute():
        raise SpecError(
            path, "name", f"{name!r} looks like a path (it names the cache folder); use a plain name"
        )


def parse_family(data: dict[str, Any], path: str = "<memory>") -> Family:
    """Build and validate a Family from an already-parsed mapping: the schema, then the meaning."""
    if not isinstance(data, dict):
        raise SpecError(path, "file", "must hold a mapping with 'variables', 'treatment', 'outcome'")
    try:
        spec = SpecSchema.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(path, data, exc) from None
    _check_name(path, spec.name)
    if not spec.variables:
        raise SpecError(path, "variables", "must be a non-empty list of variables")
    variables = [_parse_variable(path, i, r) for i, r in enumerate(spec.variables)]
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

    tname = spec.treatment.variable
    if tname not in known:
        raise SpecError(path, "treatment", f"variable {tname!r} is not a declared variable")
    tvar = variables[names.index(tname)]
    for key in ("control", "treated"):
        val = getattr(spec.treatment, key)
        if val not in tvar.candidates:
            raise SpecError(
                path, f"treatment.{key}", f"{val!r} is not a candidate of '{tname}' {list(tvar.candidates)}"
            )
    treatment = Treatment(tname, spec.treatment.control, spec.treatment.treated)
    if treatment.control == treatment.treated:
        raise SpecError(path, "treatment", "control and treated must differ")
    if tvar.exogenous:
        raise SpecError(path, "treatment", f"'{tname}' is exogenous and cannot be intervened on; mark it "
                        "exogenous: false (and drop any 'intervenable: false')")  # fmt: skip
    for raw in spec.variables:  # after the treatment check, whose message fits an exogenous treatment better
        if raw.exogenous and raw.parents:
            # An exogenous variable is a root of the DAG (its value comes from the noise alone).
            raise SpecError(
                path, f"variable '{raw.name}'", f"is marked exogenous but has parents {raw.parents}; an "
                "exogenous variable has no causes in the DAG: drop its 'parents', or replace 'exogenous: true' "
                "by 'intervenable: false' if you mean a caused variable that may not be intervened on"
            )  # fmt: skip

    oname = spec.outcome.variable
    if oname not in known:
        raise SpecError(path, "outcome", f"variable {oname!r} is not a declared variable")
    ovar = variables[names.index(oname)]
    ocand = spec.outcome.candidate if spec.outcome.candidate is not None else ovar.candidates[0]
    if ocand not in ovar.candidates:
        raise SpecError(path, "outcome.candidate", f"{ocand!r} is not a candidate of '{oname}'")
    outcome = Outcome(oname, spec.outcome.definition, ocand)

    if not spec.settings:
        raise SpecError(path, "settings", _MISSING[("settings",)])
    settings: dict[str, tuple[str, ...]] = {}
    for sname, observed in spec.settings.items():
        if not observed:
            raise SpecError(path, f"settings.{sname}", "must be a non-empty list of variable names")
        bad = [o for o in observed if o not in known]
        if bad:
            raise SpecError(path, f"settings.{sname}", f"names unknown variables {bad}")
        if oname in observed:
            raise SpecError(
                path, f"settings.{sname}", f"lists the outcome '{oname}' as an observed covariate, which "
                f"leaks the outcome to every estimator; remove '{oname}' from the setting"
            )  # fmt: skip
        if tname in observed:
            raise SpecError(
                path, f"settings.{sname}", f"lists the treatment '{tname}' as an observed covariate; every "
                f"estimator gets the treatment anyway: remove '{tname}' from the setting"
            )  # fmt: skip
        twice = sorted({o for o in observed if observed.count(o) > 1})
        if twice:
            raise SpecError(
                path, f"settings.{sname}", f"lists {twice} more than once; list each variable once"
            )  # fmt: skip
        settings[sname] = tuple(observed)

    family = Family(
        name=spec.name or Path(path).stem,
        variables=tuple(variables),
        treatment=treatment,
        outcome=outcome,
        settings=settings,
        separator=spec.separator,
        description=spec.description,
        scoring=spec.scoring,
        quality=_quality(spec.quality),
        variants=_parse_variants(path, spec.variants, variables),
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
