"""Loader for the datasets released with Bynum & Cho (2024), "Language Models as Causal Effect Generators".

The authors generated 1,000 GPT-2 and 1,000 Llama-3-8b datasets of the breast-cancer family on
GPUs; this module reads them (one parquet file per LM, or the original one-CSV-per-dataset
layout) into :class:`~sdscm_bench.dataset.SDSCMDataset` so estimators can be scored on exactly
the data the paper used. The data are read from a path outside the repository
(``SDSCM_PAPER_DATA`` or ``<repo>/../shared/sdscm-paper-data``) and never copied into it.

Released columns (``X12`` is the treatment, ``X13`` the outcome variable):
``X0``..``X13``, ``logP(X12=t)``, ``logP(X13=k)``, ``Xi|do(X12=t)``, ``logP(X13=k)|do(X12=t)``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sdscm_bench.dataset import FORMAT_VERSION, SDSCMDataset, do_suffix, logp_column
from sdscm_bench.errors import SdscmError
from sdscm_bench.paths import spec_dir
from sdscm_bench.spec import Family, load_family

PAPER_LMS = ("gpt2", "llama-3-8b")
ENV_VAR = "SDSCM_PAPER_DATA"
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shipped spec (package data, so an installed wheel has it too; ``datasets/`` in a checkout).
ONCOLOGY_SPEC = spec_dir() / "oncology.yaml"
SCORING = "paper-mean-logits"
SCORING_NOTE = (
    "scores are the reference code's averages of per-token log-probabilities (propensity and "
    "outcome logits), not exact sequence log-likelihoods"
)
CF_NOTE = (
    "the released X13|do(X12=t) values were sampled afresh, not with the factual noise: they are "
    "interventional draws, not unit-level counterfactuals; the scores logP(X13=k)|do(X12=t) are deterministic given the unit"
)
ORIGIN = "lbynum/sequence-driven-scms@45662a62288a19b0cf1430df58a87ff8f636fd35 data/cancer_example"

N_VARS = 14
T_INDEX = 12  # X12, PD-L1 level
Y_INDEX = 13  # X13, therapy
T_VALUES = (0, 1)
Y_VALUES = (0, 1, 2, 3)


class PaperDataError(SdscmError):
    """The released data cannot be found or does not have the released layout."""


def default_paper_data_dir() -> Path | None:
    """Where the released data live: ``$SDSCM_PAPER_DATA``, else ``<repo>/../shared/sdscm-paper-data``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    candidate = REPO_ROOT.parent / "shared" / "sdscm-paper-data"
    return candidate if candidate.is_dir() else None


@functools.cache
def oncology_family() -> Family:
    """The paper's breast-cancer family, as this repository's own spec file describes it."""
    return load_family(ONCOLOGY_SPEC)


def required_columns() -> list[str]:
    """The released columns, in the released order (without ``dataset_id`` and ``row``)."""
    cols = [f"X{i}" for i in range(N_VARS)]
    cols += [f"logP(X{T_INDEX}={t})" for t in T_VALUES]
    cols += [f"logP(X{Y_INDEX}={k})" for k in Y_VALUES]
    for t in T_VALUES:
        cols += [f"X{i}|do(X{T_INDEX}={t})" for i in range(N_VARS)]
        cols += [f"logP(X{Y_INDEX}={k})|do(X{T_INDEX}={t})" for k in Y_VALUES]
    return cols


def _check_lm(lm: str) -> None:
    if lm not in PAPER_LMS:
        raise PaperDataError(f"unknown paper LM {lm!r}; the released data cover {list(PAPER_LMS)}")


def paper_parquet_path(root: Path, lm: str) -> Path:
    """``<root>/<lm>.parquet``, checked to exist."""
    _check_lm(lm)
    path = Path(root) / f"{lm}.parquet"
    if not path.is_file():
        raise PaperDataError(
            f"{path}: not found; point {ENV_VAR} at the folder holding gpt2.parquet and llama-3-8b.parquet"
        )
    return path


