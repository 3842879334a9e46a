"""Readers for click logs in parquet, CSV and NDJSON: lazy scan, declared schema, validation, one collect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from fbrec.data.schema import FeedbackLevels, cast_levels, validate_log
from fbrec.errors import DataValidationError
from fbrec.types import EXPOSED, OPTIONAL_COLUMNS, REQUIRED_COLUMNS, TIMESTAMP

FORMATS = ("parquet", "csv", "ndjson")


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise DataValidationError(f"format {fmt!r} is not supported", rule=f"formats: {list(FORMATS)}",
                                      fix="pass format='parquet', 'csv' or 'ndjson'")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    mapping = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "tsv": "csv", "ndjson": "ndjson",
               "jsonl": "ndjson", "json": "ndjson"}
    if suffix not in mapping:
        raise DataValidationError(f"cannot tell the format of {path.name!r} from its suffix",
                                  rule=f"known suffixes: {sorted(mapping)}", fix="pass format='csv' (or parquet/ndjson)")
    return mapping[suffix]


def _scan(path: Path, fmt: str, separator: str, schema: Mapping[str, pl.DataType] | None) -> pl.LazyFrame:
    if fmt == "parquet":
        return pl.scan_parquet(path)
    if fmt == "csv":
        sep = "\t" if path.suffix.lower() == ".tsv" and separator == "," else separator
        return pl.scan_csv(path, separator=sep, schema_overrides=schema, infer_schema_length=10_000)
    return pl.scan_ndjson(path, schema_overrides=schema, infer_schema_length=10_000)


def parse_timestamps(frame: pl.DataFrame, fmt: str | None = None) -> pl.DataFrame:
    """Normalise the timestamp column to Int64 epoch seconds; unparseable values raise naming rows."""
    if TIMESTAMP not in frame.columns:
        return frame
    ts = frame[TIMESTAMP]
    if ts.dtype.is_integer():
        out = ts.cast(pl.Int64)
    elif ts.dtype.is_float():
        out = ts.cast(pl.Int64, strict=False)
    elif isinstance(ts.dtype, pl.Datetime | pl.Date):
        out = ts.cast(pl.Datetime("us")).dt.epoch("s")
    elif ts.dtype == pl.String:
        numeric = ts.cast(pl.Int64, strict=False)
        if numeric.null_count() == ts.null_count():
            out = numeric
        else:
            out = ts.str.to_datetime(format=fmt, strict=False, time_unit="us").dt.epoch("s")
    else:
        raise DataValidationError(f"column 'timestamp' has dtype {ts.dtype}",
                                  rule="timestamps are epoch seconds, datetimes or date strings",
                                  fix="cast the column to Int64 seconds or a datetime string")
    bad = out.is_null() & ts.is_not_null()
    if bad.any():
        examples = ts.filter(bad).head(3).to_list()
        rows = bad.arg_true().head(5).to_list()
        raise DataValidationError(f"column 'timestamp': {bad.sum()} values cannot be parsed, e.g. {examples} "
                                  f"(rows {rows})", rule="timestamps must be epoch seconds or ISO-8601 datetimes",
                                  fix="pass timestamp_format='%Y-%m-%d %H:%M:%S' or clean those rows")
    return frame.with_columns(out.alias(TIMESTAMP))


def read_log(path: str | Path, *, columns: Mapping[str, str] | None = None,
             levels: FeedbackLevels | Sequence[str] | None = None, format: str | None = None,
             separator: str = ",", has_header: bool = True, timestamp_format: str | None = None) -> pl.DataFrame:
    """Read a click log into the canonical schema.

    columns maps canonical names to the file's names, e.g. {"user": "uid", "item": "sku"}; unmapped canonical
    names are taken as they are. Extra columns are dropped. Raises DataValidationError on bad input.
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"click log {str(path)!r} does not exist", rule="the path must be a file",
                                  fix="check the path (relative paths are resolved from the current directory)")
    if path.stat().st_size == 0:
        raise DataValidationError(f"click log {str(path)!r} is empty", rule="a click log needs at least one row",
                                  fix="point at the full export")
    fmt = _format_of(path, format)
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - set(REQUIRED_COLUMNS + OPTIONAL_COLUMNS))
    if unknown:
        raise DataValidationError(f"columns= maps unknown canonical names {unknown}",
                                  rule=f"canonical names: {list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}",
                                  fix="use canonical names as keys and your file's names as values")
    try:
        lf = _scan(path, fmt, separator, None)
        if fmt == "csv" and not has_header:
            lf = pl.scan_csv(path, separator=separator, has_header=False, infer_schema_length=10_000)
        file_cols = lf.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataValidationError(f"cannot read {str(path)!r} as {fmt}: {exc}".splitlines()[0],
                                  rule=f"the file must be valid {fmt}", fix="check the file and format=") from exc
    rename = {}
    for canon in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
        src = mapping.get(canon, canon)
        if src in file_cols:
            rename[src] = canon
        elif canon in mapping:
            raise DataValidationError(f"columns= maps {canon!r} to {src!r}, which {path.name!r} does not have",
                                      rule=f"the file's columns are {file_cols}", fix="fix the mapping")
    missing = [c for c in REQUIRED_COLUMNS if c not in rename.values()]
    if missing:
        raise DataValidationError(f"{path.name!r} lacks column(s) {missing}; it has {file_cols}",
                                  rule=f"a click log needs {list(REQUIRED_COLUMNS)}",
                                  fix="rename the columns, or pass columns={'user': 'your_user_col', 'item': ...}")
    try:
        frame = lf.select([pl.col(src).alias(dst) for src, dst in rename.items()]).collect()
    except pl.exceptions.PolarsError as exc:
        raise DataValidationError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0]}",
                                  rule="every row must match the inferred column types",
                                  fix="check for malformed rows") from exc
    if EXPOSED in frame.columns and frame.schema[EXPOSED] != pl.Boolean and frame.schema[EXPOSED].is_integer():
        frame = frame.with_columns(pl.col(EXPOSED).cast(pl.Boolean))
    frame = parse_timestamps(frame, timestamp_format)
    frame = cast_levels(frame, levels)
    return validate_log(frame, source=repr(path.name))


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)


def read_side_table(path: str | Path, key: str, *, columns: Mapping[str, str] | None = None,
                    format: str | None = None) -> pl.DataFrame:
    """Read an item (key="item") or user (key="user") side table: one row per id, any feature columns.

    columns maps the canonical key to the file's name as for read_log (e.g. {"item": "sku"}); other entries are
    ignored. Ids are cast to the click log's type when the two are joined."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"{key} table {str(path)!r} does not exist", rule="the path must be a file",
                                  fix="check the path (relative paths are resolved from the current directory)")
    fmt = _format_of(path, format)
    name = dict(columns or {}).get(key, key)
    try:
        frame = _scan(path, fmt, ",", None).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataValidationError(f"cannot read {str(path)!r} as {fmt}: {exc}".splitlines()[0],
                                  rule="a side table is parquet, CSV or NDJSON", fix="check the file") from exc
    if name not in frame.columns:
        raise DataValidationError(f"{key} table {str(path)!r} has no column {name!r} (columns: {frame.columns})",
                                  rule=f"a {key} table names each row's {key} id",
                                  fix=f"add the column, or map it with columns: {{{key}: YOUR_COLUMN}}")
    return frame.rename({name: key}) if name != key else frame
