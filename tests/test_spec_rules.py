"""Spec rules that decide what data a benchmark generates, each checked on both sides (issue 14).

A spec that passes validation wrongly corrupts every dataset generated from it: an outcome listed as a
covariate leaks the answer to every estimator, a YAML boolean becomes the text 'True' in every prompt,
an empty override silently makes a "variant" that is the base family under another cache key.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdscm_bench.errors import SpecError
from sdscm_bench.spec import Family, Phrasing, Variable, Variant, load_family, parse_family
from tests.test_spec import base_spec

BASE: dict[str, Any] = base_spec()  # the valid three-variable toy of test_spec.py


def spec(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def parse(data: dict[str, Any]) -> Family:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_family(data, "toy.yaml")


def error(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(data)
    return info.value


# -- settings ----------------------------------------------------------------------------------------


def test_a_setting_listing_the_outcome_is_rejected_with_file_setting_and_fix() -> None:
    exc = error(spec(settings={"leaky": ["weather", "arrival"]}))
    assert exc.path == "toy.yaml" and exc.item == "settings.leaky"
    assert str(exc) == (
        "toy.yaml: settings.leaky: lists the outcome 'arrival' as an observed covariate, which leaks the "
        "outcome to every estimator; remove 'arrival' from the setting"
    )


def test_a_setting_listing_the_treatment_is_rejected() -> None:
    exc = error(spec(settings={"ok": ["weather"], "with t": ["commute", "weather"]}))
    assert exc.item == "settings.with t" and "the treatment 'commute'" in str(exc)


def test_a_setting_listing_a_variable_twice_is_rejected() -> None:
    exc = error(spec(settings={"twice": ["weather", "weather"]}))
    assert exc.item == "settings.twice" and "lists ['weather'] more than once" in str(exc)


def test_settings_are_kept_in_order_as_given() -> None:
    data = spec()
    data["variables"].append({"name": "day", "candidates": ["mon", "fri"], "phrasings": ["{value}"]})
    data["variables"][2]["parents"].append("day")
    data["settings"] = {"both": ["day", "weather"], "one": ["weather"]}
    family = parse(data)
    assert family.settings == {"both": ("day", "weather"), "one": ("weather",)}


def test_an_empty_setting_list_and_no_settings_are_rejected() -> None:
    assert error(spec(settings={"none": []})).item == "settings.none"
    assert "is missing" in str(error(spec(settings={})))


# -- YAML booleans --------------------------------------------------------------------------------

QUOTED = """\
variables:
  - {name: smoker, exogenous: false, candidates: ['no', 'yes'], phrasings: ['Smoker: {value}.']}
  - {name: cough, parents: [smoker], candidates: ['no', 'yes'], phrasings: ['Cough: {value}.']}
