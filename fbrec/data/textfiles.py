"""Text logs checked before polars reads them: the separator from the header, ragged rows, bytes that are not
UTF-8 or not text at all, each named by its file line."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from fbrec.data.schema import Where
from fbrec.errors import DataValidationError

SEPARATORS = (",", "\t", ";", "|")


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return f.readline().rstrip("\r\n")


def detect_separator(path: Path, separator: str | None) -> str:
    """The given separator, tab for .tsv, else the one of , tab ; | that the header line holds most often."""
    if separator is not None:
        if len(separator) != 1:
            raise DataValidationError(f"separator {separator!r} is not one character",
                                      rule="a CSV separator is a single character", fix="pass separator=';' or '\\t'")
        return separator
    if path.suffix.lower() == ".tsv":
        return "\t"
    header = _first_line(path)
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts.values())
    found = [sep for sep, n in counts.items() if n == best]
    if best == 0 or len(found) > 1:
        problem = "holds none of" if best == 0 else f"holds as many {' and '.join(map(repr, found))} among"
        raise DataValidationError(f"cannot tell the separator of {path.name!r}: its first line {header[:80]!r} "
                                  f"{problem} {', '.join(map(repr, SEPARATORS))}",
                                  rule="the header names at least the user and item columns, split by one separator",
                                  fix="pass separator=',' (data.separator in a recipe)")
    return found[0]


def _csv_header(path: Path, sep: str, has_header: bool) -> list[str]:
    """The header's column names (duplicates refused: polars would silently rename them)."""
    fields = next(csv.reader([_first_line(path)], delimiter=sep))
    if not has_header:
        return [f"column_{i + 1}" for i in range(len(fields))]
    repeated = sorted({name for name in fields if fields.count(name) > 1})
    if repeated:
        raise DataValidationError(f"{path.name!r} names column(s) {repeated} more than once (line 1)",
                                  rule="column names are unique", fix="rename or drop the repeated columns")
    return fields


def _field_counts(path: Path, sep: str, has_header: bool) -> pl.Series:
    """Fields per data line, counted on the raw text (a quoted separator counts too: a hint, not a parser)."""
    lines = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
                        schema={"line": pl.String})["line"]
    counts = lines.fill_null("").str.count_matches(sep, literal=True) + 1
    return counts[1:] if has_header else counts


def _ragged(path: Path, sep: str, has_header: bool, n_fields: int, where: Where) -> None:
    counts = _field_counts(path, sep, has_header)
    for mask, problem, fix in ((counts < n_fields, "fewer", "complete or drop those lines (a truncated export?)"),
                               (counts > n_fields, "more", "quote fields that contain the separator, or fix the "
                                                            "separator with separator=")):
        if mask.any():
            raise DataValidationError(f"{path.name!r}: {mask.sum()} lines have {problem} fields than the header's "
                                      f"{n_fields} ({where(mask)})", rule="every line has one field per column",
                                      fix=fix)


def _not_utf8(path: Path) -> DataValidationError | None:
    """The first line of a text log that is not UTF-8, as an error naming it (None when the file is UTF-8)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return DataValidationError(
                    f"{path.name!r} is not UTF-8 text: line {number} holds byte 0x{line[exc.start]:02x} at column "
                    f"{exc.start + 1}", rule="CSV and NDJSON logs are UTF-8 text",
                    fix=f"re-encode the file, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8_{path.name}` "
                        "(or write it as parquet)")
    return None


def _check_text(path: Path) -> None:
    """CSV and NDJSON logs are UTF-8 text: a binary file (NUL bytes) or another encoding is named before parsing."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    nul = head.find(bytes(1))
    if nul >= 0:
        raise DataValidationError(f"{path.name!r} is not a text file (it holds NUL bytes, the first at byte "
                                  f"{nul + 1})", rule="CSV and NDJSON logs are UTF-8 text",
                                  fix="is it parquet or compressed? name it .parquet, or decompress it first")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4 and (found := _not_utf8(path)) is not None:   # not a cut multi-byte char
            raise found from None


def _unreadable(path: Path, fmt: str, exc: Exception) -> DataValidationError:
    """A reader's failure as one error: the encoding, named by line, when that is the cause."""
    if fmt != "parquet" and "utf-8" in str(exc).lower() and (found := _not_utf8(path)) is not None:
        return found
    return DataValidationError(f"cannot read {str(path)!r} as {fmt}: {exc}".splitlines()[0],
                               rule=f"the file must be valid {fmt}", fix="check the file and format=")
