"""Bad input, as users' files really are: every case gets one clear error naming the value, the rule and the fix,
with file line numbers (CSV/NDJSON, header = line 1) or 1-based rows (parquet). The table locks the messages."""

from __future__ import annotations

import polars as pl
import pytest

from fbrec.data import read_log
from fbrec.errors import DataValidationError, FbrecError

LV = {"levels": ["impression", "click", "cart", "purchase"]}
T0 = 1_704_103_200   # 2024-01-01 10:00:00 UTC

# (case id, file name, file text, read_log kwargs, message pattern)
TEXT_CASES = [
    ("short row", "log.csv", "user,item,level\n1,a,click\n2,b\n", LV,
     r"1 lines have fewer fields than the header's 3 \(lines 3\).*truncated"),
    ("short row without level", "log.csv", "user,item,timestamp\n1,a,5\n2\n", {},
     r"fewer fields than the header's 3 \(lines 3\)"),
    ("long row", "log.csv", "user,item\n1,a\n2,b,c\n", {}, r"1 lines have more fields than the header's 2 \(lines 3\)"),
    ("duplicate column", "log.csv", "user,item,user\n1,a,2\n", {},
     r"names column\(s\) \['user'\] more than once \(line 1\)"),
    ("duplicate canonical columns", "log.csv", "user,item,item\n1,a,b\n", {}, r"\['item'\] more than once"),
    ("ambiguous separator", "log.csv", "user;item,x\n1;a,2\n", {}, r"cannot tell the separator .* holds as many"),
    ("no separator", "log.csv", "useritem\n1\n", {}, r"cannot tell the separator .* holds none of"),
    ("separator too long", "log.csv", "user,item\n1,a\n", {"separator": ";;"}, r"separator ';;' is not one character"),
    ("wrong separator given", "log.csv", "user,item\n1,a\n", {"separator": ";"},
     r"lacks column\(s\) \['user', 'item'\].*is the separator ';' right"),
    ("tsv holding commas", "log.tsv", "user,item\n1,a\n", {}, r"lacks column\(s\).*is the separator '\\t' right"),
    ("one bad timestamp", "log.csv", "user,item,timestamp\n1,a,2024-01-01\n2,b,soon\n", {},
     r"1 values cannot be parsed, e.g. \['soon'\] \(lines 3\).*timestamp_format"),
    ("no parseable timestamp", "log.csv", "user,item,timestamp\n1,a,yesterday\n2,b,soon\n", {},
     r"2 values cannot be parsed as datetimes, e.g. \['yesterday', 'soon'\] \(lines 2, 3\)"),
    ("negative timestamp", "log.csv", f"user,item,timestamp\n1,a,{T0}\n2,b,-5\n", {},
     r"1 rows are before 1970 \(negative epoch seconds\) \(lines 3\)"),
    ("year 3000", "log.csv", "user,item,timestamp\n1,a,32503680000\n", {}, r"after the year 2100 .*\(lines 2\)"),
    ("milliseconds read as seconds", "log.csv", f"user,item,timestamp\n1,a,{T0 * 1000}\n", {},
     r"after the year 2100.*timestamp_unit='ms'"),
    ("fractional seconds", "log.csv", f"user,item,timestamp\n1,a,{T0}.5\n2,b,{T0}\n", {},
     r"1 values are fractional epoch seconds, e.g. \[1704103200.5\] \(lines 2\).*timestamp_unit='ms'"),
    ("NaN timestamp", "log.csv", f"user,item,timestamp\n1,a,{T0}\n2,b,nan\n", {}, r"1 values cannot be parsed, e.g. \[nan\] \(lines 3\)"),
    ("wrong timestamp format", "log.csv", "user,item,timestamp\n1,a,2024-01-01 10:00:00\n",
     {"timestamp_format": "%d/%m/%Y"}, r"cannot be parsed"),
    ("unknown timestamp unit", "log.csv", f"user,item,timestamp\n1,a,{T0}\n", {"timestamp_unit": "minutes"},
     r"unknown timestamp unit 'minutes'"),
    ("one text timestamp among numbers", "log.csv", f"user,item,timestamp\n1,a,{T0}\n2,b,16000x\n3,c,{T0}\n", {},
     r"1 values are not numbers in a column of epoch numbers, e.g. \['16000x'\] \(lines 3\)"),
    # bytes: files in another encoding, or not text at all
    ("latin-1 CSV", "log.csv", b"user,item\n1,a\n2,caf\xe9\n", {},
     r"'log.csv' is not UTF-8 text: line 3 holds byte 0xe9 at column 6.*iconv -f latin1"),
    ("latin-1 NDJSON", "log.ndjson", b'{"user": 1, "item": "a"}\n{"user": 2, "item": "caf\xe9"}\n', {},
     r"'log.ndjson' is not UTF-8 text: line 2 holds byte 0xe9"),
    ("binary file named .csv", "log.csv", b"user,item\n\x1f\x8b\x08\x00\x00binary", {},
     r"'log.csv' is not a text file \(it holds NUL bytes, the first at byte 14\).*decompress"),
    ("empty user", "log.csv", "user,item\n1,a\n,b\n", {}, r"column 'user': 1 rows are null \(lines 3\)"),
    ("empty item", "log.csv", "user,item\n1,a\n2,\n", {}, r"column 'item': 1 rows are null \(lines 3\)"),
    ("integer ids that are not", "log.csv", "user,item\n1,2\nu1,3\n", {"integer_ids": True},
     r"column 'user': 1 ids are not integers, e.g. \['u1'\] \(lines 3\)"),
    ("uint64 ids beyond int64", "log.csv", "user,item\n1,2\n18446744073709551615,3\n", {"integer_ids": True},
     r"column 'user': 1 ids are integers beyond the int64 range .* e.g. \['18446744073709551615'\] \(lines 3\).*"
     r"drop integer_ids to read ids as text"),
    ("negative integer ids", "log.csv", "user,item\n1,2\n-3,4\n", {"integer_ids": True},
     r"column 'user': 1 rows are negative \(lines 3\)"),
    ("unknown level", "log.csv", "user,item,level\n1,a,click\n2,b,clik\n", LV,
     r"unknown levels such as 'clik' \(lines 3\).*did you mean 'click'"),
    ("empty level", "log.csv", "user,item,level\n1,a,click\n2,b,\n", LV, r"unknown levels such as 'null' \(lines 3\)"),
    ("text rating", "log.csv", "user,item,rating\n1,a,4\n2,b,five\n", {},
     r"'rating': 1 rows are not numbers, e.g. \['five'\] \(lines 3\).*ratings must be numeric"),
    ("NaN rating", "log.csv", "user,item,rating\n1,a,4\n2,b,nan\n", {}, r"'rating': 1 rows are null or NaN \(lines 3\)"),
    ("negative weight", "log.csv", "user,item,weight\n1,a,1\n2,b,-1\n", {},
     r"'weight': 1 rows are null, NaN or negative \(lines 3\)"),
    ("negative position", "log.csv", "user,item,position\n1,a,0\n2,b,-1\n", {},
     r"'position': 1 rows are not integers >= 0 \(lines 3\)"),
    ("fractional position", "log.csv", "user,item,position\n1,a,1.5\n", {}, r"'position': .*not integers >= 0"),
    ("exposed not boolean", "log.csv", "user,item,exposed\n1,a,maybe\n", {}, r"'exposed' has dtype String"),
    ("empty session", "log.csv", "user,item,session\n1,a,s1\n2,b,\n", {}, r"'session': 1 rows are null \(lines 3\)"),
    ("header only", "log.csv", "user,item\n", {}, r"is empty"),
    ("empty file", "log.csv", "", {}, r"is empty.*a click log needs at least one row"),
    ("unknown suffix", "log.xlsx", "user,item\n1,2\n", {}, r"cannot tell the format of 'log.xlsx'"),
    ("unknown format", "log.csv", "user,item\n1,2\n", {"format": "excel"}, r"format 'excel' is not supported"),
    ("csv named parquet", "log.parquet", "user,item\n1,2\n", {}, r"cannot read .* as parquet"),
    ("mapping unknown name", "log.csv", "user,item\n1,2\n", {"columns": {"usr": "user"}},
     r"unknown canonical names \['usr'\]"),
    ("mapping absent column", "log.csv", "user,item\n1,2\n", {"columns": {"user": "uid"}},
     r"maps 'user' to 'uid', which 'log.csv' does not have"),
    ("misnamed user column", "log.csv", "usr,item\n1,2\n", {}, r"lacks column\(s\) \['user'\]"),
    ("levels not declared", "log.csv", "user,item,level\n1,a,click\n", {}, r"no ordered levels were declared"),
    ("duplicate level names", "log.csv", "user,item,level\n1,a,click\n", {"levels": ["click", "click"]},
     r"levels must be a non-empty list of distinct"),
    ("no level names", "log.csv", "user,item,level\n1,a,click\n", {"levels": []}, r"feedback levels \[\] are invalid"),
    ("ndjson null user", "log.ndjson", '{"user": 1, "item": "a"}\n{"user": null, "item": "b"}\n', {},
     r"column 'user': 1 rows are null \(lines 2\)"),
    ("ndjson float ids", "log.ndjson", '{"user": 1.5, "item": "a"}\n', {}, r"column 'user' has dtype Float64"),
    ("ndjson broken line", "log.ndjson", '{"user": 1, "item": "a"}\n{"user": 2, "item"\n', {}, r"cannot read"),
    ("ndjson negative timestamp", "log.ndjson", '{"user": 1, "item": "a", "timestamp": -1}\n', {},
     r"before 1970 .*\(lines 1\)"),
    ("ndjson unknown level", "log.ndjson", '{"user": 1, "item": "a", "level": "buy"}\n', LV,
     r"unknown levels such as 'buy' \(lines 1\)"),
    ("semicolon log with bad rows", "log.csv", "user;item;weight\n1;a;1\n2;b;-2\n", {},
     r"'weight': 1 rows are null, NaN or negative \(lines 3\)"),
    ("no header, short line", "log.csv", "1,a,5\n2,b\n", {"has_header": False, "columns":
     {"user": "column_1", "item": "column_2"}}, r"fewer fields than the header's 3 \(lines 2\)"),
]