treatment: {variable: smoker, control: CONTROL, treated: TREATED}
outcome: {variable: cough, definition: score, candidate: OUTCOME}
settings: {none: [cough]}
"""


def write(tmp_path: Path, control: str = "'no'", treated: str = "'yes'", outcome: str = "'yes'") -> Path:
    text = QUOTED.replace("CONTROL", control).replace("TREATED", treated).replace("OUTCOME", outcome)
    path = tmp_path / "bools.yaml"
    path.write_text(text.replace("settings: {none: [cough]}", "settings: {s: [smoker]}"), encoding="utf-8")
    return path


def test_quoted_yes_no_are_text(tmp_path: Path) -> None:
    data = yaml.safe_load(write(tmp_path).read_text())
    data["settings"] = {"s": []}
    data["variables"].append({"name": "age", "candidates": ["young", "old"], "phrasings": ["{value}"]})
    data["variables"][0]["parents"] = ["age"]
    data["settings"] = {"s": ["age"]}
    family = parse(data)
    assert family.treatment.control == "no" and family.treatment.treated == "yes"
    assert family.outcome.candidate == "yes"


@pytest.mark.parametrize(
    ("where", "kwargs"),
    [
        ("treatment.treated", {"treated": "yes"}),
        ("treatment.control", {"control": "no"}),
        ("outcome.candidate", {"outcome": "yes"}),
    ],
)
def test_unquoted_yaml_booleans_as_values_are_rejected(
    tmp_path: Path, where: str, kwargs: dict[str, str]
) -> None:
    path = write(tmp_path, **kwargs)
    with pytest.raises(SpecError) as info:
        load_family(path)
    assert info.value.path == str(path) and info.value.item == where
    assert "is a YAML boolean, not text" in str(info.value) and "quote values like yes/no" in str(info.value)


def test_numbers_are_text_but_booleans_are_not() -> None:
    data = spec()
    data["variables"][0]["candidates"] = [25, 35.5]
    assert parse(data).by_name["weather"].candidates == ("25", "35.5")
    data["variables"][0]["candidates"] = [25, True]
    assert "YAML boolean" in str(error(data))


# -- present or absent --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"temperature": {}}, {"quality": {}}, {"temperature": None}, {"scoring": None}, {"quality": None}],
    ids=["empty", "empty-temperature", "empty-quality", "null-temperature", "null-scoring", "null-quality"],
)
def test_a_variant_that_overrides_nothing_is_rejected(body: dict[str, Any]) -> None:
    exc = error(spec(variants={"same": body}))
    assert exc.item == "variants.same" and "overrides nothing" in str(exc)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ({"temperature": {"commute": 0.5}}, lambda v: v.temperature == {"commute": 0.5}),
        ({"scoring": "mean"}, lambda v: v.scoring == "mean"),
        ({"quality": {"min_ess_share": None}}, lambda v: v.quality == {"min_ess_share": None}),
        (
            {"quality": {"min_ess_share": 0.2}, "temperature": {}},
            lambda v: v.quality == {"min_ess_share": 0.2},
        ),
    ],
    ids=["temperature", "scoring", "quality-switched-off", "quality-and-empty-temperature"],
)
def test_a_variant_with_one_real_override_is_accepted(body: dict[str, Any], check: Any) -> None:
    variant = parse(spec(variants={"v": body})).variants["v"]
    assert check(variant)


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_family_name_is_an_error_not_the_file_name(name: str) -> None:
    exc = error(spec(name=name))
    assert exc.item == "name" and "must be non-empty text" in str(exc)


def test_an_absent_name_is_the_file_stem() -> None:
    data = spec()
    del data["name"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert parse_family(data, "some/dir/my-family.yaml").name == "my-family"


def test_an_empty_outcome_candidate_is_not_the_default() -> None:
    """Absent (or null) means the outcome's first candidate; "" is a value, and not a candidate."""
    data = spec()
    del data["outcome"]["candidate"]
    assert parse(data).outcome.candidate == "on time"
    data["outcome"]["candidate"] = None
    assert parse(data).outcome.candidate == "on time"
    data["outcome"]["candidate"] = "late"
    assert parse(data).outcome.candidate == "late"
    data["outcome"]["candidate"] = ""
    exc = error(data)
    assert exc.item == "outcome.candidate" and "'' is not a candidate of 'arrival'" in str(exc)


# -- the separator ------------------------------------------------------------------------------------


def test_the_default_separator_is_one_space() -> None:
    data = spec()
    assert "separator" not in data
    family = parse(data)
    assert family.separator == " "
    assert family.fingerprint() == parse(spec(separator=" ")).fingerprint()


@pytest.mark.parametrize("separator", ["", "\n", " | "])
def test_an_explicit_separator_is_kept_and_changes_the_fingerprint(separator: str) -> None:
    family = parse(spec(separator=separator))
    assert family.separator == separator
    assert family.fingerprint() != parse(spec()).fingerprint()


# -- the parsed family ------------------------------------------------------------------------------


