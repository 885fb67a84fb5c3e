"""Family knobs: per-variable temperature, spec-level scoring, named variants, quality thresholds,
and the validator's warnings (post-treatment adjustment, "hidden" settings that hide nothing,
variables that cannot affect the outcome)."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from sdscm_bench.cache import dataset_key
from sdscm_bench.cli import main
from sdscm_bench.errors import SpecError
from sdscm_bench.families import FamilyRequest, load_or_generate
from sdscm_bench.generate import GenerationSettings, generate_dataset
from sdscm_bench.lm import LanguageModel, lm_identity
from sdscm_bench.spec import QUALITY_KEYS, Family, SpecWarning, load_family, parse_family, spec_warnings

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
CONFOUNDER = DATASETS / "confounder.yaml"

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Single-token candidates: under the tiny random LM the treatment's softmax is near uniform at T = 1.
TOY = """\
name: toy
variables:
  - name: grade
    exogenous: true
    candidates: ["low", "high"]
    phrasings: ["Levels are {value}."]
  - name: season
    exogenous: true
    candidates: ["summer", "winter"]
    phrasings: ["The season is {value}."]
  - name: therapy
    parents: [grade]
    candidates: ["started", "stopped"]
    phrasings: ["Treatment is {value}."]
  - name: result
    parents: [grade, season, therapy]
    candidates: ["positive", "negative"]
    phrasings: ["The result is {value}."]
treatment: {variable: therapy, control: stopped, treated: started}
outcome: {variable: result, definition: probability, candidate: positive}
settings:
  all covariates: [grade, season]
  hidden confounding: [season]
