"""Spec files: every validation error is actionable, and the shipped families are sound.

Bad specs are written to tmp_path so each test exercises the real file-reading path, and
each error must name the file, the offending item and the problem, because that message is
all a user sees when a benchmark run refuses to start.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml

from sdscm_bench.errors import SpecError
from sdscm_bench.paper_data import default_paper_data_dir
from sdscm_bench.spec import Family, load_family, parse_family

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
SHIPPED = sorted(DATASETS.glob("*.yaml"))


def base_spec() -> dict[str, Any]:
    """A valid three-variable confounder spec that each bad case mutates in one place."""
    return {
        "name": "toy",
        "variables": [
            {
                "name": "weather",
                "candidates": ["sunny", "rainy"],
                "phrasings": ["It is {value}."],
                "exogenous": True,
            },
            {
                "name": "commute",
                "candidates": ["bus", "bicycle"],
                "phrasings": ["Sam takes the {value}."],
                "parents": ["weather"],
            },
            {
                "name": "arrival",
                "candidates": ["on time", "late"],
                "phrasings": ["Sam is {value}."],
                "parents": ["weather", "commute"],
            },
        ],
        "treatment": {"variable": "commute", "control": "bus", "treated": "bicycle"},
        "outcome": {"variable": "arrival", "definition": "score", "candidate": "on time"},
        "settings": {"all covariates": ["weather"]},
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def var(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in spec["variables"] if v["name"] == name)


def _set(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        var(spec, name)[key] = value

    return mutate


def _del(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        del spec[key]

    return mutate


def _outcome_not_descendant(spec: dict[str, Any]) -> None:
    spec["variables"].append(
        {
            "name": "day",
            "candidates": ["Monday", "Friday"],
            "phrasings": ["It is {value}."],
            "exogenous": True,
        }
    )
    spec["outcome"] = {"variable": "day", "definition": "score"}


def _duplicate_variable(spec: dict[str, Any]) -> None:
    spec["variables"].append(copy.deepcopy(var(spec, "weather")))


# (id, mutation, item named in the message, fragments of the problem)
BAD_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, list[str]]] = [
    (
        "unknown-parent",
        _set("commute", "parents", ["weather", "traffic"]),
        "variable 'commute'",
        ["unknown parent 'traffic'"],
    ),
    ("self-parent", _set("commute", "parents", ["commute"]), "variable 'commute'", ["itself as a parent"]),
    (
        "parent-twice",
        _set("commute", "parents", ["weather", "weather"]),
        "variable 'commute'",
        ["parent twice"],
    ),
    ("duplicate-variable", _duplicate_variable, "variable 'weather'", ["declared more than once"]),
    (
        "duplicate-candidates",
        _set("weather", "candidates", ["sunny", "rainy", "sunny"]),
        "variable 'weather'",
        ["duplicate candidates", "'sunny'"],
    ),
    ("empty-candidates", _set("weather", "candidates", []), "variable 'weather'", ["empty candidate set"]),
    (
        "single-candidate",
        _set("weather", "candidates", ["sunny"]),
        "variable 'weather'",
        ["single candidate"],
    ),
    (
        "blank-candidate",
        _set("weather", "candidates", ["sunny", " "]),
        "variable 'weather'",
        ["blank candidate"],
    ),
    (
        "phrasing-without-slot",
        _set("weather", "phrasings", ["It is a nice day."]),
        "variable 'weather'",
        ["'It is a nice day.'", "{value}"],
    ),
    (
        "phrasing-two-slots",
        _set("weather", "phrasings", ["{value} and {value}"]),
        "variable 'weather'",
        ["{value} exactly once"],
    ),
    ("no-phrasings", _set("weather", "phrasings", []), "variable 'weather'", ["at least one phrasing"]),
    (
        "unknown-key",
        _set("weather", "parent", ["commute"]),
        "variable 'weather'",
        ["unknown keys", "'parent'"],
    ),
    ("missing-treatment", _del("treatment"), "treatment", ["is missing"]),
    ("missing-outcome", _del("outcome"), "outcome", ["is missing"]),
    ("missing-settings", _del("settings"), "settings", ["is missing"]),
    ("missing-variables", _del("variables"), "variables", ["is missing"]),
    (
        "treatment-undeclared",
        lambda s: s["treatment"].update(variable="mood"),
        "treatment",
        ["'mood' is not a declared variable"],
    ),
    (
        "control-not-candidate",
        lambda s: s["treatment"].update(control="car"),
        "treatment.control",
        ["'car' is not a candidate of 'commute'"],
    ),
    (
        "control-equals-treated",
        lambda s: s["treatment"].update(control="bicycle"),
        "treatment",
        ["control and treated must differ"],
    ),
    (
        "treatment-exogenous",
        _set("commute", "exogenous", True),
        "treatment",
        ["'commute' is exogenous", "cannot be intervened on"],
    ),
    (
        "outcome-undeclared",
        lambda s: s["outcome"].update(variable="mood"),
        "outcome",
        ["'mood' is not a declared variable"],
    ),
    (
        "outcome-bad-definition",
        lambda s: s["outcome"].update(definition="median"),
        "outcome.definition",
        ["'median'", "score"],
    ),
    (
        "outcome-bad-candidate",
        lambda s: s["outcome"].update(candidate="early"),
        "outcome.candidate",
        ["'early' is not a candidate of 'arrival'"],
    ),
    (
        "outcome-not-descendant",
        _outcome_not_descendant,
        "outcome",
        ["'day' is not a descendant of the treatment 'commute'"],
    ),
    (
        "observed-unknown",
        lambda s: s["settings"].update({"all covariates": ["weather", "mood"]}),
        "settings.all covariates",
        ["unknown variables ['mood']"],
    ),
    (
        "observed-treatment",
        lambda s: s["settings"].update({"all covariates": ["weather", "commute"]}),
        "settings.all covariates",
        ["lists the treatment 'commute'", "remove 'commute' from the setting"],
    ),
    (
        "observed-outcome",
        lambda s: s["settings"].update({"all covariates": ["weather", "arrival"]}),
        "settings.all covariates",
        ["lists the outcome 'arrival'", "leaks the outcome", "remove 'arrival' from the setting"],
    ),
    (
        "observed-twice",
        lambda s: s["settings"].update({"all covariates": ["weather", "weather"]}),
        "settings.all covariates",
        ["lists ['weather'] more than once", "list each variable once"],
    ),
    (
        "observed-empty",
        lambda s: s["settings"].update({"all covariates": []}),
        "settings.all covariates",
        ["non-empty list"],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "item", "fragments"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_spec_names_file_item_and_problem(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], item: str, fragments: list[str]
) -> None:
    spec = base_spec()
    mutate(spec)
    path = write_yaml(tmp_path / "bad.yaml", spec)
    with pytest.raises(SpecError) as info:
        load_family(path)
    msg = str(info.value)
    assert info.value.path == str(path) and msg.startswith(f"{path}: ")
    assert info.value.item == item and f": {item}: " in msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_cycle_is_printed(tmp_path: Path) -> None:
    spec = base_spec()
    var(spec, "commute")["parents"] = ["weather", "arrival"]
    path = write_yaml(tmp_path / "cycle.yaml", spec)
    with pytest.raises(SpecError) as info:
        load_family(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: parents: the DAG has a cycle: ")
    printed = re.search(r"cycle: (.+?);", msg)
    assert printed, msg
    nodes = printed.group(1).split(" -> ")
    assert nodes[0] == nodes[-1] and set(nodes) == {"commute", "arrival"}, msg
    assert "remove one of these edges" in msg


def test_longer_cycle_is_printed(tmp_path: Path) -> None:
    spec = base_spec()
    var(spec, "weather").update(parents=["arrival"], exogenous=False)
    var(spec, "arrival")["parents"] = ["commute"]  # the only cycle: weather -> commute -> arrival
    path = write_yaml(tmp_path / "cycle3.yaml", spec)
    with pytest.raises(SpecError, match="cycle") as info:
        load_family(path)
    printed = re.search(r"cycle: (.+?);", str(info.value))
    assert printed, str(info.value)
    nodes = printed.group(1).split(" -> ")
    assert nodes[0] == nodes[-1] and set(nodes) == {"weather", "commute", "arrival"}
    edges = {(p, v["name"]) for v in spec["variables"] for p in v.get("parents", [])}
    assert all((a, b) in edges for a, b in zip(nodes, nodes[1:], strict=False)), "printed edges exist"


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "spec.txt"
    path.write_text(yaml.safe_dump(base_spec()), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_family(path)
    assert str(info.value) == f"{path}: file: unknown extension; use .yaml, .yml, .toml or .json"


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("bad.yaml", "variables: [unclosed\n  - name: x\n", "YAML"),
        ("bad.yml", "variables:\n  - name: a\n - name: b\n", "YML"),
        ("bad.json", '{"variables": [}', "JSON"),
        ("bad.toml", "name = \n", "TOML"),
    ],
)
def test_invalid_syntax(tmp_path: Path, name: str, text: str, fmt: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_family(path)
    assert str(info.value).startswith(f"{path}: file: is not valid {fmt}: ")


def test_not_a_mapping_and_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"list\.yaml: file: must hold a mapping"):
        load_family(path)
    missing = tmp_path / "absent.yaml"
    with pytest.raises(SpecError, match=r"absent\.yaml: file: cannot be read"):
        load_family(missing)


TOML_SPEC = """
name = "toy"