def test_a_parsed_family_cannot_be_changed_in_place() -> None:
    """The fingerprint keys the dataset cache: a family edited after parsing would be cached under the
    fingerprint of what it no longer is, so every part of it is frozen."""
    family = parse(spec(variants={"v": {"scoring": "mean"}}))
    parts = [
        (family, "name"),
        (family.variables[0], "temperature"),
        (family.variables[0].phrasings[0], "prefix"),
        (family.treatment, "control"),
        (family.outcome, "candidate"),
        (family.variants["v"], "scoring"),
    ]
    for obj, attribute in parts:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attribute, getattr(obj, attribute))


def test_a_variable_built_in_code_is_intervenable_caused_and_at_the_global_temperature() -> None:
    variable = Variable("x", ("a", "b"), (Phrasing("X is ", "."),))
    assert variable.exogenous is False and variable.parents == () and variable.temperature is None
    assert Variant("v").temperature == {} and Variant("v").scoring is None and Variant("v").quality == {}
    assert variable.phrasings[0].render("a") == "X is a."


def test_temperature_of_is_the_own_temperature_else_the_given_default() -> None:
    data = spec()
    data["variables"][1]["temperature"] = 0.25
    family = parse(data)
    assert family.temperature_of("commute") == 0.25 and family.temperature_of("commute", 3.0) == 0.25
    assert family.temperature_of("weather") == 1.0  # the documented global default
    assert family.temperature_of("weather", 0.7) == 0.7


def test_the_fingerprint_is_the_documented_hash_of_the_content(tmp_path: Path) -> None:
    """sha256 of the sorted-key JSON of the family (non-ASCII text as UTF-8, not \\u escapes), without
    its path, scoring, quality and variants; a variant family adds its name."""
    data = spec(description="Café au lait, naïve résumé")
    data["variables"][0]["candidates"] = ["sonnig", "trüb"]
    family = parse(data)
    payload = dataclasses.asdict(family)
    for key in ("path", "scoring", "quality", "variants", "variant_name"):
        payload.pop(key)
    for variable in payload["variables"]:
        variable.pop("temperature")
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    assert "trüb" in text
    assert family.fingerprint() == hashlib.sha256(text.encode()).hexdigest()[:16]
    # the path is not content: the same spec elsewhere has the same fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            parse_family(copy.deepcopy(data), str(tmp_path / "x.yaml")).fingerprint() == family.fingerprint()
        )


def test_variant_errors_name_the_file_and_the_variant() -> None:
    family = parse(spec(variants={"v": {"scoring": "mean"}, "w": {"scoring": "sum"}}))
    variant = family.variant("v")
    assert variant.variant("v") is variant  # the same variant again: that family
    assert family.variant(None) is family and family.variant("base") is family
    for call, item in [
        (lambda: variant.variant("base"), "variant 'v'"),
        (lambda: variant.variant("w"), "variant 'w'"),
        (lambda: family.variant("nope"), "variant 'nope'"),
    ]:
        with pytest.raises(SpecError) as info:
            call()
        assert info.value.path == "toy.yaml" and info.value.item == item


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    for path, problem in [(latin, "is not UTF-8 text"), (tmp_path / "absent.yaml", "cannot be read")]:
        with pytest.raises(SpecError) as info:
            load_family(path)
        assert info.value.path == str(path) and info.value.item == "file" and problem in info.value.problem


@pytest.mark.parametrize(
    ("name", "item"), [("", "variables[0]"), (7, "variables[0]"), ("weather", "variable 'weather'")]
)
def test_a_schema_error_inside_a_variable_names_it_or_its_index(name: Any, item: str) -> None:
    data = spec()
    data["variables"][0].update(name=name, candidates="sunny, rainy")
    assert error(data).item == item


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (True, "has a name that YAML reads as the boolean True; quote names like yes/no/on/off"),
        (None, "has the name 'None'; names must be text"),
    ],
    ids=["yaml-boolean", "null"],
)
def test_a_setting_name_that_is_not_text_is_named(tmp_path: Path, key: Any, problem: str) -> None:
    exc = error(spec(settings={key: ["weather"]}))
    assert (exc.item, exc.problem) == ("settings", problem)
    data = yaml.safe_dump(spec(settings={}), sort_keys=False).replace(
        "settings: {}", "settings: {yes: [weather]}"
    )
    (tmp_path / "s.yaml").write_text(data)
    with pytest.raises(SpecError, match="YAML reads as the boolean True"):
        load_family(tmp_path / "s.yaml")