"""


def toy() -> dict[str, Any]:
    return yaml.safe_load(TOY)


def var(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in spec["variables"] if v["name"] == name)


def write(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def quiet_parse(spec: dict[str, Any], path: str = "toy.yaml") -> Family:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)
        return parse_family(spec, path)


def logp(ds, variable: str, n: int) -> np.ndarray:
    return ds.table[[f"logp:{variable}={k}" for k in range(n)]].to_numpy()


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- parsing --------------------------------------------------------------------------------------


def with_variants(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    spec["scoring"] = "mean"
    spec["quality"] = {"min_treated_share": 0.1, "max_value_share": None}
    spec["variants"] = {
        "strong confounding": {"temperature": {"therapy": 0.5}},
        "weak overlap": {
            "temperature": {"therapy": 0.25},
            "scoring": "sum",
            "quality": {"min_ess_share": 0.2},
        },
        "quality only": {"quality": {"min_treated_share": 0.05}},
    }
    return spec


def test_variants_quality_scoring_and_temperature_are_parsed() -> None:
    spec = with_variants(toy())
    var(spec, "result")["temperature"] = 2
    fam = parse_family(spec, "toy.yaml")
    assert fam.scoring == "mean" and fam.variant_name is None
    assert fam.quality == {"min_treated_share": 0.1, "max_value_share": None}
    assert fam.temperature_of("result") == 2.0 and fam.temperature_of("therapy", 1.5) == 1.5
    assert list(fam.variants) == ["strong confounding", "weak overlap", "quality only"]

    strong = fam.variant("strong confounding")
    assert strong.name == "toy" and strong.variant_name == "strong confounding"
    assert strong.temperature_of("therapy") == 0.5 and strong.temperature_of("result") == 2.0
    assert strong.scoring == "mean" and strong.quality == fam.quality
    weak = fam.variant("weak_overlap")  # the test-id form works too
    assert weak.variant_name == "weak overlap" and weak.scoring == "sum"
    assert weak.quality == {"min_treated_share": 0.1, "max_value_share": None, "min_ess_share": 0.2}
    assert fam.variant("quality only").quality["min_treated_share"] == 0.05
    assert fam.variant(None) is fam and fam.variant("base") is fam
    assert fam.quality == {"min_treated_share": 0.1, "max_value_share": None}  # the base is untouched
    with pytest.raises(SpecError, match=r"toy.yaml: variant 'nope': is not defined; .*'strong confounding'"):
        fam.variant("nope")
    with pytest.raises(SpecError, match="apply it to the base family"):
        strong.variant("weak overlap")


def test_fingerprints_of_variants_differ_and_unused_knobs_change_nothing() -> None:
    base = toy()
    plain = quiet_parse(base)
    fam = quiet_parse(with_variants(base))
    # Variant definitions, quality thresholds and the spec's scoring default are not in the base's fingerprint
    # (the effective scoring is in the cache key), so adding them keeps existing cache entries valid.
    assert fam.fingerprint() == plain.fingerprint()
    prints = [fam.fingerprint()] + [fam.variant(name).fingerprint() for name in fam.variants]
    assert len(set(prints)) == len(prints), prints  # even "quality only", which samples like the base
    assert fam.variant("strong confounding").fingerprint() == fam.variant("strong_confounding").fingerprint()
    # A per-variable temperature is in the fingerprint; the same temperature written in the spec gives the
    # same data but a differently named family than the variant (the variant's name is in its fingerprint).
    hot = toy()
    var(hot, "therapy")["temperature"] = 0.5
    assert quiet_parse(hot).fingerprint() not in prints
    hot2 = toy()
    var(hot2, "therapy")["temperature"] = 0.25
    assert quiet_parse(hot2).fingerprint() != quiet_parse(hot).fingerprint()


def test_shipped_fingerprints_are_unchanged() -> None:
    """Specs that use none of the new fields keep their fingerprints (and so their cache keys).

    The values are those of the code before per-variable temperatures and variants existed
    (agriculture was re-tuned with temperatures since, and its fingerprint changed with it).
    """
    assert load_family(DATASETS / "oncology.yaml").fingerprint() == "6ddb0bb55627e841"


def _set_var(name: str, key: str, value: Any):
    def mutate(spec: dict[str, Any]) -> None:
        var(spec, name)[key] = value

    return mutate


def _set(key: str, value: Any):
    def mutate(spec: dict[str, Any]) -> None:
        spec[key] = value

    return mutate


BAD = [
    (
        "temperature-zero",
        _set_var("therapy", "temperature", 0),
        "variable 'therapy'",
        ["temperature 0", "positive"],
    ),
    ("temperature-negative", _set_var("therapy", "temperature", -1.5), "variable 'therapy'", ["-1.5"]),
    (
        "temperature-text",
        _set_var("therapy", "temperature", "hot"),
        "variable 'therapy'",
        ["'hot'", "drop it"],
    ),
    ("temperature-bool", _set_var("therapy", "temperature", True), "variable 'therapy'", ["True"]),
    (
        "temperature-nan",
        _set_var("therapy", "temperature", math.nan),
        "variable 'therapy'",
        ["nan", "finite"],
    ),
    ("temperature-inf", _set_var("therapy", "temperature", math.inf), "variable 'therapy'", ["inf"]),
    ("scoring", _set("scoring", "median"), "scoring", ["'median'", "sum", "mean"]),
    ("quality-key", _set("quality", {"min_overlap": 0.5}), "quality.min_overlap", ["min_overlap_share"]),
    ("quality-range", _set("quality", {"min_ess_share": 1.5}), "quality.min_ess_share", ["[0, 1]", "null"]),
    ("quality-text", _set("quality", {"min_ess_share": "a lot"}), "quality.min_ess_share", ["'a lot'"]),
    ("quality-list", _set("quality", [0.5]), "quality", ["min_treated_share"]),
    ("variants-list", _set("variants", ["strong"]), "variants", ["must map a variant name"]),
    (
        "variant-unknown-variable",
        _set("variants", {"strong": {"temperature": {"PD-L1 level": 0.5}}}),
        "variants.strong.temperature",
        ["unknown variable 'PD-L1 level'", "therapy"],
    ),
    (
        "variant-bad-temperature",
        _set("variants", {"strong": {"temperature": {"therapy": 0}}}),
        "variants.strong.temperature.therapy",
        ["temperature 0", "positive"],
    ),
    (
        "variant-unknown-key",
        _set("variants", {"strong": {"temperatures": {"therapy": 0.5}}}),
        "variants.strong",
        ["unknown keys ['temperatures']", "temperature"],
    ),
    ("variant-empty", _set("variants", {"strong": {}}), "variants.strong", ["at least one of"]),
    (
        "variant-scoring",
        _set("variants", {"strong": {"scoring": "max"}}),
        "variants.strong.scoring",
        ["'max'"],
    ),
    (
        "variant-quality",
        _set("variants", {"strong": {"quality": {"min_ess_share": -0.1}}}),
        "variants.strong.quality.min_ess_share",
        ["[0, 1]"],
    ),
    (
        "variant-temperature-not-mapping",
        _set("variants", {"strong": {"temperature": 0.5}}),
        "variants.strong.temperature",
        ["must map variable names"],
    ),
    ("variant-base", _set("variants", {"base": {"scoring": "sum"}}), "variants.base", ["rename"]),
    (
        "variant-same-slug",
        _set("variants", {"a b": {"scoring": "sum"}, "a_b": {"scoring": "mean"}}),
        "variants.a_b",
        ["same test-id form as variant 'a b'"],
    ),
]


@pytest.mark.parametrize(("mutate", "item", "fragments"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_knobs_name_file_item_and_fix(tmp_path: Path, mutate, item: str, fragments: list[str]) -> None:
    spec = toy()
    mutate(spec)
    path = tmp_path / "bad.json"  # JSON keeps NaN and Infinity as numbers
    path.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_family(path)
    msg = str(info.value)
    assert info.value.path == str(path) and info.value.item == item, msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_quality_keys_are_the_documented_ones() -> None:
    spec = toy()
    spec["quality"] = dict.fromkeys(QUALITY_KEYS, 0.5)
    assert set(quiet_parse(spec).quality) == set(QUALITY_KEYS) == {
        "min_treated_share", "max_treated_share", "min_overlap_share", "min_ess_share",
        "min_nonzero_ite_share", "max_outcome_share", "max_value_share",
    }  # fmt: skip


# --- per-variable temperature in the sampler ---------------------------------------------------------


def test_cold_treatment_is_the_argmax_of_its_scores(tiny_lm: LanguageModel) -> None:
    settings = GenerationSettings(200, seed=3)
    base = generate_dataset(quiet_parse(toy()), tiny_lm, settings)
    cold_spec = toy()
    var(cold_spec, "therapy")["temperature"] = 1e-6
    cold = generate_dataset(quiet_parse(cold_spec), tiny_lm, settings)
    for ds in (base, cold):  # same contexts, same scores: the temperature changes only the draw
        np.testing.assert_allclose(logp(ds, "therapy", 2), logp(base, "therapy", 2), rtol=0, atol=1e-9)
    scores = logp(cold, "therapy", 2)
    assert (cold.table["therapy"].to_numpy() == scores.argmax(axis=1)).all()
    assert (base.table["therapy"].to_numpy() == scores.argmax(axis=1)).mean() < 0.8  # T = 1 is not argmax
    # The propensity uses the treatment's own temperature: 0 or 1 here, ~0.48 at T = 1.
    assert set(np.unique(cold.table["propensity"])) <= {0.0, 1.0}
    expected = (scores.argmax(axis=1) == 0).astype(float)  # "started" (index 0) is the treated value
    np.testing.assert_allclose(cold.table["propensity"], expected, rtol=0, atol=1e-12)
    assert 0.3 < base.table["propensity"].min() <= base.table["propensity"].max() < 0.7
    # Untouched variables keep their values; the outcome's temperature is the global one.
    for v in ("grade", "season"):
        assert (cold.table[v] == base.table[v]).all()
    assert (
        cold.meta["variable_temperatures"] == {"therapy": 1e-6} and base.meta["variable_temperatures"] == {}
    )


def test_hot_treatment_is_near_uniform(tiny_lm: LanguageModel) -> None:
    """confounder.yaml's multi-token treatment is deterministic at T = 1 under the tiny LM; T = 1e4 flattens it."""
    spec = yaml.safe_load(CONFOUNDER.read_text())
    var(spec, "commute")["temperature"] = 1.0  # the shipped spec flattens it (2.0); start from the LM's own
    settings = GenerationSettings(400, seed=3, scoring="sum")
    base = generate_dataset(quiet_parse(spec, str(CONFOUNDER)), tiny_lm, settings)
    var(spec, "commute")["temperature"] = 1e4
    hot = generate_dataset(quiet_parse(spec, str(CONFOUNDER)), tiny_lm, settings)
    assert base.table["t"].mean() in (0.0, 1.0) and base.table["propensity"].max() < 1e-6
    assert 0.4 < hot.table["t"].mean() < 0.6
    np.testing.assert_allclose(hot.table["propensity"], 0.5, atol=1e-3)


