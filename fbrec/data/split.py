"""Splits of a click log into train / validation / test frames. No future leaks in the temporal default."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fbrec._checks import check_fraction
from fbrec.errors import ConfigError, DataValidationError
from fbrec.types import EVENTS, ITEM, LEVEL, TIMESTAMP, USER

SPLITS = ("temporal", "leave_last_out", "random", "external", "external_per_user")


@dataclass(frozen=True)
class Split:
    train: pl.DataFrame
    val: pl.DataFrame
    test: pl.DataFrame


def _canonical_order(frame: pl.DataFrame) -> list[str]:
    return [c for c in (USER, ITEM, TIMESTAMP) if c in frame.columns]


def _need_time(frame: pl.DataFrame, split: str) -> None:
    if TIMESTAMP not in frame.columns:
        raise DataValidationError(f"split {split!r} needs a 'timestamp' column", rule="temporal splits order by time",
                                  fix="use split='random' or add timestamps")


def temporal_split(frame: pl.DataFrame, *, test_fraction: float = 0.2, val_fraction: float = 0.1) -> Split:
    """Global time cut: the last `test_fraction` of rows by time are test, the `val_fraction` before them val."""
    _need_time(frame, "temporal")
    check_fraction("test_fraction", test_fraction)
    check_fraction("val_fraction", val_fraction, low_open=False)
    ts = frame[TIMESTAMP]
    t_test = ts.quantile(1 - test_fraction, interpolation="higher")
    t_val = ts.quantile(1 - test_fraction - val_fraction, interpolation="higher")
    # rows at the cut instant go to the later side, so nothing from the test instant is trained on
    test = frame.filter(pl.col(TIMESTAMP) >= t_test)
    rest = frame.filter(pl.col(TIMESTAMP) < t_test)
    if val_fraction > 0:
        return Split(rest.filter(pl.col(TIMESTAMP) < t_val), rest.filter(pl.col(TIMESTAMP) >= t_val), test)
    return Split(rest, rest.clear(), test)


def leave_last_out(frame: pl.DataFrame, *, val: bool = True) -> Split:
    """Per user: the last interaction is test, the one before it val (ties keep file order)."""
    _need_time(frame, "leave_last_out")
    # ties in time are broken by item id, so the split does not depend on the file's row order
    ranked = frame.with_row_index("_row").sort([USER, TIMESTAMP, ITEM]).with_columns(
        pl.int_range(pl.len(), 0, -1).over(USER).alias("_rk")).sort("_row")
    test = ranked.filter(pl.col("_rk") == 1)
    valset = ranked.filter(pl.col("_rk") == 2) if val else ranked.clear()
    train = ranked.filter(pl.col("_rk") > (2 if val else 1))
    drop = ["_row", "_rk"]
    return Split(train.drop(drop), valset.drop(drop), test.drop(drop))


def random_split(frame: pl.DataFrame, *, test_fraction: float = 0.2, val_fraction: float = 0.1,
                 seed: int = 0) -> Split:
    """Per user random ratio split (seeded): each user's rows are shuffled and cut by the fractions."""
    check_fraction("test_fraction", test_fraction)
    check_fraction("val_fraction", val_fraction, low_open=False)
    if test_fraction + val_fraction >= 1:
        raise ConfigError(f"test_fraction + val_fraction = {test_fraction + val_fraction}",
                          rule="the fractions must leave rows for training", fix="lower the fractions")
    # one random key per row of the canonical order (same seed, same split, whatever the file order); a user's rows
    # are ranked by their keys. (A per-user shuffle with one seed gave every user with n rows the SAME positions in
    # test: items at fixed ranks of each user's sorted ids, and with equal-sized users whole items never trained.)
    tagged = frame.sort(_canonical_order(frame))
    tagged = tagged.with_columns(pl.Series("_k", np.random.default_rng(seed).random(tagged.height)))
    u = (pl.col("_k").rank("ordinal").over(USER).cast(pl.Float64) - 0.5) / pl.len().over(USER)
    tagged = tagged.with_columns(u.alias("_u")).drop("_k")
    test = tagged.filter(pl.col("_u") >= 1 - test_fraction)
    valset = tagged.filter((pl.col("_u") < 1 - test_fraction) & (pl.col("_u") >= 1 - test_fraction - val_fraction))
    train = tagged.filter(pl.col("_u") < 1 - test_fraction - val_fraction)
    return Split(train.drop("_u"), valset.drop("_u"), test.drop("_u"))


def carve_top_level(frame: pl.DataFrame, *, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, val): per user one seeded pair among those at the log's highest level becomes validation (at that
    level); it stays in training at the highest level it reached otherwise (its `events` bitmask without the top
    bit), so a held-out buy the user had viewed is still a view, as the release's test buys are. Without an
    `events` column the levels count as nested and the pair stays at the level below. Users with no pair at the top
    level get no validation pair."""
    if LEVEL not in frame.columns:
        raise ConfigError("split 'external_per_user' needs a 'level' column",
                          rule="validation holds out one pair per user at the highest feedback level",
                          fix="use split 'external' for logs without levels")
    names = frame.schema[LEVEL].categories.to_list()
    top, lowest = len(names) - 1, int(frame[LEVEL].to_physical().min())
    tagged = frame.sort(_canonical_order(frame))
    tagged = tagged.with_columns(pl.Series("_k", np.random.default_rng([seed, 3]).random(tagged.height)))
    at_top = pl.col(LEVEL).to_physical() == top
    pick = at_top & (pl.col("_k") == pl.col("_k").filter(at_top).min().over(USER))
    tagged = tagged.with_columns(pick.fill_null(False).alias("_val")).drop("_k")
    val = tagged.filter(pl.col("_val")).drop("_val")
    carved = tagged.filter(pl.col("_val")).drop("_val")
    if EVENTS in carved.columns:
        remaining = pl.col(EVENTS) & pl.lit((1 << top) - 1, pl.UInt8)
        lower = pl.lit(None, pl.Int8)
        for k in range(lowest, top):   # a level min_level dropped stays dropped
            lower = pl.when((remaining & (1 << k)) > 0).then(pl.lit(k, pl.Int8)).otherwise(lower)
        carved = carved.with_columns(remaining.alias(EVENTS), lower.alias("_lower"))
    else:
        carved = carved.with_columns(pl.lit(top - 1 if top > lowest else None, pl.Int8).alias("_lower"))
    carved = carved.filter(pl.col("_lower").is_not_null())
    carved = carved.with_columns(pl.Series(names).gather(carved["_lower"]).cast(frame.schema[LEVEL]).alias(LEVEL)
                                 ).drop("_lower")
    train = pl.concat([tagged.filter(~pl.col("_val")).drop("_val"), carved.select(frame.columns)])
    return train.sort(_canonical_order(train)), val


def keep_warm(split: Split, catalogue: pl.Series | None = None) -> tuple[Split, dict[str, int]]:
    """Drop val/test rows whose user never appears in train, or whose item is neither in train nor in the declared
    catalogue; return the counts dropped."""
    users, items = split.train[USER].unique(), split.train[ITEM].unique()
    if catalogue is not None:
        items = pl.concat([items, catalogue.cast(items.dtype, strict=False).drop_nulls()]).unique()
    out, dropped = {}, {}
    for name in ("val", "test"):
        frame = getattr(split, name)
        warm = frame.filter(pl.col(USER).is_in(users.implode()) & pl.col(ITEM).is_in(items.implode()))
        dropped[name] = frame.height - warm.height
        out[name] = warm
    return Split(split.train, out["val"], out["test"]), dropped
