"""Readers for click logs in parquet, CSV and NDJSON: lazy scan, declared schema, validation, one collect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from fbrec.data.schema import ROWS, FeedbackLevels, Where, cast_levels, validate_log
from fbrec.data.textfiles import _check_text, _csv_header, _ragged, _unreadable, detect_separator
from fbrec.errors import DataValidationError, UnknownNameError
from fbrec.types import EXPOSED, OPTIONAL_COLUMNS, RATING, REQUIRED_COLUMNS, TIMESTAMP, WEIGHT

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


TIMESTAMP_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _scan(path: Path, fmt: str, separator: str, schema: Mapping[str, pl.DataType] | None,
          has_header: bool = True) -> pl.LazyFrame:
    if fmt == "parquet":
        return pl.scan_parquet(path)
    if fmt == "csv":
        return pl.scan_csv(path, separator=separator, schema_overrides=schema, infer_schema_length=10_000,
                           has_header=has_header)
    return pl.scan_ndjson(path, schema_overrides=schema, infer_schema_length=10_000)


def _bad_timestamps(ts: pl.Series, bad: pl.Series, where: Where, why: str, fix: str) -> DataValidationError:
    examples = ts.filter(bad).head(3).to_list()
    return DataValidationError(f"column 'timestamp': {bad.sum()} values {why}, e.g. {examples} ({where(bad)})",
                               rule="timestamps are epoch seconds (whole numbers), datetimes or ISO-8601 strings",
                               fix=fix)


def parse_timestamps(frame: pl.DataFrame, fmt: str | None = None, unit: str = "s", where: Where = ROWS
                     ) -> pl.DataFrame:
    """Normalise the timestamp column to Int64 epoch seconds; values that cannot be read raise naming rows.

    unit: what numeric timestamps count ("s", "ms", "us", "ns"); fractional seconds are refused (a float column of
    whole numbers is fine); strings are ISO-8601 unless `fmt` (strftime) says otherwise."""
    if TIMESTAMP not in frame.columns:
        return frame
    if unit not in TIMESTAMP_UNITS:
        raise UnknownNameError("timestamp unit", unit, TIMESTAMP_UNITS)
    ts = frame[TIMESTAMP]
    factor = TIMESTAMP_UNITS[unit]
    fix_format = "pass timestamp_format='%Y-%m-%d %H:%M:%S' (data.timestamp_format) or clean those rows"
    if ts.dtype == pl.String:
        numbers = ts.str.strip_chars().cast(pl.Float64, strict=False)
        given = ts.len() - ts.null_count()
        if numbers.null_count() == ts.null_count():
            ts = numbers   # numbers written as text: read as numbers
        elif 2 * (ts.len() - numbers.null_count()) >= given:   # mostly epoch numbers: the others are the bad ones
            raise _bad_timestamps(ts, numbers.is_null() & ts.is_not_null(), where,
                                  "are not numbers in a column of epoch numbers", "fix or drop those rows")
    if ts.dtype.is_integer():
        out = ts.cast(pl.Int64) // factor
    elif ts.dtype.is_float():
        finite = ts.is_finite().fill_null(True)
        fractional = finite & (ts != ts.floor()).fill_null(False)
        if unit == "s" and fractional.any():
            raise _bad_timestamps(ts, fractional, where, "are fractional epoch seconds",
                                  "round them to whole seconds, or give milliseconds with timestamp_unit='ms'")
        out = (ts / factor).floor().cast(pl.Int64, strict=False)   # NaN and inf become null: reported below
    elif isinstance(ts.dtype, pl.Datetime | pl.Date):
        out = ts.cast(pl.Datetime("us")).dt.epoch("s")
    elif ts.dtype == pl.String:
        try:
            out = ts.str.to_datetime(format=fmt, strict=False, time_unit="us").dt.epoch("s")
        except pl.exceptions.PolarsError:   # no format could be inferred from the first values
            raise _bad_timestamps(ts, ts.is_not_null(), where, "cannot be parsed as datetimes", fix_format) from None
    else:
        raise DataValidationError(f"column 'timestamp' has dtype {ts.dtype}",
                                  rule="timestamps are epoch seconds, datetimes or date strings",
                                  fix="cast the column to Int64 seconds or a datetime string")
    bad = out.is_null() & ts.is_not_null()
    if bad.any():
        raise _bad_timestamps(ts, bad, where, "cannot be parsed", fix_format)
    return frame.with_columns(out.alias(TIMESTAMP))


def read_log(path: str | Path, *, columns: Mapping[str, str] | None = None,
             levels: FeedbackLevels | Sequence[str] | None = None, format: str | None = None,
             separator: str | None = None, has_header: bool = True, timestamp_format: str | None = None,
             timestamp_unit: str = "s", integer_ids: bool = False) -> pl.DataFrame:
    """Read a click log into the canonical schema.

    columns maps canonical names to the file's names, e.g. {"user": "uid", "item": "sku"}; unmapped canonical
    names are taken as they are. Extra columns are dropped. CSV: the separator is detected from the header line
    (, tab ; |) unless given; user and item ids are read as text, so "05" and "5" stay two ids, unless
    integer_ids=True. Messages name file lines (CSV/NDJSON) or 1-based rows (parquet).
    Raises DataValidationError on bad input.
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"click log {str(path)!r} does not exist", rule="the path must be a file",
                                  fix="check the path (relative paths are resolved from the current directory)")
    if path.is_dir():
        raise DataValidationError(f"click log {str(path)!r} is a directory", rule="the path must be a file",
                                  fix="point at the parquet, CSV or NDJSON file inside it")
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
    if fmt != "parquet":
        _check_text(path)
    sep = detect_separator(path, separator) if fmt == "csv" else ","
    where = {"csv": Where("line", 2 if has_header else 1), "ndjson": Where("line", 1)}.get(fmt, Where("row", 1))
    try:
        header = _csv_header(path, sep, has_header) if fmt == "csv" else None
        ids_as_text = {mapping.get(c, c): pl.String for c in REQUIRED_COLUMNS} if fmt == "csv" else None
        lf = _scan(path, fmt, sep, {k: v for k, v in ids_as_text.items() if k in header} if header else None,
                   has_header)
        file_cols = lf.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, fmt, exc) from None
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
                                  fix="rename the columns, or pass columns={'user': 'your_user_col', 'item': ...}"
                                  + (f" (is the separator {sep!r} right? pass separator=)" if fmt == "csv" else ""))
    try:
        frame = lf.select([pl.col(src).alias(dst) for src, dst in rename.items()]).collect()
    except pl.exceptions.PolarsError as exc:
        if "utf-8" in str(exc).lower():
            raise _unreadable(path, fmt, exc) from None
        if fmt == "csv":
            _ragged(path, sep, has_header, len(header), where)
        raise DataValidationError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0]}",
                                  rule="every row must match the inferred column types",
                                  fix="check for malformed rows") from exc
    if fmt == "csv" and sum(frame.null_count().row(0)):
        _ragged(path, sep, has_header, len(header), where)   # a missing value, or a short line?
    if integer_ids:
        frame = _integer_ids(frame, where)
    for col in (RATING, WEIGHT):   # numbers in text files may be spelled 'nan' or hold a word: name the lines
        if col in frame.columns and frame.schema[col] == pl.String:
            numbers = frame[col].str.strip_chars().cast(pl.Float64, strict=False)
            bad = numbers.is_null() & frame[col].is_not_null()
            if bad.any():
                raise DataValidationError(f"column {col!r}: {bad.sum()} rows are not numbers, e.g. "
                                          f"{frame[col].filter(bad).head(3).to_list()} ({where(bad)})",
                                          rule=f"{col}s must be numeric", fix="fix or drop those rows")
            frame = frame.with_columns(numbers.alias(col))
    if EXPOSED in frame.columns and frame.schema[EXPOSED] != pl.Boolean and frame.schema[EXPOSED].is_integer():
        frame = frame.with_columns(pl.col(EXPOSED).cast(pl.Boolean))
    frame = parse_timestamps(frame, timestamp_format, timestamp_unit, where)
    frame = cast_levels(frame, levels, where)
    return validate_log(frame, source=repr(path.name), where=where)


