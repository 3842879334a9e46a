"""`fbrec data list|describe|prepare` (fbrec.api.data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fbrec.cli.display import console

app = typer.Typer(no_args_is_help=True, help="List, describe and prepare datasets.")


@app.command("list")
def list_datasets() -> None:
    """The registered datasets, whether their files are present, and whether they may be redistributed."""
    from fbrec.api.data import list_datasets

    rows, root = list_datasets()
    table = Table()
    table.add_column("name", no_wrap=True)
    for column in ("available", "redistributable", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.name, "yes" if r.available else "no", "yes" if r.redistributable else "no", r.description)
    console.print(table)
    console.print(f"data directory: {root} (FBREC_DATA_DIR overrides)")


@app.command()
def fetch(name: Annotated[str, typer.Argument(help="dataset name, see `fbrec data list`")]) -> None:
    """Download a dataset from its publisher into the data directory, checked file by file against pinned sizes and
    sha256; a folder already there is verified and left as it is."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from fbrec.api.data import fetch_dataset, fetch_plan

    plan = fetch_plan(name)
    if not plan["present"]:
        console.print(f"{plan['name']}: published by {plan['publisher']}")
        console.print(f"terms: {plan['terms']}")
        if plan["note"]:
            console.print(f"source: {plan['note']}")
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console,
                  transient=True) as bar:
        tasks: dict[str, int] = {}

        def show(url: str, done: int, total: int | None) -> None:
            if url not in tasks:
                tasks[url] = bar.add_task(url.rsplit("/", 1)[-1], total=total)
            bar.update(tasks[url], completed=done, total=total)

        result = fetch_dataset(name, progress=show)
    said = "downloaded; every file matches its pinned sha256" if result.downloaded else \
        "already present; every file matches its pinned sha256 (nothing downloaded)"
    console.print(f"{result.name}: {said}: {result.path}")


@app.command()
def describe(name: Annotated[str, typer.Argument(help="dataset name, see `fbrec data list`")],
             split: Annotated[str, typer.Option(help="override the default split")] = None) -> None:
    """Prepare a dataset in memory with its defaults and print its card and statistics."""
    from fbrec.api.data import describe_dataset

    console.print_json(json.dumps(describe_dataset(name, split=split), default=str))


@app.command("prepare")
def prepare(name: Annotated[str, typer.Argument(help="dataset name")],
            out: Annotated[Path, typer.Option("--out", help="directory to write (atomically)")],
            split: Annotated[str, typer.Option()] = None, min_rating: Annotated[float, typer.Option()] = None,
            min_level: Annotated[str, typer.Option()] = None, min_user: Annotated[int, typer.Option()] = None,
            min_item: Annotated[int, typer.Option()] = None, test_fraction: Annotated[float, typer.Option()] = 0.2,
            val_fraction: Annotated[float, typer.Option()] = 0.1, seed: Annotated[int, typer.Option()] = 0,
            overwrite: Annotated[bool, typer.Option(help="replace a dataset an earlier prepare wrote to OUT")] = False
            ) -> None:
    """Write train/val/test parquet files, id maps and the card to OUT; train with `data.prepared_dir=OUT`.

    OUT must be new, empty, or (with --overwrite) a folder an earlier `fbrec data prepare` wrote."""
    from fbrec.api.data import prepare_dataset

    path, stats = prepare_dataset(name, out, split=split, min_rating=min_rating, min_level=min_level,
                                  min_user=min_user, min_item=min_item, test_fraction=test_fraction,
                                  val_fraction=val_fraction, seed=seed, overwrite=overwrite)
    console.print(f"wrote {path}: {stats}")