[[variables]]
name = "weather"
candidates = ["sunny", "rainy"]
phrasings = ["It is {value}."]
exogenous = true

[[variables]]
name = "commute"
candidates = ["bus", "bicycle"]
phrasings = ["Sam takes the {value}."]
parents = ["weather"]

[[variables]]
name = "arrival"
candidates = ["on time", "late"]
phrasings = ["Sam is {value}."]
parents = ["weather", "commute"]

[treatment]
variable = "commute"
control = "bus"
treated = "bicycle"

[outcome]
variable = "arrival"
definition = "score"
candidate = "on time"

[settings]
"all covariates" = ["weather"]
"""


def test_toml_and_json_load_like_yaml(tmp_path: Path) -> None:
    from_yaml = load_family(write_yaml(tmp_path / "toy.yaml", base_spec()))
    toml_path = tmp_path / "toy.toml"
    toml_path.write_text(TOML_SPEC, encoding="utf-8")
    json_path = tmp_path / "toy.json"
    json_path.write_text(json.dumps(base_spec()), encoding="utf-8")
    from_toml, from_json = load_family(toml_path), load_family(json_path)
    assert from_toml == from_yaml == from_json
    assert from_toml.fingerprint() == from_yaml.fingerprint() == from_json.fingerprint()
    assert from_toml.path == str(toml_path)


def test_bad_toml_spec(tmp_path: Path) -> None:
    path = tmp_path / "dup.toml"
    path.write_text(TOML_SPEC.replace('["sunny", "rainy"]', '["sunny", "sunny"]'), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_family(path)
    assert str(info.value) == f"{path}: variable 'weather': has duplicate candidates ['sunny']"


def test_bad_json_spec(tmp_path: Path) -> None:
    spec = base_spec()
    var(spec, "arrival")["parents"] = ["weather", "commute", "traffic"]
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_family(path)
    assert str(info.value) == f"{path}: variable 'arrival': has unknown parent 'traffic'"


# --- ordering -------------------------------------------------------------------------------------


def reference_order(family: Family) -> list[str]:
    """Kahn's algorithm that always takes the earliest-declared ready variable."""
    placed: list[str] = []
    remaining = list(family.variables)
    while remaining:
        ready = next(v for v in remaining if set(v.parents) <= set(placed))
        placed.append(ready.name)
        remaining.remove(ready)
    return placed