def _integer_ids(frame: pl.DataFrame, where: Where) -> pl.DataFrame:
    out = []
    for col in REQUIRED_COLUMNS:
        s = frame[col]
        ints = s.cast(pl.Int64, strict=False) if s.dtype != pl.String else s.str.strip_chars().cast(pl.Int64,
                                                                                                    strict=False)
        bad = ints.is_null() & s.is_not_null()
        digits = s.cast(pl.String).str.strip_chars().str.contains(r"^[+-]?[0-9]+$") if s.dtype != pl.Boolean \
            else pl.Series([False] * len(s))
        huge = bad & digits.fill_null(False)
        if huge.any():   # integers all the same, beyond what an int64 id holds (e.g. uint64 hashes)
            raise DataValidationError(f"column {col!r}: {huge.sum()} ids are integers beyond the int64 range "
                                      f"(-2**63 .. 2**63-1), e.g. {s.filter(huge).head(3).to_list()} ({where(huge)})",
                                      rule="integer_ids=True reads every id as a 64-bit signed integer",
                                      fix="drop integer_ids to read ids as text (any id works as text)")
        if bad.any():
            raise DataValidationError(f"column {col!r}: {bad.sum()} ids are not integers, e.g. "
                                      f"{s.filter(bad).head(3).to_list()} ({where(bad)})",
                                      rule="integer_ids=True reads every id as an integer",
                                      fix="drop integer_ids to read ids as text")
        out.append(ints.alias(col))
    return frame.with_columns(out)


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
        sep = detect_separator(path, None) if fmt == "csv" else ","
        frame = _scan(path, fmt, sep, {name: pl.String} if fmt == "csv" else None).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataValidationError(f"cannot read {str(path)!r} as {fmt}: {exc}".splitlines()[0],
                                  rule="a side table is parquet, CSV or NDJSON", fix="check the file") from exc
    if name not in frame.columns:
        raise DataValidationError(f"{key} table {str(path)!r} has no column {name!r} (columns: {frame.columns})",
                                  rule=f"a {key} table names each row's {key} id",
                                  fix=f"add the column, or map it with columns: {{{key}: YOUR_COLUMN}}")
    return frame.rename({name: key}) if name != key else frame


def count_rows(path: str | Path, *, format: str | None = None) -> int | None:
    """The data rows of a log file, cheaply (parquet: its metadata; text: its lines, less a CSV header), or None when
    the file cannot be read here (read_log names the problem when the log is read)."""
    path = Path(path)
    try:
        fmt = _format_of(path, format)
        if fmt == "parquet":
            return int(pl.scan_parquet(path).select(pl.len()).collect().item())
        lines, last = 0, b"\n"
        with open(path, "rb") as f:
            while block := f.read(1 << 24):
                lines += block.count(b"\n")
                last = block[-1:]
        lines += last != b"\n"   # a last line without its newline
        return max(0, lines - (fmt == "csv"))
    except (OSError, DataValidationError, pl.exceptions.PolarsError):
        return None