@pytest.mark.parametrize(
    ("edit", "item", "problem"),
    [
        (
            lambda d: d.update(treatment=None),
            "treatment",
            "is missing; give 'variable', 'control' and 'treated'",
        ),
        (
            lambda d: d["treatment"].pop("variable"),
            "treatment.variable",
            "is missing; name the treatment variable",
        ),
        (
            lambda d: d["outcome"].update(variable=None),
            "outcome.variable",
            "is missing; name the outcome variable",
        ),
        (lambda d: d.update(separator=None), "separator", "None must be text"),
        (lambda d: d.update(description=None), "description", "None must be text"),
    ],
    ids=[
        "null-treatment",
        "no-treatment-variable",
        "null-outcome-variable",
        "null-separator",
        "null-description",
    ],
)
def test_null_is_missing_only_where_a_value_is_required(edit: Any, item: str, problem: str) -> None:
    data = spec()
    edit(data)
    exc = error(data)
    assert (exc.item, exc.problem) == (item, problem)


def test_a_list_given_as_one_string_gets_an_example_in_its_own_words() -> None:
    data = spec()
    data["variables"][0]["candidates"] = "sonnig, trüb"
    exc = error(data)
    assert exc.item == "variable 'weather'"
    assert (
        exc.problem == """'candidates: 'sonnig, trüb'' is one string; give a list, e.g. ["sonnig", "trüb"]"""
    )


def _variable(index: int, **changes: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["variables"][index].update(changes)

    return edit


@pytest.mark.parametrize(
    ("edit", "item", "fragment"),
    [
        (_variable(0, name=""), "variables[0]", "needs a non-empty 'name'"),
        (_variable(0, name="propensity"), "variable 'propensity'", "reserved column name"),
        (_variable(0, intervenable=True), "variable 'weather'", "is exogenous and 'intervenable: true'"),
        (_variable(2, exogenous=True), "variable 'arrival'", "is marked exogenous but has parents"),
        (lambda d: d.update(variants={" ": {"scoring": "mean"}}), "variants", "must be non-empty text"),
        (
            lambda d: d.update(variants={"base!": {"scoring": "mean"}}),
            "variants.base!",
            "names the family without",
        ),
        (lambda d: d.update(name="a/b"), "name", "looks like a path"),
        (lambda d: d.update(variables=[]), "variables", "must be a non-empty list of variables"),
        (
            lambda d: d.update(settings={}),
            "settings",
            "is missing; name at least one set of observed covariates",
        ),
    ],
    ids=[
        "empty-variable-name",
        "reserved-name",
        "exogenous-intervenable",
        "exogenous-with-parents",
        "blank-variant-name",
        "variant-named-base",
        "path-like-name",
        "no-variables",
        "empty-settings",
    ],
)
def test_each_meaning_error_names_the_file_and_the_item(edit: Any, item: str, fragment: str | None) -> None:
    data = spec()
    edit(data)
    exc = error(data)
    assert (exc.path, exc.item) == ("toy.yaml", item)
    assert fragment is None or fragment in exc.problem


def test_a_file_that_is_not_a_mapping_is_named() -> None:
    with pytest.raises(SpecError) as info:
        parse_family(["a", "list"], "toy.yaml")  # type: ignore[arg-type]
    assert (info.value.path, info.value.item) == ("toy.yaml", "file")


def test_the_outcome_candidate_defaults_to_the_first_not_another() -> None:
    data = spec()
    data["variables"][2]["candidates"] = ["late", "on time", "early"]
    del data["outcome"]["candidate"]
    assert parse(data).outcome.candidate == "late"
