"""Side features of items (and users) as integer bags, ready to become KeyedJaggedTensors, plus their mutual
information (for Correlated Feature Masking, Yao et al. 2021).

A FeatureSpec says how one column of the side table becomes ids:
  categorical  one value per row (brand, category)
  multi        a list column (genres, a category path)
  words        a string column split into lower-case words (a title)
  bucket       a number cut into `buckets` quantile buckets (a release year)
Values seen fewer than `min_count` times share one "rare" id. Every feature set starts with the id feature
("id", one id per row; the towers key it item_id / user_id), which is maskable like any other (Yao et al.:
masking only side features leaves the id as a shortcut between the two views).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from fbrec.errors import ConfigError, DataValidationError, UnknownNameError

KINDS = ("categorical", "multi", "words", "bucket")
MISSING = ("error", "unknown")
_RARE, _UNKNOWN = "<rare>", "<unknown>"


@dataclass(frozen=True)
class FeatureSpec:
    """How `column` of the side table becomes the feature `name` (default: the column's name).

    missing: "error" stops at a row with a null, an empty list or an empty string; "unknown" gives it its own id.
    max_values: keep at most this many values per row (words: the first ones)."""

    column: str
    kind: str = "categorical"
    name: str | None = None
    min_count: int = 1
    buckets: int = 10
    max_values: int | None = None
    missing: str = "error"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UnknownNameError("feature kind", self.kind, KINDS)
        if self.missing not in MISSING:
            raise UnknownNameError("missing-value policy", self.missing, MISSING)
        if self.min_count < 1 or self.buckets < 2 or (self.max_values is not None and self.max_values < 1):
            raise ConfigError(f"feature {self.feature!r}: min_count={self.min_count}, buckets={self.buckets}, "
                              f"max_values={self.max_values}", rule="min_count >= 1, buckets >= 2, max_values >= 1",
                              fix="fix the feature spec in the recipe")

    @property
    def feature(self) -> str:
        return self.name or self.column


@dataclass
class FeatureSet:
    """Per feature, CSR-style bags over rows 0..n-1: values[offsets[r]:offsets[r + 1]] are row r's ids."""

    names: list[str]
    vocab_sizes: list[int]
    offsets: list[np.ndarray]      # (n + 1,) int64 each
    values: list[np.ndarray]       # (nnz,) int64 each, in [0, vocab_size)
    multi_valued: list[bool]
    vocabularies: list[list[str]]
    # how raw values became ids, per feature, so a service can encode a new row the same way (see encode_row)
    encoders: list[dict] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return len(self.offsets[0]) - 1

    def bags(self, f: int) -> sp.csr_matrix:
        """(n, vocab) 0/1 matrix of feature f."""
        data = np.ones(len(self.values[f]), dtype=np.float64)
        return sp.csr_matrix((data, self.values[f], self.offsets[f]), shape=(self.num_rows, self.vocab_sizes[f]))


def id_only(num_rows: int) -> FeatureSet:
    """The id feature alone: row r's bag is [r]."""
    offsets = np.arange(num_rows + 1, dtype=np.int64)
    return FeatureSet(["id"], [num_rows], [offsets], [np.arange(num_rows, dtype=np.int64)], [False],
                      [[]], [{"name": "id", "kind": "id"}])


def _tokens(frame: pl.DataFrame, spec: FeatureSpec, edges: list[float] | None = None) -> pl.Series:
    """The column as a list-of-strings Series (null = missing). Buckets cut at `edges` when given (a new row
    encoded like the training rows), else at this frame's quantiles."""
    col = frame[spec.column]
    if spec.kind == "multi":
        if not isinstance(col.dtype, pl.List):
            raise DataValidationError(f"feature {spec.feature!r}: column {spec.column!r} is {col.dtype}",
                                      rule="kind='multi' needs a list column",
                                      fix="use kind='words' for a string or kind='categorical' for one value")
        return col.cast(pl.List(pl.String))
    if spec.kind == "words":
        return col.cast(pl.String).str.to_lowercase().str.extract_all(r"[a-z0-9][a-z0-9'&+-]*")
    if spec.kind == "categorical":
        value = col.cast(pl.String).str.strip_chars()
    else:   # bucket: quantile buckets of a number, cut on these rows
        num = col.cast(pl.Float64, strict=False).fill_nan(None)
        edges = np.asarray(edges if edges is not None else bucket_edges(num, spec.buckets), dtype=np.float64)
        bucket = np.searchsorted(edges, num.fill_null(0.0).to_numpy(), side="right").astype(str)
        value = pl.Series(bucket).set(num.is_null(), None)
    single = pl.DataFrame({"v": value})
    return single.select(pl.when(pl.col("v").is_null() | (pl.col("v") == "")).then(None)
                         .otherwise(pl.concat_list("v")).alias(spec.feature)).to_series()


def bucket_edges(num: pl.Series, buckets: int) -> list[float]:
    """Quantile cut points of a numeric column (nulls ignored)."""
    observed = num.drop_nulls().to_numpy()
    return np.unique(np.quantile(observed, np.linspace(0, 1, buckets + 1)[1:-1])).tolist() if len(observed) else []


def _encode(frame: pl.DataFrame, spec: FeatureSpec, index_column: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    tokens = _tokens(frame, spec)
    if spec.max_values is not None:
        tokens = tokens.list.head(spec.max_values)
    empty = tokens.is_null() | (tokens.list.len() == 0)
    if empty.any():
        if spec.missing == "error":
            rows = frame[index_column].filter(empty).head(5).to_list()
            raise DataValidationError(
                f"feature {spec.feature!r}: {int(empty.sum())} of {frame.height} rows have no value in column "
                f"{spec.column!r} (null, empty list or empty text; {index_column} {rows}...)",
                rule="every row needs at least one value, or an explicit policy for missing ones",
                fix=f"fill the column, or set missing: unknown in the {spec.feature!r} feature spec")
        tokens = pl.select(pl.when(empty).then(pl.lit([_UNKNOWN])).otherwise(tokens)).to_series()
    lengths = tokens.list.len().to_numpy().astype(np.int64)
    flat = tokens.explode()
    counts = flat.value_counts(sort=True)
    frequent = counts.filter(pl.col("count") >= spec.min_count)[flat.name].sort().to_list()
    vocab = [_RARE] + [v for v in frequent if v != _RARE]
    lookup = pl.DataFrame({"token": vocab, "id": np.arange(len(vocab), dtype=np.int64)})
    ids = pl.DataFrame({"token": flat}).join(lookup, on="token", how="left", maintain_order="left")["id"]
    values = ids.fill_null(0).to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return offsets, values, vocab


def build_features(table: pl.DataFrame | None, specs: Sequence[FeatureSpec], num_rows: int, *,
                   index_column: str, row_name: str = "item") -> FeatureSet:
    """Bags for rows 0..num_rows-1 of a side table indexed by `index_column` (the prepared item_index).

    Raises when the table lacks a row for some indexed item, a named column, or (missing="error") a value."""
    out = id_only(num_rows)
    if not specs:
        return out
    if table is None:
        raise DataValidationError(f"{len(specs)} {row_name} features requested but the dataset has no {row_name} "
                                  "table", rule=f"side features come from the dataset's {row_name} table",
                                  fix=f"drop the {row_name}_features from the recipe, or use a dataset with one")
    for spec in specs:
        if spec.column not in table.columns:
            raise UnknownNameError(f"{row_name} column", spec.column, [c for c in table.columns if c != index_column])
    names = [out.names[0], *(s.feature for s in specs)]
    if len(set(names)) != len(names):
        raise ConfigError(f"{row_name} feature names {names} repeat", rule="feature names are unique",
                          fix="give repeated columns distinct `name`s")
    rows = table.filter(pl.col(index_column).is_not_null()).unique(index_column, keep="first").sort(index_column)
    present = np.zeros(num_rows, dtype=bool)
    present[rows[index_column].to_numpy()] = True
    if not present.all():
        lacking = np.flatnonzero(~present)
        raise DataValidationError(
            f"{len(lacking)} of {num_rows} {row_name}s have no row in the {row_name} table "
            f"({row_name}_index {lacking[:5].tolist()}...)",
            rule=f"every {row_name} the model trains on needs its side features",
            fix=f"add the missing rows to the {row_name} table, or train without {row_name} features")
    for spec in specs:
        offsets, values, vocab = _encode(rows, spec, index_column)
        out.names.append(spec.feature)
        out.vocab_sizes.append(len(vocab))
        out.offsets.append(offsets)
        out.values.append(values)
        out.multi_valued.append(spec.kind in ("multi", "words"))
        out.vocabularies.append(vocab)
        edges = bucket_edges(rows[spec.column].cast(pl.Float64, strict=False).fill_nan(None), spec.buckets) \
            if spec.kind == "bucket" else None
        out.encoders.append({"name": spec.feature, "kind": spec.kind, "column": spec.column,
                             "max_values": spec.max_values, "vocabulary": vocab, "edges": edges})
    return out


def encode_row(encoder: dict, value) -> list[int]:
    """The ids of one raw value of a feature, encoded as its training rows were: unknown tokens -> the rare id 0,
    a missing value -> the <unknown> id when the feature had one, else no ids (an empty bag)."""
    if encoder["kind"] == "id":
        return []
    spec = FeatureSpec(encoder["column"], encoder["kind"], max_values=encoder.get("max_values"))
    column = encoder["column"]
    frame = pl.DataFrame([pl.Series(column, [None if value is None else [str(v) for v in value]],
                                    dtype=pl.List(pl.String)) if encoder["kind"] == "multi"
                          else pl.Series(column, [value])])
    tokens = _tokens(frame, spec, encoder.get("edges"))[0]
    if spec.max_values is not None and tokens is not None:
        tokens = tokens[: spec.max_values]
    lookup = {t: i for i, t in enumerate(encoder["vocabulary"])}
    if tokens is None or len(tokens) == 0:
        return [lookup[_UNKNOWN]] if _UNKNOWN in lookup else []
    return [lookup.get(t, 0) for t in tokens]


def mutual_information(features: FeatureSet, weights: np.ndarray | None = None) -> np.ndarray:
    """(F, F) pairwise mutual information (nats) between features, MI(A, B) = sum P(a, b) log P(a, b) / P(a)P(b).

    Rows are weighted by `weights` (e.g. training interactions per item, so the MI is that of the training data);
    a row with several values spreads its weight evenly over its value pairs. The diagonal is each feature's
    entropy."""
    n = features.num_rows
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or (w < 0).any() or w.sum() <= 0:
        raise DataValidationError(f"weights of shape {w.shape} (sum {w.sum():.3g})",
                                  rule=f"one non-negative weight per row ({n}), not all zero",
                                  fix="pass training counts per item")
    w = w / w.sum()
    normed = []
    for f in range(len(features.names)):
        bags = features.bags(f)
        size = np.maximum(np.diff(bags.indptr), 1)
        normed.append(sp.diags(1.0 / size) @ bags)                       # rows sum to 1 (0 when empty)
    F = len(normed)
    mi = np.zeros((F, F))
    for a in range(F):
        for b in range(a, F):
            joint = (normed[a].T @ sp.diags(w) @ normed[b]).tocoo()       # (Va, Vb) P(a, b)
            pa = np.asarray(joint.sum(axis=1)).ravel()
            pb = np.asarray(joint.sum(axis=0)).ravel()
            keep = joint.data > 0
            p, ia, ib = joint.data[keep], joint.row[keep], joint.col[keep]
            mi[a, b] = mi[b, a] = float((p * np.log(p / (pa[ia] * pb[ib]))).sum())
    return mi