def test_probability_outcome_uses_the_outcome_temperature(tiny_lm: LanguageModel) -> None:
    spec = toy()
    var(spec, "result")["temperature"] = 0.01
    ds = generate_dataset(quiet_parse(spec), tiny_lm, GenerationSettings(60, seed=1, temperature=3.0))
    z = logp(ds, "result", 2)
    np.testing.assert_allclose(ds.table["y"], softmax(z / 0.01)[:, 0], rtol=0, atol=1e-9)
    # The treatment has no temperature of its own: the global 3.0.
    np.testing.assert_allclose(ds.table["propensity"], softmax(logp(ds, "therapy", 2) / 3.0)[:, 0], atol=1e-9)
    assert not np.allclose(ds.table["y"], softmax(z / 3.0)[:, 0], atol=1e-3)


# --- scoring default, cache keys, variants through the family loader -----------------------------------


def test_spec_scoring_is_the_default_and_an_explicit_scoring_wins(tmp_path: Path) -> None:
    spec = toy()
    spec["scoring"] = "mean"
    path = write(tmp_path / "toy.yaml", spec)
    cache = tmp_path / "cache"
    common = {"spec": path, "lm": "tiny-random", "n_units": 8, "cache_dir": cache, "device": "cpu"}
    (default,) = load_or_generate(FamilyRequest(**common), progress=False)
    (explicit,) = load_or_generate(FamilyRequest(**common, scoring="sum"), progress=False)
    (same,) = load_or_generate(FamilyRequest(**common, scoring="mean"), progress=False)
    assert default.meta["scoring"] == "mean" and explicit.meta["scoring"] == "sum"
    assert default.meta["cache_key"] != explicit.meta["cache_key"]
    assert same.meta["cache_key"] == default.meta["cache_key"]  # the key holds the effective scoring
    # The key is exactly today's key for that scoring: a spec without 'scoring:' asked for mean explicitly.
    plain = quiet_parse(toy())
    identity = lm_identity("tiny-random", "auto", "cpu")
    family = quiet_parse(spec)
    assert dataset_key(family, identity, GenerationSettings(8, 0)) == dataset_key(
        plain, identity, GenerationSettings(8, 0, scoring="mean")
    )
    assert dataset_key(plain, identity, GenerationSettings(8, 0)) == dataset_key(
        plain, identity, GenerationSettings(8, 0, scoring="sum")
    )
    # And without any request, scoring falls back to sum.
    (fallback,) = load_or_generate(
        FamilyRequest(**{**common, "spec": write(tmp_path / "p.yaml", toy())}), False
    )
    assert fallback.meta["scoring"] == "sum"