def test_order_is_topological_and_stable_on_a_scrambled_spec() -> None:
    spec = base_spec()
    spec["variables"] = [
        {
            "name": "arrival",
            "candidates": ["on time", "late"],
            "phrasings": ["{value}"],
            "parents": ["commute", "weather"],
        },
        {"name": "day", "candidates": ["Mon", "Fri"], "phrasings": ["{value}"]},
        {
            "name": "commute",
            "candidates": ["bus", "bicycle"],
            "phrasings": ["{value}"],
            "parents": ["weather"],
        },
        {"name": "mood", "candidates": ["calm", "tense"], "phrasings": ["{value}"]},
        {"name": "weather", "candidates": ["sunny", "rainy"], "phrasings": ["{value}"]},
    ]
    family = parse_family(spec)
    assert family.order() == ["day", "mood", "weather", "commute", "arrival"]
    assert family.order() == reference_order(family)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_spec_loads_with_sound_order(path: Path) -> None:
    family = load_family(path)
    order = family.order()
    assert sorted(order) == sorted(v.name for v in family.variables)
    position = {name: i for i, name in enumerate(order)}
    for v in family.variables:
        assert all(position[p] < position[v.name] for p in v.parents), v.name
    assert order == reference_order(family)
    assert order == family.order(), "order must not change between calls"
    assert family.outcome.variable in family.descendants(family.treatment.variable)
    assert not family.by_name[family.treatment.variable].exogenous
    for v in family.variables:
        assert all(len(p.prefix + p.suffix) > 0 for p in v.phrasings), v.name
    assert family.description, "every shipped family explains itself"
    assert path.read_text(encoding="utf-8").startswith("#"), "a comment at the top tells the story"


