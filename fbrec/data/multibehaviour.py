"""Multi-behaviour releases: one file per behaviour, read into one levelled log that keeps every behaviour.

The MB-CGCN Tmall release (Cheng et al., WWW 2023; ../shared/data/tmall-mbcgcn/SOURCE.md): per behaviour a
`train.txt` and `test.txt` of lines `user<TAB>item<TAB>item...` (0-based ids), except the view level's training pairs,
which ship as the release's cached NGCF adjacency `view/s_adj_mat.npz` (a symmetric (U + I) square CSR whose
user-item block row u lists columns U + item).

Levels are not nested in this release (16,463 buys have neither a view nor a cart), so the log has one row per
(user, item) pair at the highest level it reached and an `events` bitmask of every behaviour the pair saw
(bit k = level k): a model that reads behaviours as their own event sets (`FeedbackData.event_matrix`) sees "viewed"
and "carted" separately, and a held-out buy can stay in training as the view it also was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from fbrec.errors import DataValidationError
from fbrec.types import EVENTS, ITEM, LEVEL, USER

TMALL_LEVELS = ("view", "cart", "buy")
TMALL_USERS, TMALL_ITEMS = 15_449, 11_953
# pairs per file as published in SOURCE.md (measured on the release); a different count means other files
TMALL_COUNTS = {("view", "train"): 858_505, ("cart", "train"): 180_027, ("buy", "train"): 92_180,
                ("view", "test"): 15_449, ("cart", "test"): 15_449, ("buy", "test"): 15_449}


def read_user_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of a `user<TAB>item<TAB>item...` file; a line that is not integers names its line number."""
    users, items = [], []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                ids = [int(p) for p in parts]
            except ValueError:
                raise DataValidationError(f"{path}: line {number} is not integer ids: {line.strip()[:60]!r}",
                                          rule="each line is user<TAB>item<TAB>item... with integer ids",
                                          fix="restore the release's file") from None
            users.extend([ids[0]] * (len(ids) - 1))
            items.extend(ids[1:])
    return np.asarray(users, np.int64), np.asarray(items, np.int64)


def read_adjacency_block(path: Path, num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of the user-item block of an NGCF adjacency cache (rows < num_users, columns num_users + item)."""
    try:
        z = np.load(path)
        indptr, cols, shape = z["indptr"], z["indices"], tuple(z["shape"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataValidationError(f"{path}: not a scipy CSR .npz ({exc})",
                                  rule="the view level ships as the release's s_adj_mat.npz (indptr, indices, shape)",
                                  fix="restore the release's file") from None
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    upper = rows < num_users
    if shape[0] != shape[1] or shape[0] <= num_users:
        raise DataValidationError(f"{path}: adjacency shape {shape}", rule=f"a square (users + items) matrix with "
                                  f"{num_users} users first", fix="restore the release's file")
    return rows[upper].astype(np.int64), (cols[upper] - num_users).astype(np.int64)


def _checked(name: str, pairs: tuple[np.ndarray, np.ndarray], path: Path) -> tuple[np.ndarray, np.ndarray]:
    expected = TMALL_COUNTS[name]
    if len(pairs[0]) != expected:
        raise DataValidationError(f"dataset 'tmall-mbcgcn': {path} holds {len(pairs[0]):,} {name[0]} {name[1]} pairs, "
                                  f"the release has {expected:,}", rule="the files are the MB-CGCN release as "
                                  "described in its SOURCE.md", fix="restore the release's files (SOURCE.md names "
                                  "the commit and blob ids)")
    return pairs


def _levelled(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> pl.DataFrame:
    """One row per (user, item): `events` = the OR of 1 << level over its behaviours, `level` = the highest."""
    frames = [pl.DataFrame({USER: u, ITEM: i, EVENTS: np.full(len(u), 1 << k, np.uint8)})
              for k, (u, i) in ((TMALL_LEVELS.index(name), p) for name, p in pairs.items())]
    log = (pl.concat(frames).group_by(USER, ITEM).agg(pl.col(EVENTS).unique().sum().cast(pl.UInt8))
           .sort(USER, ITEM))
    top = pl.lit(0, pl.Int8)
    for k in range(1, len(TMALL_LEVELS)):
        top = pl.when((pl.col(EVENTS) & (1 << k)) > 0).then(pl.lit(k, pl.Int8)).otherwise(top)
    names = pl.Series(list(TMALL_LEVELS))
    level = names.gather(log.select(top.alias("k"))["k"]).cast(pl.Enum(list(TMALL_LEVELS)))
    return log.with_columns(level.alias(LEVEL)).select(USER, ITEM, LEVEL, EVENTS)


def load_tmall(root: Path) -> tuple[pl.DataFrame, pl.DataFrame, tuple[Path, ...]]:
    """(training log, the release's buy test, files read): every count checked against the release's."""
    d = root / "tmall-mbcgcn"
    files = {("view", "train"): d / "view" / "s_adj_mat.npz",
             **{(b, "train"): d / b / "train.txt" for b in ("cart", "buy")}, ("buy", "test"): d / "buy" / "test.txt"}
    for path in files.values():
        if not path.exists():
            raise DataValidationError(f"dataset 'tmall-mbcgcn': file {str(path)!r} is missing",
                                      rule="real datasets are read from the data directory",
                                      fix="set FBREC_DATA_DIR to the folder holding tmall-mbcgcn (../shared/data)")
    train = {b: _checked((b, "train"), read_adjacency_block(files[(b, "train")], TMALL_USERS) if b == "view"
                         else read_user_lines(files[(b, "train")]), files[(b, "train")]) for b in TMALL_LEVELS}
    test = _checked(("buy", "test"), read_user_lines(files[("buy", "test")]), files[("buy", "test")])
    log = _levelled(train)
    users, items = log[USER].n_unique(), max(int(log[ITEM].max()), int(test[1].max())) + 1
    if users != TMALL_USERS or items > TMALL_ITEMS:
        raise DataValidationError(f"dataset 'tmall-mbcgcn': {users} users and item ids up to {items - 1}",
                                  rule=f"the release has {TMALL_USERS} users and {TMALL_ITEMS} items (0-based ids)",
                                  fix="restore the release's files")
    test_log = pl.DataFrame({USER: test[0], ITEM: test[1], EVENTS: np.full(len(test[0]), 1 << 2, np.uint8)})
    test_log = test_log.with_columns(pl.lit("buy").cast(pl.Enum(list(TMALL_LEVELS))).alias(LEVEL)).select(
        USER, ITEM, LEVEL, EVENTS)
    return log, test_log, tuple(files.values())