PARQUET_CASES = [
    ("parquet null ids", pl.DataFrame({"user": [1, None], "item": [1, 2]}), {}, r"'user': 1 rows are null \(rows 2\)"),
    ("parquet negative ids", pl.DataFrame({"user": [1, -3], "item": [1, 2]}), {}, r"'user': 1 rows are negative \(rows 2"),
    ("parquet float ids", pl.DataFrame({"user": [1.5], "item": [1]}), {}, r"'user' has dtype Float64.*integers or str"),
    ("parquet fractional seconds", pl.DataFrame({"user": [1], "item": [1], "timestamp": [T0 + 0.25]}), {},
     r"fractional epoch seconds, e.g. \[1704103200.25\] \(rows 1\)"),
    ("parquet year 3000", pl.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [T0, 32503680000]}), {},
     r"after the year 2100 .*\(rows 2\)"),
    ("parquet NaN weight", pl.DataFrame({"user": [1], "item": [1], "weight": [float("nan")]}), {},
     r"'weight': 1 rows are null, NaN or negative \(rows 1\)"),
    ("parquet null timestamp", pl.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [T0, None]}), {},
     r"'timestamp': 1 rows are null or unparseable \(rows 2\)"),
    ("parquet infinite rating", pl.DataFrame({"user": [1], "item": [1], "rating": [float("nan")]}), {},
     r"'rating': 1 rows are null or NaN"),
    ("parquet string exposed", pl.DataFrame({"user": [1], "item": [1], "exposed": ["yes"]}), {}, r"'exposed' has dtype"),
    ("parquet uint64 ids", pl.DataFrame({"user": pl.Series([1, 2**64 - 1], dtype=pl.UInt64), "item": [1, 2]}),
     {"integer_ids": True}, r"'user': 1 ids are integers beyond the int64 range .*\[18446744073709551615\] \(rows 2\)"),
    ("parquet many bad rows", pl.DataFrame({"user": list(range(-8, 0)), "item": [1] * 8}), {},
     r"8 rows are negative \(rows 1, 2, 3, 4, 5, \.\.\. \(\+3 more\)\)"),
]


