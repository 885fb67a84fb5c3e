"""Bad input that used to pass silently: reserved names, misspelt keys, path-like names, loose types, zero counts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sdscm_bench.cli import main
from sdscm_bench.errors import SdscmError
from sdscm_bench.spec import parse_family

CONFOUNDER = Path(__file__).resolve().parents[1] / "datasets" / "confounder.yaml"
BASE = yaml.safe_load(CONFOUNDER.read_text())


def edited(**changes) -> dict:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def with_variable(index: int, **changes) -> dict:
    data = copy.deepcopy(BASE)
    data["variables"][index].update(changes)
    return data


@pytest.mark.parametrize("name", ["y", "t", "propensity", "ite", "y0", "y1", "logp:weather", "weather|do(x)"])
def test_reserved_column_names_are_rejected(name: str) -> None:
    data = copy.deepcopy(BASE)
    old = data["variables"][1]["name"]  # "day": an exogenous parent of the outcome
    data["variables"][1]["name"] = name
    data["variables"][3]["parents"] = [name if p == old else p for p in data["variables"][3]["parents"]]
    data["settings"] = {k: [name if v == old else v for v in vs] for k, vs in data["settings"].items()}
    with pytest.raises(SdscmError, match=r"reserved column name of the dataset table.*rename the variable"):
        parse_family(data, "spec.yaml")


@pytest.mark.parametrize(("key", "hint"), [("seperator", "did you mean 'separator'"), ("settigns", "did you mean 'settings'"),
                                           ("colour", "the keys are")])  # fmt: skip
def test_unknown_top_level_keys_are_errors_with_did_you_mean(key: str, hint: str) -> None:
    with pytest.raises(SdscmError, match=rf"spec\.yaml.*key '{key}'.*{hint}"):
        parse_family(edited(**{key: "x"}), "spec.yaml")


@pytest.mark.parametrize("name", ["../../escaped", "/abs/path", "a/b", "a\\b", ".hidden", ""])
def test_path_like_family_names_are_rejected(name: str) -> None:
    with pytest.raises(SdscmError, match=r"spec\.yaml.*name"):
        parse_family(edited(name=name), "spec.yaml")


def test_exogenous_must_be_a_boolean() -> None:
    with pytest.raises(SdscmError, match=r"variable 'weather'.*'exogenous: 'false'' must be true or false"):
        parse_family(with_variable(0, exogenous="false"), "spec.yaml")


def test_candidates_given_as_one_string_say_so() -> None:
    with pytest.raises(SdscmError, match=r"variable 'weather'.*is one string; give a list"):
        parse_family(with_variable(0, candidates="sunny, rainy"), "spec.yaml")


def test_the_shipped_spec_still_parses() -> None:
    assert parse_family(copy.deepcopy(BASE), str(CONFOUNDER)).name == "confounder"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--datasets", "0"], "argument --datasets: expected a positive integer, got '0'"),
        (["--units", "-5"], "argument --units: expected a positive integer, got '-5'"),
        (["--temperature", "0"], "argument --temperature: expected a finite number > 0, got '0'"),
        (["--temperature", "-1"], "argument --temperature: expected a finite number > 0, got '-1'"),
        (["--temperature", "nan"], "argument --temperature: expected a finite number > 0, got 'nan'"),
    ],
)
def test_cli_rejects_zero_and_negative_counts_and_temperatures(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "confounder", "--lm", "tiny-random", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
