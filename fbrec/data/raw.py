"""The real datasets' files read into canonical logs (RawDataset), one loader per dataset, and the synthetic
default's; the registry that names them is fbrec.data.datasets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from fbrec.data.schema import cast_levels
from fbrec.data.synthetic import SyntheticConfig, generate, mcar_test
from fbrec.errors import DataValidationError, UnknownNameError
from fbrec.types import ITEM, LEVEL, RATING, TIMESTAMP, USER


@dataclass(frozen=True)
class RawDataset:
    """A canonical log, optionally an external test log (e.g. MCAR) and item and user side tables.

    catalogue: the raw ids of every item the dataset declares (Coat's 300, MovieLens-100K's 1,682); they all get an
    index, with or without a training positive, so a protocol that ranks given items ranks all of them."""

    log: pl.DataFrame
    test: pl.DataFrame | None = None
    items: pl.DataFrame | None = None
    files: tuple[Path, ...] = ()
    users: pl.DataFrame | None = None
    catalogue: pl.Series | None = None


def _require(path: Path, name: str, hint: str = "") -> Path:
    if not path.exists():
        raise DataValidationError(f"dataset {name!r}: file {str(path)!r} is missing",
                                  rule="real datasets are read from the data directory",
                                  fix=hint or "set FBREC_DATA_DIR to the folder holding the datasets (../shared/data)")
    return path


def _dense_ratings(path: Path, name: str) -> pl.DataFrame:
    try:
        mat = np.loadtxt(path, dtype=np.int64)
    except ValueError as exc:
        raise DataValidationError(f"dataset {name!r}: {path.name} is not a dense integer matrix: {exc}",
                                  rule="one row per user, one column per item", fix="restore the original file") from exc
    users, items = np.nonzero(mat)
    return pl.DataFrame({USER: users.astype(np.int64), ITEM: items.astype(np.int64),
                         RATING: mat[users, items].astype(np.float64)}), mat.shape[1]


def _load_coat(root: Path, options: dict) -> RawDataset:
    d = root / "coat"
    train, test = _require(d / "train.ascii", "coat"), _require(d / "test.ascii", "coat")
    (log, n_train), (test_log, n_test) = _dense_ratings(train, "coat"), _dense_ratings(test, "coat")
    catalogue = pl.Series(ITEM, np.arange(max(n_train, n_test), dtype=np.int64))   # one column per item: 300
    items = _coat_items(d / "user_item_features")
    return RawDataset(log, test=test_log, files=(train, test), catalogue=catalogue, items=items)


def _coat_items(d: Path) -> pl.DataFrame | None:
    """Coat's item attributes (gender, jacket type, colour, front page), decoded from the one-hot matrix with its
    column map; None when the folder is absent (the ratings alone still load)."""
    if not (d / "item_features.ascii").exists() or not (d / "item_features_map.txt").exists():
        return None
    names = [line.strip().split(":", 1) for line in (d / "item_features_map.txt").read_text().splitlines()
             if line.strip()]
    onehot = np.loadtxt(d / "item_features.ascii", dtype=np.int64)
    columns: dict[str, list] = {}
    for group in dict.fromkeys(g for g, _ in names):
        idx = [j for j, (g, _) in enumerate(names) if g == group]
        picked = onehot[:, idx].argmax(1)
        has = onehot[:, idx].sum(1) > 0
        columns[group] = [names[idx[p]][1] if h else None for p, h in zip(picked, has, strict=True)]
    return pl.DataFrame({ITEM: np.arange(onehot.shape[0], dtype=np.int64), **columns})


def _coat_propensities(root: Path) -> pl.DataFrame:
    """Schnabel et al.'s learned P(user rates item) for all 290 x 300 pairs (`propensities.ascii`)."""
    from fbrec.data.propensities import dense_pair_propensities

    path = _require(root / "coat" / "propensities.ascii", "coat")
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except ValueError as exc:
        raise DataValidationError(f"dataset 'coat': {path.name} is not a dense float matrix: {exc}",
                                  rule="one row per user, one column per item", fix="restore the original file") from exc
    return dense_pair_propensities(matrix, source=f"dataset 'coat' {path.name}")


def _load_movielens(root: Path, options: dict) -> RawDataset:
    d = root / "movielens-100k"
    path = _require(d / "u.data", "movielens-100k")
    log = pl.read_csv(path, separator="\t", has_header=False, new_columns=[USER, ITEM, RATING, TIMESTAMP],
                      schema_overrides={"column_1": pl.Int64, "column_2": pl.Int64, "column_3": pl.Float64,
                                        "column_4": pl.Int64})
    items_path = _require(d / "u.item", "movielens-100k")
    genres = [line.split("|")[0] for line in (d / "u.genre").read_text(encoding="latin-1").splitlines() if line]
    rows = [line.split("|") for line in items_path.read_text(encoding="latin-1").splitlines() if line]
    items = pl.DataFrame({
        ITEM: [int(r[0]) for r in rows], "title": [r[1] for r in rows],
        "genres": [[g for g, flag in zip(genres, r[5:], strict=False) if flag == "1"] for r in rows],
        "release_date": [r[2] for r in rows]})
    # the year from the release date ("01-Jan-1995"); one movie has none (null year)
    items = items.with_columns(
        pl.col("release_date").str.slice(-4).cast(pl.Int64, strict=False).alias("year"),
        pl.col("title").str.replace(r"\s*\(\d{4}\)\s*$", "").alias("title")).drop("release_date")
    files = (path, items_path)
    users = None
    if (d / "u.user").exists():
        users = pl.read_csv(d / "u.user", separator="|", has_header=False,
                            new_columns=[USER, "age", "gender", "occupation", "zip_code"],
                            schema_overrides={"column_1": pl.Int64, "column_2": pl.Int64, "column_5": pl.String})
        users = users.with_columns(pl.col("zip_code").str.slice(0, 1).alias("zip_region"))
        files = (*files, d / "u.user")
    return RawDataset(log, items=items, files=files, users=users, catalogue=items[ITEM])


