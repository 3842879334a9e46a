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
        folder = root / ("movielens-100k" if spec.name == "movielens-100k-semisynthetic" else spec.name)
        present = spec.name == "synthetic" or folder.is_dir() and any(folder.iterdir())
        if spec.name == "yahoo_r3":
            present = (root / "yahoo_r3" / "ydata-ymusic-rating-study-v1_0-train.txt").exists()
        rows.append(DatasetInfo(spec.name, bool(present), spec.redistributable, spec.description))
    return rows, root


def fetch_plan(name: str) -> dict:
    """What `fetch_dataset(name)` would do: the folder, whether it is there, the publisher, the terms and the URLs."""
    from fbrec.data.datasets import data_dir, get_spec
    from fbrec.data.fetch import source

    get_spec(name)                                     # an unknown name is refused as a dataset first
    src = source(name)
    target = data_dir() / src.name
    return {"name": src.name, "folder": target, "present": target.exists(), "publisher": src.publisher,
            "terms": src.terms, "urls": [d.url for d in src.downloads], "note": src.note}


def fetch_dataset(name: str, *, progress=None):
    """Download `name` from its publisher into the data directory (checked against the pinned sizes and sha256;
    resumed where it stopped); a folder already there is verified, never replaced. Returns fbrec.data.fetch.Fetched."""
    from fbrec.data.datasets import get_spec
    from fbrec.data.fetch import fetch

    get_spec(name)
    return fetch(name, progress=progress)


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
