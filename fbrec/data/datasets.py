"""Loaders for the real datasets and the synthetic default, each returning a canonical log.

The data directory is `fbrec.data.location.data_dir()`; files are read in place, never copied. A fetchable dataset
whose folder is absent is downloaded there on first use (`fbrec.data.fetch`), unless FBREC_OFFLINE=1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fbrec.data.location import data_dir
from fbrec.data.schema import FeedbackLevels, cast_levels, validate_log
from fbrec.data.synthetic import LEVELS as SYNTHETIC_LEVELS
from fbrec.data.synthetic import SyntheticConfig, generate, mcar_test
from fbrec.errors import ConfigError, DataValidationError, UnknownNameError
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


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    source: str
    license: str
    redistributable: bool
    loader: Callable[[Path, dict], RawDataset]
    levels: tuple[str, ...] | None = None
    # default preprocessing, overridable per run
    prepare: dict = field(default_factory=dict)

    def card(self) -> dict:
        return {"name": self.name, "description": self.description, "source": self.source, "license": self.license,
                "redistributable": self.redistributable, "levels": list(self.levels or ()),
                "default_prepare": dict(self.prepare)}


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


PAIR_PROPENSITIES = {"coat": _coat_propensities}


def load_pair_propensities(name: str, root: str | Path | None = None) -> pl.DataFrame:
    """The (user, item, propensity) table a dataset ships (raw ids), for `data.propensity: dataset`."""
    if name not in PAIR_PROPENSITIES:
        raise ConfigError(f"dataset {name!r} ships no pair propensities",
                          rule=f"propensity: dataset needs one of {sorted(PAIR_PROPENSITIES)}",
                          fix="use propensity: popularity, or propensity: file with propensity_path")
    return PAIR_PROPENSITIES[name](data_dir(root))


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


_SEMI_OPTIONS = {"power": 1.0, "epsilon": 5.0, "rank": 20, "test_items": 50, "seed": 0, "min_exposure": 1e-3}


def _low_rank(matrix: np.ndarray, rank: int) -> np.ndarray:
    from scipy.sparse.linalg import svds

    u, sv, vt = svds(matrix.astype(np.float64), k=rank)
    return (u * sv) @ vt


def semisynthetic_truth(root: Path, options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The semi-synthetic MovieLens-100K ground truth: relevance probabilities gamma and exposure probabilities
    theta, (943, 1682) each, row u - 1 / column i - 1 for raw user u and item i (see the loader below)."""
    opt = {**_SEMI_OPTIONS, **(options or {})}
    ratings = _load_movielens(root, {}).log
    U, I = int(ratings[USER].max()), int(ratings[ITEM].max())
    dense = np.zeros((U, I))
    dense[ratings[USER].to_numpy() - 1, ratings[ITEM].to_numpy() - 1] = ratings[RATING].to_numpy()
    observed = dense > 0
    user_mean = dense.sum(1) / observed.sum(1)
    filled = np.where(observed, dense, user_mean[:, None])
    r_hat = np.clip(user_mean[:, None] + _low_rank(filled - user_mean[:, None], int(opt["rank"])), 1, 5)
    gamma = 1 / (1 + np.exp(-(r_hat - opt["epsilon"])))
    floor = float(opt["min_exposure"])
    if not 0 < floor < 1:
        raise ConfigError(f"min_exposure={floor}", rule="the exposure floor lies in (0, 1)",
                          fix="e.g. min_exposure: 1e-4 (benchmarks/RESULTS.md measures the share of cells on it)")
    theta = np.clip(_low_rank(observed.astype(np.float64), int(opt["rank"])), floor, 1) ** opt["power"]
    return gamma, theta