def test_expected_families_ship() -> None:
    stems = {p.stem for p in SHIPPED}
    assert {"oncology", "confounder", "collider"} <= stems and len(stems) >= 4


def test_shipped_stories_have_their_structure() -> None:
    """The toy families must show the structure they are named for."""
    conf = load_family(DATASETS / "confounder.yaml")
    g = conf.graph()
    t, y = conf.treatment.variable, conf.outcome.variable
    confounders = set(g.predecessors(t)) & set(g.predecessors(y))
    assert confounders and not confounders & set(conf.settings["hidden confounding"])
    assert confounders <= set(conf.settings["all covariates"])

    col = load_family(DATASETS / "collider.yaml")
    g = col.graph()
    colliders = [n for n in g if g.in_degree(n) >= 2]
    assert colliders
    found = False
    for c in colliders:
        parents = list(g.predecessors(c))
        for i, a in enumerate(parents):
            for b in parents[i + 1 :]:
                if nx.is_d_separator(g, {a}, {b}, set()) and not nx.is_d_separator(g, {a}, {b}, {c}):
                    found = True
    assert found, "a marginally independent pair made dependent by conditioning on its collider"

    for path in SHIPPED:
        fam = load_family(path)
        if "hidden confounding" in fam.settings:
            g = fam.graph()
            t, y = fam.treatment.variable, fam.outcome.variable
            gb = g.copy()
            gb.remove_edges_from(list(g.out_edges(t)))  # back-door graph
            hidden = set(fam.settings["hidden confounding"])
            assert not nx.is_d_separator(gb, {t}, {y}, hidden), f"{path.name}: hidden setting must confound"


# --- fingerprint ----------------------------------------------------------------------------------


def test_fingerprint_tracks_content_not_path(tmp_path: Path) -> None:
    source = (DATASETS / "confounder.yaml").read_text(encoding="utf-8")
    a = tmp_path / "a.yaml"
    b = tmp_path / "sub" / "b.yaml"
    b.parent.mkdir()
    a.write_text(source, encoding="utf-8")
    b.write_text(source, encoding="utf-8")
    fa, fb = load_family(a), load_family(b)
    assert fa.path != fb.path and fa.fingerprint() == fb.fingerprint()
    assert fa.fingerprint() == load_family(DATASETS / "confounder.yaml").fingerprint()

    spec = yaml.safe_load(source)
    spec["variables"][0]["phrasings"][0] = spec["variables"][0]["phrasings"][0].replace("morning", "evening")
    changed = load_family(write_yaml(tmp_path / "c.yaml", spec))
    assert changed.fingerprint() != fa.fingerprint()
    assert parse_family(spec, "x.yaml").fingerprint() == parse_family(spec, "y/z.json").fingerprint()


