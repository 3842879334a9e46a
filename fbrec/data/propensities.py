"""Pair-level exposure propensities as data: theta_ui = P(user u is exposed to item i), read from a table
(user, item, propensity) or shipped by a dataset (Coat's `propensities.ascii`, Schnabel et al. 2016), and attached
to the rows of a prepared split. Item-level estimators (fbrec.propensity) remain the default when none is given.

Only the pairs a loss or a metric divides by need a value: every training positive, and every relevant
validation/test pair (SNIPS metrics); a missing one is an error naming the pair, never a silent 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from fbrec.data.io import read_side_table
from fbrec.errors import DataValidationError
from fbrec.propensity import invalid_propensities
from fbrec.types import ITEM, PROPENSITY, USER

RULE = "a propensity is the probability of exposure, a finite number in (0, 1]"


def check_pair_propensities(pairs: pl.DataFrame, *, source: str, first_line: int | None = None) -> pl.DataFrame:
    """Raise naming the first bad rows (file line numbers when `first_line` says where row 0 is) unless every
    propensity is finite and in (0, 1] and no (user, item) pair repeats; returns (user, item, propensity)."""
    missing = [c for c in (USER, ITEM, PROPENSITY) if c not in pairs.columns]
    if missing:
        raise DataValidationError(f"{source} has no column {missing[0]!r} (columns: {pairs.columns})",
                                  rule="a propensity table has one row per (user, item) with a propensity column",
                                  fix=f"add the column, or map it with columns: {{{missing[0]}: YOUR_COLUMN}}")
    pairs = pairs.select(USER, ITEM, pl.col(PROPENSITY).cast(pl.Float64, strict=False))
    bad = np.flatnonzero(invalid_propensities(pairs[PROPENSITY].to_numpy()))
    where = (lambda i: f"line {i + first_line}") if first_line is not None else (lambda i: f"row {i + 1}")
    if len(bad):
        raw = pairs[PROPENSITY].cast(pl.String)
        examples = ", ".join(f"{where(i)}: {raw[int(i)]!r}" for i in bad[:3])
        raise DataValidationError(f"{source}: {len(bad)} propensities are not in (0, 1] ({examples})", rule=RULE,
                                  fix="fix those rows, or floor tiny estimates (e.g. at 1e-3) before writing them")
    dup = pairs.select(USER, ITEM).is_duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataValidationError(f"{source}: the pair (user {pairs[USER][i]!r}, item {pairs[ITEM][i]!r}) appears "
                                  f"{int(dup.sum())} times ({where(i)} is one)", rule="one propensity per pair",
                                  fix="keep one row per (user, item)")
    return pairs


def read_pair_propensities(path: str | Path, *, columns: dict[str, str] | None = None) -> pl.DataFrame:
    """A (user, item, propensity) table from parquet, CSV or NDJSON; columns maps canonical names to the file's."""
    path = Path(path)
    frame = read_side_table(path, USER, columns=columns)
    renames = {v: k for k, v in dict(columns or {}).items() if k in (ITEM, PROPENSITY) and v in frame.columns}
    frame = frame.rename(renames)
    header = 2 if path.suffix.lower() in (".csv", ".tsv") else None   # line 1 is the header
    return check_pair_propensities(frame, source=f"propensity file {str(path)!r}", first_line=header)


def dense_pair_propensities(matrix: np.ndarray, *, source: str) -> pl.DataFrame:
    """One row per cell of a (users x items) matrix whose row/column indices are the raw ids (Coat's layout)."""
    bad = np.argwhere(invalid_propensities(matrix))
    if len(bad):
        u, i = bad[0]
        raise DataValidationError(f"{source}: {len(bad)} cells are not in (0, 1] (line {u + 1}, column {i + 1}: "
                                  f"{float(matrix[u, i])!r})", rule=RULE, fix="restore the original file")
    users, items = np.indices(matrix.shape)
    return pl.DataFrame({USER: users.ravel().astype(np.int64), ITEM: items.ravel().astype(np.int64),
                         PROPENSITY: matrix.ravel().astype(np.float64)})


def attach_pair_propensities(frame: pl.DataFrame, pairs: pl.DataFrame, *, what: str) -> np.ndarray:
    """theta for every row of `frame` (a prepared split with raw user/item ids), in row order; raises naming up to
    three pairs that have none."""
    keyed = pairs.with_columns(pl.col(USER).cast(frame.schema[USER], strict=False),
                               pl.col(ITEM).cast(frame.schema[ITEM], strict=False))
    joined = frame.select(USER, ITEM).join(keyed, on=[USER, ITEM], how="left", maintain_order="left")
    theta = joined[PROPENSITY].to_numpy()
    missing = np.flatnonzero(np.isnan(theta.astype(np.float64)))
    if len(missing):
        examples = ", ".join(f"(user {joined[USER][int(i)]!r}, item {joined[ITEM][int(i)]!r})" for i in missing[:3])
        raise DataValidationError(f"{len(missing)} of {frame.height} {what} pairs have no propensity: {examples}",
                                  rule="every training positive and every relevant evaluation pair needs one",
                                  fix="add rows for them to the propensity table, or use propensity: popularity")
    return theta.astype(np.float64)
