"""Persistent id maps: raw id <-> contiguous index, fitted on the training split only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from fbrec.errors import DataValidationError

_RAW, _INDEX = "raw", "index"


@dataclass(frozen=True)
class IdMap:
    """raw ids in index order: `raw[i]` is the raw id of index i. Build with `fit`."""

    name: str
    raw: pl.Series

    @classmethod
    def fit(cls, name: str, values: pl.Series) -> IdMap:
        # sorted unique raw ids -> indices are stable across runs on the same training data
        return cls(name, values.unique().sort().rename(_RAW))

    def __len__(self) -> int:
        return self.raw.len()

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame({_RAW: self.raw, _INDEX: np.arange(len(self), dtype=np.int64)})

    def encode(self, frame: pl.DataFrame, column: str, out: str, *, unknown: str = "raise") -> pl.DataFrame:
        """Add `out` = index of `column`. unknown: "raise" (name the ids) or "drop" those rows."""
        if unknown not in ("raise", "drop"):
            raise ValueError(f"unknown={unknown!r} must be 'raise' or 'drop'")
        col = frame[column]
        if col.dtype != self.raw.dtype:
            col = col.cast(self.raw.dtype, strict=False)
        lookup = self.frame().rename({_RAW: column, _INDEX: out})
        joined = frame.with_columns(col.alias(column)).join(lookup, on=column, how="left", maintain_order="left")
        missing = joined[out].is_null()
        if missing.any():
            if unknown == "drop":
                return joined.filter(~missing)
            examples = joined.filter(missing)[column].unique().head(5).to_list()
            raise DataValidationError(
                f"{missing.sum()} rows have {self.name} ids unknown to the training data, e.g. {examples}",
                rule=f"every {self.name} must appear in the training split",
                fix=f"drop cold {self.name}s (unknown='drop') or include them in training")
        return joined

    def decode(self, index: np.ndarray) -> list:
        return self.raw.gather(np.asarray(index, dtype=np.int64)).to_list()

    def save(self, path: Path) -> None:
        self.frame().write_parquet(path)

    @classmethod
    def load(cls, name: str, path: Path) -> IdMap:
        frame = pl.read_parquet(path)
        if frame.columns != [_RAW, _INDEX] or not (frame[_INDEX] == np.arange(frame.height)).all():
            raise DataValidationError(f"id map {str(path)!r} is corrupted", rule="columns raw, index with index 0..n-1",
                                      fix="re-export the bundle or re-run `fbrec data prepare`")
        return cls(name, frame[_RAW])