# --- oncology vs the paper's configuration --------------------------------------------------------


@pytest.fixture(scope="module")
def paper_config() -> dict[str, Any]:
    root = default_paper_data_dir()
    path = root / "breast_cancer_config.json" if root else None
    if path is None or not path.is_file():
        pytest.skip(
            f"paper config breast_cancer_config.json not found (looked in {root or '<repo>/../shared'}); "
            "set SDSCM_PAPER_DATA or place sdscm-paper-data next to the repository (../shared/sdscm-paper-data)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.paper_data
def test_oncology_matches_paper_config(paper_config: dict[str, Any]) -> None:
    family = load_family(DATASETS / "oncology.yaml")
    space = paper_config["setup_sequence_sample_space"]
    names = [v["variable_name"] for v in space]
    assert [v.name for v in family.variables] == names
    for mine, theirs in zip(family.variables, space, strict=True):
        assert list(mine.candidates) == theirs["candidate_set"], mine.name
        assert list(mine.parents) == [names[i] for i in theirs["parent_indices"] or []], mine.name
        assert mine.exogenous == bool(theirs["exogenous"]), mine.name
        assert 3 <= len(mine.phrasings) <= 5, mine.name
    t_var = family.variables[paper_config["index_of_intervention"]]
    assert family.treatment.variable == t_var.name
    assert [
        family.index_of(t_var.name, family.treatment.control),
        family.index_of(t_var.name, family.treatment.treated),
    ] == paper_config["intervention_choices"]
    o_var = family.variables[paper_config["index_of_outcome"]]
    assert family.outcome.variable == o_var.name
    assert (family.outcome.definition, family.outcome.candidate) == ("score", o_var.candidates[0])
    assert list(family.settings["all covariates"]) == names[:12]
    assert list(family.settings["hidden confounding"]) == names[4:12]


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.mark.paper_data
def test_no_paper_phrasing_is_copied(paper_config: dict[str, Any]) -> None:
    """Licensing: the repository writes its own phrasings; no config text may appear in datasets/."""
    pieces: set[str] = set()
    for v in paper_config["setup_sequence_sample_space"]:
        for pair in v["possible_prefix_suffix_pairs"]:
            for text in pair:
                pieces.add(text)
                pieces.update(re.split(r"(?<=[.?!])\s+", text))  # each sentence on its own
            pieces.add(pair[0] + pair[1])
    pieces = {_normalise(p) for p in pieces if len(p.strip()) > 15}
    assert len(pieces) > 100
    for path in sorted(DATASETS.iterdir()):
        if path.is_file():
            text = _normalise(path.read_text(encoding="utf-8"))
            copied = sorted(p for p in pieces if p in text)
            assert not copied, f"{path.name} contains text from the paper's config: {copied[:3]}"


def test_unquoted_yaml_booleans_are_rejected_not_turned_into_text(tmp_path):
    """YAML reads yes/no as booleans; silently prompting the LM with 'True'/'False' would corrupt the data."""
    spec = tmp_path / "bools.yaml"
    spec.write_text(
        "variables:\n"
        "  - {name: a, candidates: [no, yes], phrasings: ['A is {value}.']}\n"
        "  - {name: b, parents: [a], candidates: [x, y], phrasings: ['B is {value}.']}\n"
        "treatment: {variable: a, control: 'no', treated: 'yes'}\n"
        "outcome: {variable: b, definition: score, candidate: x}\n"
        "settings: {all: [b]}\n"
    )
    with pytest.raises(SpecError, match="quote values") as info:
        load_family(spec)
    assert "bools.yaml" in str(info.value) and "variable 'a'" in str(info.value)


def test_non_utf8_spec_is_a_spec_error(tmp_path):
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="UTF-8"):
        load_family(spec)
