"""From a raw log to the indexed train / val / test frames every model trains on.

pipeline: load -> binarize -> dedup -> k-core -> split -> drop cold val/test rows -> id maps (train only)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from fbrec._atomic import atomic_directory
from fbrec.data import split as splits
from fbrec.data.datasets import DATASETS, RawDataset, get_spec, load_raw
from fbrec.data.idmap import IdMap
from fbrec.data.transforms import binarize, dedup, kcore
from fbrec.errors import ConfigError, DataValidationError, UnknownNameError
from fbrec.types import EVENTS, ITEM, ITEM_INDEX, LEVEL, TIMESTAMP, USER, USER_INDEX

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PrepareConfig:
    """How a dataset becomes train/val/test; None fields fall back to the dataset's defaults."""

    min_level: str | None = None
    min_rating: float | None = None
    min_user: int | None = None
    min_item: int | None = None
    split: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0

    def resolved(self, defaults: dict) -> PrepareConfig:
        out = {k: (v if v is not None else defaults.get(k)) for k, v in asdict(self).items()}
        if self.min_rating is not None and self.min_level is None:
            out["min_level"] = None
        if self.min_level is not None and self.min_rating is None:
            out["min_rating"] = None
        out["min_user"] = out["min_user"] or 1
        out["min_item"] = out["min_item"] or 1
        out["split"] = out["split"] or "temporal"
        if out["split"] not in splits.SPLITS:
            raise UnknownNameError("split", out["split"], splits.SPLITS)
        return PrepareConfig(**out)


@dataclass(frozen=True)
class PreparedDataset:
    name: str
    train: pl.DataFrame   # user, item, user_index, item_index, ... (positives only)
    val: pl.DataFrame
    test: pl.DataFrame
    user_map: IdMap
    item_map: IdMap
    config: PrepareConfig
    items: pl.DataFrame | None = None
    checksum: str = ""
    stats: dict = field(default_factory=dict)
    users: pl.DataFrame | None = None

    @property
    def num_users(self) -> int:
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    def item_table(self) -> pl.DataFrame:
        """One row per item index in order: the raw id (`item`) and the item attributes where the dataset has them."""
        base = self.item_map.frame().rename({"raw": ITEM, "index": ITEM_INDEX})
        if self.items is None:
            return base
        return base.join(self.items.drop(ITEM, strict=False), on=ITEM_INDEX, how="left").sort(ITEM_INDEX)

    def card(self) -> dict:
        base = get_spec(self.name).card() if self.name in DATASETS else {"name": self.name}
        return {**base, "prepare": asdict(self.config), "checksum": self.checksum, "stats": self.stats}

    def save(self, out: Path, *, overwrite: bool = True) -> Path:
        """Write atomically: a temp dir beside `out`, swapped into place at the end. Replaces only an earlier
        prepared dataset (never a folder fbrec did not write)."""
        out = Path(out)
        with atomic_directory(out, "prepared dataset", overwrite=overwrite) as tmp:
            for part in ("train", "val", "test"):
                getattr(self, part).write_parquet(tmp / f"{part}.parquet")
            self.user_map.save(tmp / "user_map.parquet")
            self.item_map.save(tmp / "item_map.parquet")
            for side in ("items", "users"):
                if getattr(self, side) is not None:
                    getattr(self, side).write_parquet(tmp / f"{side}.parquet")
            (tmp / "dataset.json").write_text(json.dumps(
                {"format_version": FORMAT_VERSION, **self.card()}, indent=2, default=str))
        return out

    @classmethod
    def load(cls, path: Path) -> PreparedDataset:
        path = Path(path)
        meta_path = path / "dataset.json"
        if not meta_path.exists():
            raise DataValidationError(f"{str(path)!r} is not a prepared dataset (no dataset.json)",
                                      rule="prepared datasets are written by `fbrec data prepare`",
                                      fix="run `fbrec data prepare NAME --out DIR` first")
        meta = json.loads(meta_path.read_text())
        items, users = (pl.read_parquet(path / f"{side}.parquet") if (path / f"{side}.parquet").exists() else None
                        for side in ("items", "users"))
        return cls(meta["name"], *(pl.read_parquet(path / f"{p}.parquet") for p in ("train", "val", "test")),
                   IdMap.load("user", path / "user_map.parquet"), IdMap.load("item", path / "item_map.parquet"),
                   PrepareConfig(**meta["prepare"]), items, meta["checksum"], meta["stats"], users)