def test_each_variant_is_its_own_cached_family(tmp_path: Path) -> None:
    path = write(tmp_path / "toy.yaml", with_variants(toy()))
    common = {"spec": path, "lm": "tiny-random", "n_units": 40, "cache_dir": tmp_path / "c", "device": "cpu"}
    (base,) = load_or_generate(FamilyRequest(**common, scoring="sum"), progress=False)
    (strong,) = load_or_generate(FamilyRequest(**common, scoring="sum", variant="strong_confounding"), False)
    (weak,) = load_or_generate(FamilyRequest(**common, variant="weak overlap"), progress=False)
    keys = {ds.meta["cache_key"] for ds in (base, strong, weak)}
    assert len(keys) == 3
    assert base.meta["variant"] is None and base.name == "toy/seed0"
    assert strong.meta["variant"] == "strong confounding" and strong.name == "toy/strong confounding/seed0"
    assert strong.family.name == "toy" and strong.family.variant_name == "strong confounding"
    assert weak.meta["scoring"] == "sum" and base.meta["scoring"] == "sum"  # spec says mean; both overridden
    assert strong.meta["variable_temperatures"] == {"therapy": 0.5}
    assert strong.meta["cache_path"] != base.meta["cache_path"]
    (again,) = load_or_generate(FamilyRequest(**common, scoring="sum", variant="strong confounding"), False)
    assert again.meta["cache_key"] == strong.meta["cache_key"]


