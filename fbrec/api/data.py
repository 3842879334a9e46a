"""Datasets from Python: list the registry, describe one, prepare one into a folder (what `fbrec data` prints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class DatasetInfo:
    name: str
    available: bool
    redistributable: bool
    description: str


def list_datasets() -> tuple[list[DatasetInfo], Path]:
    """The registered datasets (whether their files are present here) and the data directory they are read from."""
    from fbrec.data.datasets import DATASETS, data_dir

    root = data_dir()
    rows = []
    for spec in DATASETS.values():
        present = spec.name == "synthetic" or (root / spec.name).is_dir() and any((root / spec.name).iterdir())
        if spec.name == "yahoo_r3":
            present = (root / "yahoo_r3" / "ydata-ymusic-rating-study-v1_0-train.txt").exists()
        rows.append(DatasetInfo(spec.name, bool(present), spec.redistributable, spec.description))
    return rows, root


def describe_dataset(name: str, *, split: str | None = None) -> dict:
    """The dataset's card and statistics after its default preparation (in memory; nothing written)."""
    from fbrec.data.prepare import PrepareConfig, prepare

    return prepare(name, PrepareConfig(split=split)).card()


def prepare_dataset(name: str, out: str | Path, *, split: str | None = None, min_rating: float | None = None,
                    min_level: str | None = None, min_user: int | None = None, min_item: int | None = None,
                    test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0,
                    overwrite: bool = False) -> tuple[Path, dict]:
    """Write train/val/test parquet, id maps and the card to `out` atomically; returns (folder, statistics).
    `out` must be new, empty, or (overwrite) a folder an earlier prepare wrote; it is checked before any work."""
    from fbrec._atomic import check_replaceable
    from fbrec.data.prepare import PrepareConfig, prepare

    check_replaceable(out, "prepared dataset", overwrite=overwrite)   # refuse before any work, touch nothing
    cfg = PrepareConfig(min_level, min_rating, min_user, min_item, split, test_fraction, val_fraction, seed)
    data = prepare(name, cfg)
    return data.save(out, overwrite=overwrite), data.stats