def _checksum(raw: RawDataset, name: str, options: dict) -> str:
    h = hashlib.sha256(name.encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    if raw.files:
        for f in raw.files:
            h.update(Path(f).read_bytes())
    else:  # generated data: hash its content
        h.update(raw.log.hash_rows(seed=0).to_numpy().tobytes())
    return h.hexdigest()


def prepare(name: str, config: PrepareConfig | None = None, *, root: str | Path | None = None,
            options: dict | None = None) -> PreparedDataset:
    spec = get_spec(name)
    raw = load_raw(name, root, options)
    return prepare_raw(raw, name, (config or PrepareConfig()).resolved(spec.prepare), options)


def prepare_raw(raw: RawDataset, name: str, config: PrepareConfig | None = None,
                options: dict | None = None) -> PreparedDataset:
    """The preprocessing pipeline on an already loaded log (e.g. your own, read with read_log)."""
    cfg = (config or PrepareConfig()).resolved({})
    if raw.test is not None and set(raw.test.columns) != set(raw.log.columns):
        raise DataValidationError(f"dataset {name!r}: the external test has columns {sorted(raw.test.columns)}, "
                                  f"the training log {sorted(raw.log.columns)}",
                                  rule="an external (e.g. MCAR) test file shares the training log's schema",
                                  fix="give both files the same columns")

    def positives(frame: pl.DataFrame) -> pl.DataFrame:
        lf = binarize(frame, min_level=cfg.min_level, min_rating=cfg.min_rating)
        return dedup(lf).collect()

    log = kcore(positives(raw.log), min_user=cfg.min_user, min_item=cfg.min_item)
    if cfg.split in ("external", "external_per_user"):
        if raw.test is None:
            raise ConfigError(f"split='external' but dataset {name!r} has no external test file",
                              rule="only datasets with a given test set (coat, yahoo_r3, tmall-mbcgcn) split externally",
                              fix="use split='temporal', 'leave_last_out' or 'random'")
        if cfg.split == "external_per_user":   # one seeded top-level pair per user, kept at its lower levels
            train, val = splits.carve_top_level(log, seed=cfg.seed)
        else:
            inner = splits.random_split(log, test_fraction=cfg.val_fraction, val_fraction=0.0, seed=cfg.seed)
            train, val = inner.train, inner.test
        # an external (e.g. MCAR) test keeps its non-relevant rows, labelled 0: they are the candidates a user
        # was shown at random, which the MCAR protocol ranks
        test = dedup(binarize(raw.test, min_level=cfg.min_level, min_rating=cfg.min_rating,
                              keep_negatives=True)).collect()
        parts = splits.Split(train, val, test)
    elif cfg.split == "temporal":
        parts = splits.temporal_split(log, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction)
    elif cfg.split == "leave_last_out":
        parts = splits.leave_last_out(log, val=cfg.val_fraction > 0)
    else:
        parts = splits.random_split(log, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction, seed=cfg.seed)
    parts, dropped = splits.keep_warm(parts, raw.catalogue)
    if parts.train.height == 0 or parts.test.height == 0:
        raise DataValidationError(f"dataset {name!r}: the {cfg.split} split of {log.height} positive rows "
                                  f"({log[USER].n_unique()} users) left train={parts.train.height}, "
                                  f"test={parts.test.height} rows", rule="both train and test need rows",
                                  fix=_split_hint(cfg, log))
    items_known = parts.train[ITEM]
    if raw.catalogue is not None:   # every declared item gets an index, trained on or not
        items_known = pl.concat([items_known, raw.catalogue.cast(items_known.dtype, strict=False).drop_nulls()])
    user_map, item_map = IdMap.fit("user", parts.train[USER]), IdMap.fit("item", items_known)

    def index(frame: pl.DataFrame) -> pl.DataFrame:
        # a canonical row order: training batches and results must not depend on hash-table iteration order
        encoded = item_map.encode(user_map.encode(frame, USER, USER_INDEX), ITEM, ITEM_INDEX)
        return encoded.sort([c for c in (USER_INDEX, ITEM_INDEX, TIMESTAMP) if c in encoded.columns])

    train, val, test = (index(getattr(parts, p)) for p in ("train", "val", "test"))
    items = raw.items
    if items is not None and ITEM in items.columns:
        items = item_map.encode(items, ITEM, ITEM_INDEX, unknown="drop").sort(ITEM_INDEX)
    users = raw.users
    if users is not None and USER in users.columns:
        users = user_map.encode(users, USER, USER_INDEX, unknown="drop").sort(USER_INDEX)
    stats = {"rows_raw": raw.log.height, "rows_positive_kcore": log.height, "train": train.height, "val": val.height,
             "test": test.height, "num_users": len(user_map), "num_items": len(item_map),
             "cold_dropped_val": dropped["val"], "cold_dropped_test": dropped["test"],
             "items_without_training_positive": len(item_map) - parts.train[ITEM].n_unique(),
             "density": round(train.height / (len(user_map) * len(item_map)), 6)}
    if LEVEL in train.columns:   # pairs per highest level reached, and per behaviour where the log keeps events
        names = train.schema[LEVEL].categories.to_list()
        for part, frame in (("train", train), ("val", val), ("test", test)):
            counts = dict(frame[LEVEL].cast(pl.String).value_counts().iter_rows())
            stats[f"{part}_pairs_per_level"] = {n: int(counts.get(n, 0)) for n in names}
        if EVENTS in train.columns:
            stats["train_pairs_per_behaviour"] = {n: int(((train[EVENTS] & (1 << k)) > 0).sum())
                                                  for k, n in enumerate(names)}
    return PreparedDataset(name, train, val, test, user_map, item_map, cfg, items, _checksum(raw, name, options or {}),
                           stats, users)


def _split_hint(cfg: PrepareConfig, log: pl.DataFrame) -> str:
    """Only advice that can help: relax filters that are above their minimum, else the log itself is too small."""
    relax = [f"{k}={v}" for k, v in (("min_user", cfg.min_user), ("min_item", cfg.min_item)) if v and v > 1]
    if relax:
        return f"relax {' and '.join(relax)} (each k-core filter drops rows before the split)"
    if cfg.split == "leave_last_out":
        return "leave_last_out needs users with at least 2 positives (3 with validation); use a larger log"
    if log.height < 10:
        return f"the log has only {log.height} positive rows after binarizing: use a larger log, or lower " \
               "min_rating / min_level if they drop most rows"
    return "choose test_fraction/val_fraction that leave rows on both sides, or split: random"


def interactions_csr(frame: pl.DataFrame, num_users: int, num_items: int):
    """A scipy CSR user x item 0/1 matrix of the frame's (user_index, item_index) pairs."""
    import scipy.sparse as sp

    u = frame[USER_INDEX].to_numpy()
    i = frame[ITEM_INDEX].to_numpy()
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(num_users, num_items))
    m.data[:] = 1.0  # duplicates collapse to 1
    return m