@pytest.mark.parametrize("name,file,text,kwargs,pattern", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_a_bad_text_log_gets_one_clear_error_with_its_line(tmp_path, name, file, text, kwargs, pattern):
    path = tmp_path / file
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    with pytest.raises(FbrecError, match=pattern) as err:
        read_log(path, **kwargs)
    assert err.value.rule and err.value.fix, "every message names the rule and the fix"


@pytest.mark.parametrize("name,frame,kwargs,pattern", PARQUET_CASES, ids=[c[0] for c in PARQUET_CASES])
def test_a_bad_parquet_log_gets_one_clear_error_with_its_row(tmp_path, name, frame, kwargs, pattern):
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    with pytest.raises(DataValidationError, match=pattern):
        read_log(path, **kwargs)


def test_a_directory_is_not_a_log(tmp_path):
    with pytest.raises(DataValidationError, match="is a directory.*point at the parquet, CSV or NDJSON file"):
        read_log(tmp_path)


@pytest.mark.parametrize("text,sep", [("user;item\n1;a\n", ";"), ("user\titem\n1\ta\n", "\t"),
                                      ("user|item\n1|a\n", "|"), ("user,item\n1,a\n", ",")])
def test_the_separator_is_detected_from_the_header(tmp_path, text, sep):
    path = tmp_path / "log.csv"
    path.write_text(text)
    assert read_log(path).row(0) == ("1", "a")
    assert read_log(path, separator=sep).row(0) == ("1", "a")


@pytest.mark.parametrize("text,unit,expected", [
    (f"{T0}", "s", T0), (f"{T0 * 1000 + 999}", "ms", T0), (f"{T0}.0", "s", T0), ("2024-01-01T10:00:00Z", "s", T0),
    ("2024-01-01 10:00:00", "s", T0), (f"{T0 * 10**9}", "ns", T0), (f"{T0 * 1000}.5", "ms", T0),
])
def test_valid_timestamps_in_every_documented_form(tmp_path, text, unit, expected):
    path = tmp_path / "log.csv"
    path.write_text(f"user,item,timestamp\n1,a,{text}\n")
    assert read_log(path, timestamp_unit=unit)["timestamp"].to_list() == [expected]


def test_a_timestamp_format_reads_local_notations(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\n1,a,01/01/2024 10:00\n")
    assert read_log(path, timestamp_format="%d/%m/%Y %H:%M")["timestamp"].to_list() == [T0]


def test_the_reader_cases_cover_the_promised_sixty(tmp_path):
    assert len(TEXT_CASES) + len(PARQUET_CASES) >= 60
    assert len({c[0] for c in TEXT_CASES + PARQUET_CASES}) == len(TEXT_CASES) + len(PARQUET_CASES)


