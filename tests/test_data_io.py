"""Readers accept the canonical schema in every format and reject bad input naming column, rule and fix."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from fbrec.data import read_log
from fbrec.errors import DataValidationError

LEVELS = ["impression", "click", "cart", "purchase"]


def _write(path: Path, frame: pl.DataFrame) -> Path:
    {".csv": frame.write_csv, ".parquet": frame.write_parquet, ".ndjson": frame.write_ndjson}[path.suffix](path)
    return path


GOOD = pl.DataFrame({"user": [1, 2, 2], "item": ["a", "b", "c"], "timestamp": ["2024-01-01 10:00:00",
                     "2024-01-02 10:00:00", "2024-01-03 11:00:00"], "level": ["click", "impression", "purchase"]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".ndjson"])
def test_read_log_round_trips_every_format(tmp_path, suffix):
    frame = read_log(_write(tmp_path / f"log{suffix}", GOOD), levels=LEVELS)
    assert frame.columns == ["user", "item", "timestamp", "level"]
    assert frame["timestamp"].dtype == pl.Int64 and frame["timestamp"][0] == 1704103200
    assert frame["level"].to_physical().to_list() == [1, 0, 3]


def test_read_log_maps_file_columns_to_canonical_names(tmp_path):
    path = _write(tmp_path / "log.csv", GOOD.rename({"user": "uid", "item": "sku"}))
    frame = read_log(path, columns={"user": "uid", "item": "sku"}, levels=LEVELS)
    assert frame["user"].to_list() == ["1", "2", "2"], "CSV ids are text unless declared integer"
    ints = _write(tmp_path / "ints.csv", pl.DataFrame({"user": ["05", "5"], "item": [1, 2]}))
    assert read_log(ints)["user"].to_list() == ["05", "5"], "two users, not one"
    assert read_log(ints, integer_ids=True)["user"].to_list() == [5, 5]


BAD_INPUT = [
    # (name, frame or raw text, read kwargs, message pattern)
    ("missing item column", pl.DataFrame({"user": [1]}), {}, r"lacks column\(s\) \['item'\].*fix: rename"),
    ("misnamed user column", pl.DataFrame({"usr": [1], "item": [1]}), {}, r"lacks column\(s\) \['user'\]"),
    ("mapping to absent column", GOOD, {"columns": {"user": "uid"}, "levels": LEVELS}, r"maps 'user' to 'uid'"),
    ("unknown canonical name", GOOD, {"columns": {"usr": "user"}, "levels": LEVELS}, r"unknown canonical names"),
    ("null ids", pl.DataFrame({"user": [1, None], "item": [1, 2]}), {}, r"column 'user': 1 rows are null \(rows 2\)"),
    ("negative ids", pl.DataFrame({"user": [1, -3], "item": [1, 2]}), {}, r"column 'user': 1 rows are negative"),
    ("float ids", pl.DataFrame({"user": [1.5], "item": [1]}), {}, r"column 'user' has dtype Float64.*integers or str"),
    ("unparseable timestamps", pl.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": ["2024-01-01", "soon"]}),
     {}, r"timestamp': 1 values cannot be parsed, e.g. \['soon'\] \(rows 2\)"),
    ("unknown level", GOOD.with_columns(pl.lit("clik").alias("level")), {"levels": LEVELS},
     r"unknown levels such as 'clik'.*did you mean 'click'"),
    ("levels not declared", GOOD, {}, r"no ordered levels were declared"),
    ("duplicate level names", GOOD, {"levels": ["click", "click"]}, r"levels must be a non-empty list of distinct"),
    ("text rating", pl.DataFrame({"user": [1], "item": [1], "rating": ["five"]}), {}, r"'rating': 1 rows are not numbers, e.g. \['five'\] \(rows 1\)"),
    ("negative weight", pl.DataFrame({"user": [1], "item": [1], "weight": [-1.0]}), {}, r"'weight': 1 rows are null, NaN or neg"),
]


@pytest.mark.parametrize("name,frame,kwargs,pattern", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_read_log_rejects_bad_input(tmp_path, name, frame, kwargs, pattern):
    path = _write(tmp_path / "log.parquet", frame)
    with pytest.raises(DataValidationError, match=pattern):
        read_log(path, **kwargs)


@pytest.mark.parametrize("content,suffix,pattern", [
    ("", ".csv", r"is empty"),
    ("user,item\n", ".csv", r"is empty"),
    ("user,item\n1,2\n", ".xlsx", r"cannot tell the format"),
])
def test_read_log_rejects_empty_and_unknown_files(tmp_path, content, suffix, pattern):
    path = tmp_path / f"log{suffix}"
    path.write_text(content)
    with pytest.raises(DataValidationError, match=pattern):
        read_log(path)


def test_read_log_names_a_missing_path(tmp_path):
    with pytest.raises(DataValidationError, match="does not exist"):
        read_log(tmp_path / "nope.csv")
