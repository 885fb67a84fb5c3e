"""Stable LM keys (``sdscm_bench.lm_names``): a local checkpoint is ``<dir>-<weights fingerprint>``."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdscm_bench import lm
from sdscm_bench.errors import ModelLoadError
from sdscm_bench.lm_names import BUILTIN_ALIASES, lm_key, resolve_lm
from sdscm_bench.plan import Case, resolve_options


def checkpoint(folder: Path, weights: bytes = b"weights-v1") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_the_aliases_are_those_of_the_lm_module() -> None:
    assert set(BUILTIN_ALIASES) == {*lm.EMBEDDED_ALIASES, *lm.TINY_ALIASES}


@pytest.mark.parametrize(
    "name", ["smollm2", "tiny-random", "paper-gpt2", "gpt2", "meta-llama/Meta-Llama-3-8B"]
)
def test_named_lms_keep_their_names(name: str, tmp_path: Path) -> None:
    # A directory of the same name in the base folder does not shadow an alias or a paper LM.
    if "/" not in name:
        checkpoint(tmp_path / name)
    ref = resolve_lm(name, base=tmp_path if name != "gpt2" else None)
    assert ref.key == name and ref.source == name
    assert ref.paper == name.startswith("paper-")


def test_a_local_directory_is_keyed_by_its_name_and_weights(tmp_path: Path) -> None:
    model = checkpoint(tmp_path / "a" / "my model")
    expected = "my_model-" + lm._file_fingerprint([model / "model.safetensors"])[:8]
    ref = resolve_lm(str(model))
    assert ref.key == expected and ref.source == str(model.resolve()) and not ref.paper
    # The same weights elsewhere (another machine, another checkout) get the same key ...
    assert lm_key(str(checkpoint(tmp_path / "b" / "my model"))) == expected
    # ... given relative to a base folder too; other weights get another key.
    assert lm_key("a/my model", base=tmp_path) == expected
    assert lm_key(str(checkpoint(tmp_path / "c" / "my model", b"weights-v2"))) != expected


def test_a_local_directory_named_like_a_paper_lm_is_not_read_as_one(tmp_path: Path) -> None:
    ref = resolve_lm(str(checkpoint(tmp_path / "paper-gpt2-finetuned")))
    assert ref.key.startswith("local-paper-gpt2-finetuned-") and not ref.paper


def test_a_directory_without_weights_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"empty holds no weight files \(\*\.safetensors, \*\.bin\)"):
        resolve_lm(str(tmp_path / "empty"))


def test_the_plan_uses_the_key_and_loads_from_the_path(tmp_path: Path) -> None:
    model = checkpoint(tmp_path / "mymodel")
    key = lm_key(str(model))
    options = resolve_options(
        estimators="diff_in_means", lms=["mymodel", str(model)], family="confounder", base=tmp_path
    )
    assert options.lms == [key]  # two spellings of one checkpoint are one LM
    assert options.lm_ref(key).source == str(model.resolve())
    assert options.as_header()["lm_paths"] == {key: str(model.resolve())}
    assert Case("diff_in_means", key, "all covariates").id == f"diff_in_means-{key}-all_covariates"


def test_cache_identity_of_a_local_directory_does_not_depend_on_its_path(tmp_path: Path) -> None:
    """The dataset cache key uses the LM identity: a moved checkout must not regenerate its datasets."""
    one = lm.lm_identity(str(checkpoint(tmp_path / "x" / "ckpt")), "float32", "cpu")
    two = lm.lm_identity(str(checkpoint(tmp_path / "y" / "ckpt")), "float32", "cpu")
    assert one == two and one["lm"] == lm_key(str(tmp_path / "x" / "ckpt")) and str(tmp_path) not in one["lm"]