def _missing_columns_error(source: str, missing: list[str]) -> PaperDataError:
    return PaperDataError(
        f"{source}: missing column {missing[0]!r}"
        + (f" (and {len(missing) - 1} more: {missing[1:4]})" if len(missing) > 1 else "")
        + "; the file must have the released layout (X0..X13, logP(X12=t), logP(X13=k), "
        "Xi|do(X12=t), logP(X13=k)|do(X12=t)); re-export it with all columns"
    )


def _check_family(family: Family) -> None:
    """The released columns are positional, so the family must have the paper's shape."""
    problems = []
    if len(family.variables) != N_VARS:
        problems.append(f"has {len(family.variables)} variables, not {N_VARS}")
    else:
        if family.treatment.variable != family.variables[T_INDEX].name:
            problems.append(f"treatment must be variable {T_INDEX} ({family.variables[T_INDEX].name!r})")
        if family.outcome.variable != family.variables[Y_INDEX].name:
            problems.append(f"outcome must be variable {Y_INDEX} ({family.variables[Y_INDEX].name!r})")
        if len(family.variables[T_INDEX].candidates) != len(T_VALUES):
            problems.append(f"treatment must have {len(T_VALUES)} candidates")
        if len(family.variables[Y_INDEX].candidates) != len(Y_VALUES):
            problems.append(f"outcome must have {len(Y_VALUES)} candidates")
    if problems:
        raise PaperDataError(
            f"{family.path}: family '{family.name}' does not match the paper's layout: " + "; ".join(problems)
        )


def _outcome_values(logp: np.ndarray, values: np.ndarray, family: Family) -> np.ndarray:
    """y from the outcome scores (n x 4) and sampled values, per the family's outcome definition."""
    c = family.index_of(family.outcome.variable, family.outcome.candidate)
    if family.outcome.definition == "score":
        return logp[:, c].copy()
    if family.outcome.definition == "probability":
        z = logp - logp.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p[:, c] / p.sum(axis=1)
    return (values == c).astype(np.float64)