# fav and cart share one level: they are alternative signals of intent, not successive steps. In the sample,
# 4,014 of the 4,066 pairs whose strongest event is a cart never saw a fav, and they convert alike (6.7% of cart
# pairs and 4.6% of fav pairs end in a buy); ordering them would invent a level most buyers skip.
TAOBAO_LEVELS = ("pv", "fav_cart", "buy")


def _load_taobao(root: Path, options: dict) -> RawDataset:
    path = _require(root / "taobao-userbehavior-sample" / "UserBehavior_head.csv", "taobao-userbehavior-sample")
    log = pl.read_csv(path, has_header=False, new_columns=[USER, ITEM, "category", LEVEL, TIMESTAMP],
                      schema_overrides={"column_1": pl.Int64, "column_2": pl.Int64, "column_3": pl.Int64,
                                        "column_4": pl.String, "column_5": pl.Int64})
    items = log.group_by(ITEM).agg(pl.col("category").first()).sort(ITEM)
    log = log.with_columns(pl.col(LEVEL).replace({"fav": "fav_cart", "cart": "fav_cart"}))
    return RawDataset(cast_levels(log.drop("category"), TAOBAO_LEVELS), items=items, files=(path,))


def _load_amazon(root: Path, options: dict) -> RawDataset:
    d = root / "amazon-scientific-text"
    files = [_require(d / f"Scientific.{part}.inter", "amazon-scientific-text") for part in ("train", "valid", "test")]
    # RecBole sequential format: each valid/test row holds the full history and the held-out target, so the
    # test row alone reconstructs the whole chronological sequence; timestamp = position in the sequence.
    test = pl.read_csv(files[2], separator="\t", schema_overrides={"user_id:token": pl.Int64, "item_id:token": pl.Int64})
    test.columns = [USER, "history", ITEM]
    seq = test.with_columns(
        pl.concat_list(pl.col("history").str.split(" ").cast(pl.List(pl.Int64)), pl.col(ITEM)).alias(ITEM)
    ).select(USER, ITEM).explode(ITEM).with_columns(pl.int_range(pl.len()).over(USER).cast(pl.Int64).alias(TIMESTAMP))
    text_path = _require(d / "Scientific.text", "amazon-scientific-text")
    idx_path = _require(d / "Scientific.item2index", "amazon-scientific-text")
    text = pl.read_csv(text_path, separator="\t", quote_char=None, has_header=True, new_columns=["asin", "text"])
    index = pl.read_csv(idx_path, separator="\t", has_header=False, new_columns=["asin", ITEM],
                        schema_overrides={"column_2": pl.Int64})
    items = index.join(text, on="asin", how="left").sort(ITEM)
    # UniSRec's text is "title. category path. brand. "; titles may hold ". " themselves, so split from the right
    # the greedy first group leaves exactly the last two segments to category and brand
    parts = items["text"].str.strip_chars().str.strip_chars_end(". ").str.extract_groups(r"^(.*)\. (.*)\. (.*)$")
    items = items.with_columns(pl.coalesce(parts.struct.field("1"), pl.col("text")).alias("title"),
                               parts.struct.field("2").str.strip_chars().alias("category"),
                               parts.struct.field("3").str.strip_chars().alias("brand"))
    return RawDataset(seq, items=items, files=(*files, text_path, idx_path))


def _load_tmall(root: Path, options: dict) -> RawDataset:
    from fbrec.data.multibehaviour import TMALL_ITEMS, load_tmall

    log, test, files = load_tmall(root)
    return RawDataset(log, test=test, files=files, catalogue=pl.Series(ITEM, np.arange(TMALL_ITEMS, dtype=np.int64)))


def _load_yahoo(root: Path, options: dict) -> RawDataset:
    d = Path(options.get("path") or os.environ.get("FBREC_YAHOO_R3_DIR") or root / "yahoo_r3")
    hint = ("Yahoo! R3 may not be redistributed: request it from Yahoo! Webscope, then set FBREC_YAHOO_R3_DIR to the "
            "folder holding ydata-ymusic-rating-study-v1_0-train.txt and -test.txt")
    files = [_require(d / f"ydata-ymusic-rating-study-v1_0-{p}.txt", "yahoo_r3", hint) for p in ("train", "test")]
    read = [pl.read_csv(f, separator="\t", has_header=False, new_columns=[USER, ITEM, RATING],
                        schema_overrides={"column_1": pl.Int64, "column_2": pl.Int64, "column_3": pl.Float64})
            for f in files]
    catalogue = pl.concat([read[0][ITEM], read[1][ITEM]]).unique().sort()   # the songs either file lists
    return RawDataset(read[0], test=read[1], files=tuple(files), catalogue=catalogue)


def _load_synthetic(root: Path, options: dict) -> RawDataset:
    """options: SyntheticConfig's fields, plus mcar_test_items = n for an MCAR relevance test of n never-clicked
    items per user (use it with split: external)."""
    options = dict(options)
    mcar_items = int(options.pop("mcar_test_items", 0))
    known = set(SyntheticConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise UnknownNameError("synthetic option", unknown[0], known | {"mcar_test_items"})
    data = generate(SyntheticConfig(**options))
    return RawDataset(data.log, items=data.items, test=mcar_test(data, mcar_items) if mcar_items else None)
