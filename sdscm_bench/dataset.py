"""The dataset type shared by the generator, the released-data loader and the harness.

A dataset is one table (one row per unit) plus JSON metadata. Column names:

- ``<variable>``: factual value, as an index into the variable's candidates.
- ``<variable>|do(<treatment>=<value>)``: value of each treatment descendant in that world.
- ``logp:<variable>=<candidate index>``: LM score of a treatment or outcome candidate in the
  factual world; with ``|do(...)`` appended, in that interventional world.
- ``t`` (1 treated, 0 control, -1 another value), ``propensity`` (P(T = treated) in the world the
  data come from: observationally P(treated | parents) under the domain-restricted softmax at the
  treatment's temperature; under ``--rct`` the assignment probability 1 / #candidates; under
  ``do(T = v)`` 1.0 or 0.0; ``meta["propensity_definition"]`` says which), ``y``, ``y0``, ``y1``
  (outcome in the factual, do(control) and do(treated) worlds) and ``ite`` (= ``y1 - y0``, the
  true per-unit effect).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdscm_bench.spec import Family

FORMAT_VERSION = 1


def do_suffix(treatment: str, value: str) -> str:
    return f"|do({treatment}={value})"


def logp_column(variable: str, index: int, world: str = "") -> str:
    return f"logp:{variable}={index}{world}"


@dataclass
class SDSCMDataset:
    """One dataset of an SD-SCM family: units, ground truth and provenance."""

    table: pd.DataFrame
    family: Family
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.family.name))

    def __len__(self) -> int:
        return len(self.table)

    def _binary_rows(self) -> np.ndarray:
        return self.table["t"].to_numpy() >= 0

    @property
    def t(self) -> np.ndarray:
        """Binary treatment of the units whose treatment is control or treated."""
        return self.table["t"].to_numpy()[self._binary_rows()].astype(np.int64)

    @property
    def y(self) -> np.ndarray:
        return self.table["y"].to_numpy(dtype=np.float64)[self._binary_rows()]

    @property
    def ite(self) -> np.ndarray:
        """True per-unit effect y(treated) - y(control) from the counterfactual worlds."""
        return self.table["ite"].to_numpy(dtype=np.float64)[self._binary_rows()]

    @property
    def sate(self) -> float:
        return float(np.mean(self.ite))

    def covariates(self, setting: str, encoding: str = "onehot") -> np.ndarray:
        """Observed covariates of a confounding setting as a float matrix.

        ``onehot`` gives one indicator column per non-reference candidate (the first
        candidate is the reference); ``ordinal`` gives the candidate indices.
        """
        if setting not in self.family.settings:
            raise KeyError(f"unknown setting {setting!r}; this family has {sorted(self.family.settings)}")
        rows = self._binary_rows()
        cols: list[np.ndarray] = []
        for name in self.family.settings[setting]:
            codes = self.table[name].to_numpy()[rows]
            if encoding == "ordinal":
                cols.append(codes[:, None].astype(np.float64))
            elif encoding == "onehot":
                n_cand = len(self.family.by_name[name].candidates)
                cols.append((codes[:, None] == np.arange(1, n_cand)[None, :]).astype(np.float64))
            else:
                raise ValueError(f"encoding must be 'onehot' or 'ordinal', not {encoding!r}")
        return np.concatenate(cols, axis=1)

    def meta_json(self) -> str:
        return json.dumps(self.meta, sort_keys=True, default=str)