def _table_fingerprint(table: pd.DataFrame) -> str:
    """Content hash of the converted table (values, index, column names and dtypes)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(d)] for c, d in table.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


def convert_paper_table(
    raw: pd.DataFrame,
    lm: str,
    *,
    source: str,
    dataset_id: int | None,
    family: Family | None = None,
) -> SDSCMDataset:
    """Turn one dataset in the released column layout into an SDSCMDataset.

    Checks what dropping the pre-treatment ``Xi|do(...)`` columns relies on (they equal the
    factual ones, and ``X12|do(X12=t)`` is t) and that every value indexes a candidate.
    """
    _check_lm(lm)
    family = family or oncology_family()
    _check_family(family)
    missing = [c for c in required_columns() if c not in raw.columns]
    if missing:
        raise _missing_columns_error(source, missing)
    if raw.empty:
        raise PaperDataError(f"{source}: has no rows")
    floats = [c for c in required_columns() if c.startswith("logP(")]
    for col in required_columns():
        if raw[col].isna().any():
            raise PaperDataError(f"{source}: column {col!r} has missing values; the released data have none")
        if col not in floats and not pd.api.types.is_integer_dtype(raw[col]):
            raise PaperDataError(f"{source}: column {col!r} must hold integer candidate indices")

    variables = family.variables
    tname, oname = variables[T_INDEX].name, variables[Y_INDEX].name
    descendants = {i for i, v in enumerate(variables) if v.name in family.descendants(tname)}
    for i, var in enumerate(variables):
        for col in [f"X{i}"] + [f"X{i}|do(X{T_INDEX}={t})" for t in T_VALUES]:
            vals = raw[col].to_numpy()
            if vals.min() < 0 or vals.max() >= len(var.candidates):
                raise PaperDataError(
                    f"{source}: column {col!r} ({var.name!r}) has values outside 0..{len(var.candidates) - 1}"
                )
    for t in T_VALUES:
        for i in range(N_VARS):
            col = f"X{i}|do(X{T_INDEX}={t})"
            if i == T_INDEX:
                bad = int((raw[col] != t).sum())
                what = f"should equal {t} everywhere"
            elif i not in descendants:
                bad = int((raw[col] != raw[f"X{i}"]).sum())
                what = f"should equal the factual X{i} (not a descendant of the treatment)"
            else:
                continue
            if bad:
                raise PaperDataError(f"{source}: column {col!r} {what}, but differs in {bad} rows")

    cols: dict[str, np.ndarray] = {}
    for i, var in enumerate(variables):
        cols[var.name] = raw[f"X{i}"].to_numpy(dtype=np.int64)
    for t in T_VALUES:
        cols[logp_column(tname, t)] = raw[f"logP(X{T_INDEX}={t})"].to_numpy(dtype=np.float64)
    for k in Y_VALUES:
        cols[logp_column(oname, k)] = raw[f"logP(X{Y_INDEX}={k})"].to_numpy(dtype=np.float64)
    worlds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for t in T_VALUES:
        world = do_suffix(tname, variables[T_INDEX].candidates[t])
        for i in sorted(descendants):
            cols[f"{variables[i].name}{world}"] = raw[f"X{i}|do(X{T_INDEX}={t})"].to_numpy(dtype=np.int64)
        logp = np.stack(
            [raw[f"logP(X{Y_INDEX}={k})|do(X{T_INDEX}={t})"].to_numpy(dtype=np.float64) for k in Y_VALUES],
            axis=1,
        )
        for k in Y_VALUES:
            cols[logp_column(oname, k, world)] = logp[:, k]
        worlds[t] = (logp, raw[f"X{Y_INDEX}|do(X{T_INDEX}={t})"].to_numpy(dtype=np.int64))

    control = family.index_of(tname, family.treatment.control)
    treated = family.index_of(tname, family.treatment.treated)
    x_t = cols[tname]
    cols["t"] = np.where(x_t == treated, 1, np.where(x_t == control, 0, -1)).astype(np.int64)
    # Softmax over the two treatment scores, as the paper's propensity: P(treated | parents).
    diff = cols[logp_column(tname, treated)] - cols[logp_column(tname, control)]
    cols["propensity"] = 1.0 / (1.0 + np.exp(-diff))
    factual_logp = np.stack([cols[logp_column(oname, k)] for k in Y_VALUES], axis=1)
    cols["y"] = _outcome_values(factual_logp, cols[oname], family)
    cols["y0"] = _outcome_values(*worlds[control], family)
    cols["y1"] = _outcome_values(*worlds[treated], family)
    cols["ite"] = cols["y1"] - cols["y0"]
    table = pd.DataFrame(cols)

    name_part = str(dataset_id) if dataset_id is not None else Path(source).stem
    meta = {
        "name": f"paper-{lm}/{name_part}",
        "family": family.name,
        "spec_fingerprint": family.fingerprint(),
        "lm": f"paper-{lm}",
        "source": source,
        "dataset_id": dataset_id,
        "n_units": len(table),
        "fingerprint": _table_fingerprint(table),
        "scoring": SCORING,
        "scoring_note": SCORING_NOTE,
        "counterfactual_note": CF_NOTE,
        "origin": ORIGIN,
        "format_version": FORMAT_VERSION,
    }
    return SDSCMDataset(table=table, family=family, meta=meta)


@contextlib.contextmanager
def _readable_parquet(path: Path) -> Iterator[None]:
    """Turn pyarrow's errors on a truncated or corrupt file into a PaperDataError naming the file and the fix."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        detail = " ".join(str(exc).split())  # pyarrow's messages may hold newlines and raw bytes
        raise PaperDataError(
            f"{path}: cannot be read as parquet ({type(exc).__name__}: {detail}); the file is truncated or "
            f"corrupt: copy it again from the released data (or from where {ENV_VAR} points)"
        ) from None


def _check_parquet_columns(path: Path) -> None:
    with _readable_parquet(path):
        names = set(pq.read_schema(path).names)
    missing = [c for c in ["dataset_id", "row", *required_columns()] if c not in names]
    if missing:
        raise _missing_columns_error(str(path), missing)


def paper_dataset_ids(root: Path, lm: str) -> list[int]:
    """The dataset ids present in ``<root>/<lm>.parquet``, sorted."""
    path = paper_parquet_path(root, lm)
    _check_parquet_columns(path)
    with _readable_parquet(path):
        ids = pq.read_table(path, columns=["dataset_id"]).column(0).unique().to_pylist()
    return sorted(int(i) for i in ids)