def _load_movielens_semisynthetic(root: Path, options: dict) -> RawDataset:
    """Saito et al.'s semi-synthetic protocol on MovieLens-100K, with known relevance and exposure.

    relevance gamma = sigmoid(R_hat - epsilon), R_hat a rank-`rank` reconstruction of the ratings (user means
    filled in), clipped to [1, 5]; exposure theta = clip(O_hat, min_exposure, 1) ** power, O_hat a rank-`rank`
    reconstruction of the 0/1 rated matrix (larger power = stronger MNAR skew). The reconstruction is negative
    for many never-rated cells, so the floor (default 1e-3) is part of the protocol: about 40% of cells sit on it
    (measured in benchmarks/RESULTS.md, section mnar-propensity-scale). Clicks Y = O * R with
    O ~ Bernoulli(theta), R ~ Bernoulli(gamma) form the training log; the test set is `test_items` uniformly
    random unclicked items per user labelled with their drawn relevance R (an MCAR test with ground truth)."""
    unknown = sorted(set(options) - set(_SEMI_OPTIONS))
    if unknown:
        raise UnknownNameError("semi-synthetic option", unknown[0], _SEMI_OPTIONS)
    opt = {**_SEMI_OPTIONS, **options}
    gamma, theta = semisynthetic_truth(root, opt)
    U, I = gamma.shape
    rng = np.random.default_rng(int(opt["seed"]))
    relevant = rng.random((U, I)) < gamma
    clicks = relevant & (rng.random((U, I)) < theta)
    u, i = np.nonzero(clicks)
    log = pl.DataFrame({USER: u + 1, ITEM: i + 1, RATING: np.ones(len(u))})
    # MCAR test: uniformly random unclicked items per user, with their drawn relevance as the rating (0 or 1)
    keys = rng.random((U, I))
    keys[clicks] = np.inf
    test_items = np.argsort(keys, axis=1)[:, :int(opt["test_items"])]
    tu = np.repeat(np.arange(U), test_items.shape[1])
    ti = test_items.reshape(-1)
    test = pl.DataFrame({USER: tu + 1, ITEM: ti + 1, RATING: relevant[tu, ti].astype(np.float64)})
    return RawDataset(log, test=test, files=(root / "movielens-100k" / "u.data",),
                      catalogue=pl.Series(ITEM, np.arange(1, I + 1, dtype=np.int64)))


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


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("synthetic", "Seeded generator with planted factors, popularity/position exposure and nested levels",
                "fbrec.data.synthetic (generated)", "Apache-2.0 (generated by fbrec)", True, _load_synthetic,
                SYNTHETIC_LEVELS.names, {"min_level": "click", "split": "temporal", "min_user": 2, "min_item": 2}),
    DatasetSpec("movielens-100k", "MovieLens 100K ratings with timestamps, titles and genres",
                "GroupLens, https://grouplens.org/datasets/movielens/100k/",
                "research use only; may not be redistributed without permission", False, _load_movielens, None,
                {"min_rating": 4.0, "split": "random", "min_user": 1, "min_item": 1}),
    DatasetSpec("movielens-100k-semisynthetic", "MovieLens-100K turned into MNAR clicks with known relevance "
                "and exposure (Saito et al. 2020's protocol), and an MCAR ground-truth test",
                "derived from GroupLens MovieLens 100K by fbrec", "as movielens-100k: may not be redistributed", False,
                _load_movielens_semisynthetic, None,
                {"min_rating": 1.0, "split": "external", "min_user": 1, "min_item": 1}),
    DatasetSpec("coat", "Coat shopping: MNAR self-selected ratings for training, MCAR ratings of 16 random items per "
                "user for testing; ships pair propensities (data.propensity: dataset)", "Schnabel et al. 2016 (Cornell)", "no stated terms; treat as research-only",
                False, _load_coat, None, {"min_rating": 4.0, "split": "external", "min_user": 1, "min_item": 1}),
    DatasetSpec("taobao-userbehavior-sample", "Prefix sample of Alibaba's UserBehavior log: pv < fav/cart < buy",
                "Alibaba Tianchi UserBehavior", "no stated terms; treat as research-only", False, _load_taobao,
                TAOBAO_LEVELS, {"min_level": "pv", "split": "leave_last_out", "min_user": 3, "min_item": 1}),
    DatasetSpec("amazon-scientific-text", "Amazon Industrial & Scientific reviews as chronological sequences with "
                "item title, category path and brand text", "McAuley lab Amazon Review Data (2018), UniSRec format",
                "research use; no stated terms", False, _load_amazon, None,
                {"split": "leave_last_out", "min_user": 1, "min_item": 1}),
    DatasetSpec("tmall-mbcgcn", "Tmall multi-behaviour (MB-CGCN release): view < cart < buy, 15,449 users x 11,953 "
                "items, one held-out buy per user (the release's test); validation = one seeded training buy per user, "
                "which stays in training as the view or cart it also was", "Cheng et al., MB-CGCN (WWW 2023), "
                "github.com/SS-00-SS/MBCGCN Data/ (Alibaba logs)", "no stated terms; treat as research-only",
                False, _load_tmall, ("view", "cart", "buy"),
                {"min_level": "view", "split": "external_per_user", "min_user": 1, "min_item": 1}),
    DatasetSpec("yahoo_r3", "Yahoo! Music R3: MNAR ratings and an MCAR test set (user-supplied files)",
                "Yahoo! Webscope ydata-ymusic-rating-study-v1_0", "Webscope DSA: not redistributable", False,
                _load_yahoo, None, {"min_rating": 4.0, "split": "external", "min_user": 1, "min_item": 1}),
)}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name]


def _fetch_on_first_use(name: str, root: Path) -> None:
    """A fetchable dataset whose folder is absent is downloaded into the data directory, with a one-line note
    (FBREC_OFFLINE=1 turns this off; the loader then names the missing file)."""
    from fbrec.data.fetch import ALIASES, fetch
    from fbrec.data.sources import SOURCES

    src = SOURCES.get(ALIASES.get(name, name))
    if src is None or (root / src.name).exists() or os.environ.get("FBREC_OFFLINE") == "1":
        return
    print(f"note: dataset {src.name!r} is not in {root}; fetching it once from {src.downloads[0].url} "
          f"(terms: {src.terms}; FBREC_OFFLINE=1 stops this)", file=sys.stderr)
    fetch(src.name, root)


def load_raw(name: str, root: str | Path | None = None, options: dict | None = None) -> RawDataset:
    spec = get_spec(name)
    options = dict(options or {})
    if options and name not in ("synthetic", "yahoo_r3", "movielens-100k-semisynthetic"):
        raise ConfigError(f"dataset {name!r} takes no options, got {sorted(options)}",
                          rule="only 'synthetic', 'movielens-100k-semisynthetic' (generator settings) and "
                               "'yahoo_r3' (path) take options",
                          fix="drop dataset_options")
    root = data_dir(root)
    _fetch_on_first_use(name, root)
    raw = spec.loader(root, options)
    validate_log(raw.log, source=f"dataset {name!r}")
    if raw.test is not None:
        validate_log(raw.test, source=f"dataset {name!r} test")
        if set(raw.test.columns) != set(raw.log.columns):
            raise DataValidationError(f"dataset {name!r}: the external test has columns {raw.test.columns}, "
                                      f"the log {raw.log.columns}", rule="test and train logs share one schema",
                                      fix="give both files the same columns")
    if LEVEL in raw.log.columns and spec.levels:
        FeedbackLevels(spec.levels)
    return raw
