"""The README's spec example is a valid spec, so the documented schema cannot drift from the parser."""

from __future__ import annotations

import re

from sdscm_bench.paths import repo_root
from sdscm_bench.spec import load_family


def test_readme_spec_example_validates(tmp_path):
    text = (repo_root() / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no yaml spec example"
    spec = tmp_path / "example.yaml"
    spec.write_text(blocks[0], encoding="utf-8")
    family = load_family(spec)
    assert family.treatment.variable in family.order()
    assert family.outcome.variable in family.descendants(family.treatment.variable)