def read_paper_table(root: Path, lm: str, dataset_id: int) -> pd.DataFrame:
    """One dataset's rows in the released layout (ordered by ``row``, without ``dataset_id``/``row``)."""
    path = paper_parquet_path(root, lm)
    _check_parquet_columns(path)
    with _readable_parquet(path):
        table = pq.read_table(path, filters=[("dataset_id", "=", int(dataset_id))])
    if table.num_rows == 0:
        ids = paper_dataset_ids(root, lm)
        span = f"{ids[0]}..{ids[-1]}" if ids else "none"
        raise PaperDataError(f"{path}: no dataset with dataset_id {dataset_id}; ids present: {span}")
    return _released_frame(table.to_pandas())


def _released_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("row", kind="stable").drop(columns=["dataset_id", "row"]).reset_index(drop=True)


def load_paper_dataset(root: Path, lm: str, dataset_id: int, *, family: Family | None = None) -> SDSCMDataset:
    """Load one released dataset, reading only its row group through a ``dataset_id`` filter."""
    raw = read_paper_table(root, lm, dataset_id)
    path = paper_parquet_path(root, lm)
    return convert_paper_table(raw, lm, source=str(path), dataset_id=int(dataset_id), family=family)


def iter_paper_datasets(
    root: Path, lm: str, ids: Iterable[int] | None = None, *, family: Family | None = None
) -> Iterator[SDSCMDataset]:
    """Yield released datasets: the given ids in that order, or all of them in file order.

    For all of them the file is streamed one row group at a time (each holds 25 datasets), so
    a full pass reads the file once; a dataset is yielded once no later row group can hold it.
    """
    path = paper_parquet_path(root, lm)
    if ids is not None:
        for i in ids:
            yield load_paper_dataset(root, lm, i, family=family)
        return
    _check_parquet_columns(path)
    with _readable_parquet(path):
        pf = pq.ParquetFile(path)
    col = pf.schema_arrow.get_field_index("dataset_id")
    spans: list[tuple[int, int]] = []
    for g in range(pf.num_row_groups):
        stats = pf.metadata.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:  # no statistics: fall back to filtered reads
            yield from iter_paper_datasets(root, lm, paper_dataset_ids(root, lm), family=family)
            return
        spans.append((int(stats.min), int(stats.max)))
    pending: dict[int, list[pd.DataFrame]] = {}
    for g in range(pf.num_row_groups):
        with _readable_parquet(path):
            df = pf.read_row_group(g).to_pandas()
        for i, part in df.groupby("dataset_id", sort=False):
            pending.setdefault(int(i), []).append(part)
        later = spans[g + 1 :]
        for i in [i for i in pending if not any(lo <= i <= hi for lo, hi in later)]:
            raw = _released_frame(pd.concat(pending.pop(i)))
            yield convert_paper_table(raw, lm, source=str(path), dataset_id=i, family=family)


def load_paper_csv(path: Path, lm: str, *, family: Family | None = None) -> SDSCMDataset:
    """Load one dataset in the original layout (``<lm>_bcancer_<i>.csv``, unnamed index column first)."""
    _check_lm(lm)
    path = Path(path)
    try:
        raw = pd.read_csv(path, float_precision="round_trip")
    except FileNotFoundError:
        raise PaperDataError(f"{path}: not found") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PaperDataError(f"{path}: cannot be read as CSV ({exc})") from None
    if len(raw.columns) and (str(raw.columns[0]).startswith("Unnamed: 0") or raw.columns[0] == ""):
        raw = raw.drop(columns=raw.columns[0])
    raw = raw.drop(columns=[c for c in ("dataset_id", "row") if c in raw.columns]).reset_index(drop=True)
    match = re.search(rf"{re.escape(lm)}_bcancer_(\d+)\.csv$", path.name)
    dataset_id = int(match.group(1)) if match else None
    return convert_paper_table(raw, lm, source=str(path), dataset_id=dataset_id, family=family)
