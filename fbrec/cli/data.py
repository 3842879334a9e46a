"""`fbrec data list|describe|prepare`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="List, describe and prepare datasets.")
console = Console()


@app.command("list")
def list_datasets() -> None:
    """The registered datasets, whether their files are present, and whether they may be redistributed."""
    from fbrec.data.datasets import DATASETS, data_dir

    root = data_dir()
    table = Table()
    table.add_column("name", no_wrap=True)
    for column in ("available", "redistributable", "description"):
        table.add_column(column)

    for spec in DATASETS.values():
        present = spec.name == "synthetic" or (root / spec.name).is_dir() and any((root / spec.name).iterdir())
        if spec.name == "yahoo_r3":
            present = (root / "yahoo_r3" / "ydata-ymusic-rating-study-v1_0-train.txt").exists()
        table.add_row(spec.name, "yes" if present else "no", "yes" if spec.redistributable else "no", spec.description)
    console.print(table)
    console.print(f"data directory: {root} (FBREC_DATA_DIR overrides)")


@app.command()
def describe(name: str = typer.Argument(..., help="dataset name, see `fbrec data list`"),
             split: str = typer.Option(None, help="override the default split")) -> None:
    """Prepare a dataset in memory with its defaults and print its card and statistics."""
    from fbrec.data.prepare import PrepareConfig, prepare

    data = prepare(name, PrepareConfig(split=split))
    console.print_json(json.dumps(data.card(), default=str))


@app.command("prepare")
def prepare_cmd(name: str = typer.Argument(..., help="dataset name"),
                out: Path = typer.Option(..., "--out", help="directory to write (atomically)"),
                split: str = typer.Option(None), min_rating: float = typer.Option(None),
                min_level: str = typer.Option(None), min_user: int = typer.Option(None),
                min_item: int = typer.Option(None), test_fraction: float = typer.Option(0.2),
                val_fraction: float = typer.Option(0.1), seed: int = typer.Option(0),
                overwrite: bool = typer.Option(False, help="replace a dataset an earlier prepare wrote to OUT")) -> None:
    """Write train/val/test parquet files, id maps and the card to OUT; train with `data.prepared_dir=OUT`.

    OUT must be new, empty, or (with --overwrite) a folder an earlier `fbrec data prepare` wrote."""
    from fbrec._atomic import check_replaceable
    from fbrec.data.prepare import PrepareConfig, prepare

    check_replaceable(out, "prepared dataset", overwrite=overwrite)   # refuse before any work, touch nothing
    cfg = PrepareConfig(min_level, min_rating, min_user, min_item, split, test_fraction, val_fraction, seed)
    data = prepare(name, cfg)
    path = data.save(out, overwrite=overwrite)
    console.print(f"wrote {path}: {data.stats}")
