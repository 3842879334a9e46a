"""The canonical click-log schema, ordered feedback levels, and validation that names rows and fixes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from fbrec.errors import DataValidationError, UnknownNameError
from fbrec.types import (
    EXPOSED,
    ITEM,
    LEVEL,
    OPTIONAL_COLUMNS,
    POSITION,
    RATING,
    REQUIRED_COLUMNS,
    SESSION,
    TIMESTAMP,
    USER,
    WEIGHT,
)

_ID_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.String)


@dataclass(frozen=True)
class FeedbackLevels:
    """Ordered feedback level names, lowest first: e.g. ("impression", "click", "cart", "purchase")."""

    names: tuple[str, ...]

    def __post_init__(self):
        if len(self.names) == 0 or len(set(self.names)) != len(self.names):
            raise DataValidationError(f"feedback levels {list(self.names)!r} are invalid",
                                      rule="levels must be a non-empty list of distinct names, lowest first",
                                      fix='pass e.g. levels=["impression", "click", "cart", "purchase"]')

    @property
    def dtype(self) -> pl.Enum:
        return pl.Enum(list(self.names))

    def index(self, name: str) -> int:
        if name not in self.names:
            raise UnknownNameError("feedback level", name, self.names)
        return self.names.index(name)


@dataclass(frozen=True)
class Where:
    """How messages point at rows: "line" numbers of a text file (data row 0 is line `first`, 2 under a header)
    or 1-based "row" numbers of a parquet file or frame."""

    unit: str = "row"
    first: int = 1

    def __call__(self, mask: pl.Series, limit: int = 5) -> str:
        idx = [i + self.first for i in mask.arg_true().head(limit).to_list()]
        more = int(mask.sum()) - len(idx)
        return f"{self.unit}s " + ", ".join(map(str, idx)) + (f", ... (+{more} more)" if more > 0 else "")


ROWS = Where()
# epoch seconds beyond this are not clicks that happened: most often milliseconds read as seconds
LATEST_PLAUSIBLE_SECONDS = 4_102_444_800   # 2100-01-01


def _fail(column: str, problem: str, mask: pl.Series, rule: str, fix: str, where: Where = ROWS) -> None:
    raise DataValidationError(f"column {column!r}: {mask.sum()} rows {problem} ({where(mask)})", rule=rule, fix=fix)


def validate_log(frame: pl.DataFrame, *, source: str = "click log", where: Where = ROWS) -> pl.DataFrame:
    """Check a canonical click log and return it unchanged. Raises DataValidationError naming rows (1-based, or
    file lines when `where` says so)."""
    if frame.height == 0:
        raise DataValidationError(f"{source} is empty", rule="a click log needs at least one row",
                                  fix="check the path and any filters applied before reading")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{source} lacks column(s) {missing}; it has {frame.columns}",
            rule=f"a click log needs {list(REQUIRED_COLUMNS)} and may have {list(OPTIONAL_COLUMNS)}",
            fix="rename your columns, or map them with columns={'user': 'your_user_col', ...}")
    for col in (USER, ITEM):
        dtype = frame.schema[col]
        if dtype not in _ID_DTYPES:
            raise DataValidationError(f"column {col!r} has dtype {dtype}", rule="ids must be integers or strings",
                                      fix=f"cast {col!r} to Int64 or String before reading")
        s = frame[col]
        if s.null_count():
            _fail(col, "are null", s.is_null(), "ids may not be null", "drop or fill those rows", where=where)
        if dtype.is_integer() and (s < 0).any():
            _fail(col, "are negative", s < 0, "integer ids must be >= 0", "remap the ids, or read them as strings",
                  where=where)
    if TIMESTAMP in frame.columns:
        ts = frame[TIMESTAMP]
        if not ts.dtype.is_integer():
            raise DataValidationError(f"column 'timestamp' has dtype {ts.dtype}",
                                      rule="timestamps are integer epoch seconds after reading",
                                      fix="use read_log(), which parses datetimes and strings")
        if ts.null_count():
            _fail(TIMESTAMP, "are null or unparseable", ts.is_null(), "every row needs a timestamp",
                  "fix the values, or drop the timestamp column and use a non-temporal split", where=where)
        if (ts < 0).any():
            _fail(TIMESTAMP, "are before 1970 (negative epoch seconds)", ts < 0,
                  "timestamps are epoch seconds >= 0", "check the unit and the source of those rows", where=where)
        if (ts > LATEST_PLAUSIBLE_SECONDS).any():
            _fail(TIMESTAMP, f"lie after the year 2100 (e.g. {ts.max()})", ts > LATEST_PLAUSIBLE_SECONDS,
                  "timestamps are epoch seconds of real events",
                  "if they are milliseconds (or micro/nanoseconds) pass timestamp_unit='ms' ('us', 'ns')", where=where)
    if RATING in frame.columns:
        r = frame[RATING]
        if not r.dtype.is_numeric():
            raise DataValidationError(f"column 'rating' has dtype {r.dtype}", rule="ratings must be numeric",
                                      fix="cast ratings to a number")
        if r.null_count() or r.is_nan().any() if r.dtype.is_float() else r.null_count():
            _fail(RATING, "are null or NaN", r.is_null() | (r.is_nan() if r.dtype.is_float() else False),
                  "ratings must be finite numbers", "drop or fill those rows", where=where)
    if WEIGHT in frame.columns:
        w = frame[WEIGHT].cast(pl.Float64, strict=False)
        bad = w.is_null() | w.is_nan() | (w < 0)
        if bad.any():
            _fail(WEIGHT, "are null, NaN or negative", bad, "weights must be finite and >= 0", "fix those weights",
                  where=where)
    if POSITION in frame.columns:
        p = frame[POSITION]
        if not p.dtype.is_integer() or (p.null_count() == 0 and (p < 0).any()):
            bad = p.cast(pl.Int64, strict=False)
            _fail(POSITION, "are not integers >= 0", bad.is_null() | (bad < 0), "positions are integers >= 0",
                  "cast position to an integer rank (0 = top)", where=where)
    if EXPOSED in frame.columns and frame.schema[EXPOSED] != pl.Boolean:
        raise DataValidationError(f"column 'exposed' has dtype {frame.schema[EXPOSED]}",
                                  rule="exposed is a boolean flag", fix="cast exposed to bool (1/0 -> true/false)")
    if SESSION in frame.columns and frame[SESSION].null_count():
        _fail(SESSION, "are null", frame[SESSION].is_null(), "sessions may not be null", "fill the session ids",
              where=where)
    return frame


def cast_levels(frame: pl.DataFrame, levels: FeedbackLevels | Sequence[str] | None, where: Where = ROWS
                ) -> pl.DataFrame:
    """Turn the level column into the ordered Enum of `levels`; unknown names raise with the closest match."""
    if LEVEL not in frame.columns:
        return frame
    if levels is None:
        raise DataValidationError("the log has a 'level' column but no ordered levels were declared",
                                  rule="levels are ordered, so their order must be declared",
                                  fix='pass levels=["impression", "click", ...] lowest first')
    levels = levels if isinstance(levels, FeedbackLevels) else FeedbackLevels(tuple(levels))
    raw = frame[LEVEL].cast(pl.String)
    unknown = ~raw.is_in(list(levels.names)) | raw.is_null()
    if unknown.any():
        first = raw.filter(unknown).drop_nulls().head(1).to_list()
        name = first[0] if first else "null"
        suggestion = UnknownNameError("feedback level", name, levels.names).fix
        raise DataValidationError(
            f"column 'level': {unknown.sum()} rows have unknown levels such as {name!r} ({where(unknown)})",
            rule=f"levels must be one of {list(levels.names)} (lowest first)", fix=suggestion)
    return frame.with_columns(raw.cast(levels.dtype).alias(LEVEL))