def test_cli_generate_variant_show_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "toy.yaml", with_variants(toy()))
    args = [
        "generate",
        str(path),
        "--lm",
        "tiny-random",
        "--units",
        "6",
        "--quiet",
        "--cache-dir",
        str(tmp_path),
    ]
    assert main([*args, "--variant", "strong_confounding"]) == 0
    assert "toy/strong confounding/seed0: 6 units" in capsys.readouterr().out
    assert main([*args, "--variant", "nope"]) == 2
    err = capsys.readouterr().err
    assert "variant 'nope': is not defined" in err and "'weak overlap'" in err
    assert main(["show", str(path)]) == 0
    assert "variants: 'strong confounding', 'weak overlap', 'quality only'" in capsys.readouterr().out
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: ok" in out and "variant 'weak overlap': fingerprint " in out


# --- validator warnings -----------------------------------------------------------------------------


CLEAN = """\
name: clean
variables:
  - {name: weather, exogenous: true, candidates: [sunny, rainy], phrasings: ["It is {value}."]}
  - {name: day, exogenous: true, candidates: [Monday, Friday], phrasings: ["It is {value}."]}
  - {name: commute, parents: [weather], candidates: [bus, bicycle], phrasings: ["Sam takes the {value}."]}
  - {name: arrival, parents: [weather, day, commute], candidates: [early, late], phrasings: ["Sam is {value}."]}
treatment: {variable: commute, control: bus, treated: bicycle}
outcome: {variable: arrival, definition: category, candidate: early}
settings:
  all covariates: [weather, day]
  hidden confounding: [day]
"""


def clean() -> dict[str, Any]:
    return yaml.safe_load(CLEAN)


def warned(tmp_path: Path, spec: dict[str, Any]) -> tuple[Path, list[str]]:
    path = write(tmp_path / "spec.yaml", spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        family = load_family(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, SpecWarning)]
    assert messages == spec_warnings(family)
    return path, messages


def test_a_clean_spec_raises_no_warning(tmp_path: Path) -> None:
    assert warned(tmp_path, clean())[1] == []


def test_post_treatment_adjustment_is_warned(tmp_path: Path) -> None:
    spec = clean()
    spec["variables"].append(
        {
            "name": "photo",
            "parents": ["commute", "arrival"],
            "candidates": ["yes", "no"],
            "phrasings": ["{value}"],
        }
    )
    spec["settings"]["all covariates"].append("photo")
    path, messages = warned(tmp_path, spec)
    post = [m for m in messages if "descendants of the treatment" in m]
    assert len(post) == 1 and post[0].startswith(f"{path}: settings.all covariates: observes ['photo']")
    assert "remove them from the setting" in post[0]
    useless = [m for m in messages if "variable 'photo'" in m]
    assert len(useless) == 1 and "cannot affect the outcome 'arrival'" in useless[0]
    assert "settings ['all covariates'] observe it" in useless[0]


def test_hidden_setting_that_hides_nothing_is_warned(tmp_path: Path) -> None:
    spec = clean()
    spec["settings"]["hidden confounding"] = ["weather"]
    path, messages = warned(tmp_path, spec)
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}: settings.hidden confounding: is named as hiding confounding")
    assert "['weather']" in messages[0] and "leave at least one of them out" in messages[0]
    # No common cause at all: nothing to hide either.
    spec = clean()
    var(spec, "commute")["parents"] = []
    _, messages = warned(tmp_path, spec)
    assert len(messages) == 1 and "have no common cause" in messages[0]


def test_variables_that_cannot_affect_the_outcome_are_warned(tmp_path: Path) -> None:
    spec = clean()
    spec["variables"].append(
        {"name": "mood", "candidates": ["calm", "tense"], "phrasings": ["Sam is {value}."]}
    )
    path, messages = warned(tmp_path, spec)
    assert len(messages) == 1
    assert messages[0].startswith(f"{path}: variable 'mood': cannot affect the outcome 'arrival'")
    assert "no setting observes it" in messages[0] and "wasted" in messages[0]


def test_validate_prints_warnings_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = clean()
    spec["settings"]["hidden confounding"] = ["weather", "day"]
    path = write(tmp_path / "spec.yaml", spec)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: ok" in out and f"  warning: {path}: settings.hidden confounding: is named" in out
    assert main(["validate", str(write(tmp_path / "clean.yaml", clean()))]) == 0
    assert "  warning: " not in capsys.readouterr().out
