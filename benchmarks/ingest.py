"""(c) Ingest + dedup + 5-core + temporal split of a 10M-row synthetic log: fbrec (polars) vs pandas.

python -m benchmarks.ingest [--rows 10000000] [--write]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from benchmarks.common import Timer, machine, table, write_section
from fbrec.data import read_log
from fbrec.data.split import temporal_split
from fbrec.data.transforms import dedup, kcore


def make_log(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    users = (rng.pareto(1.5, rows) * 20_000).astype(np.int64) % 1_000_000
    items = (rng.pareto(1.2, rows) * 5_000).astype(np.int64) % 200_000
    ts = 1_500_000_000 + rng.integers(0, 3 * 365 * 86400, rows)
    pl.DataFrame({"user": users, "item": items, "timestamp": ts}).write_parquet(path)


def fbrec_pipeline(path: Path):
    log = read_log(path)                               # lazy scan, declared schema, validation
    core = kcore(dedup(log), min_user=5, min_item=5)
    return temporal_split(core, test_fraction=0.2, val_fraction=0.1)


def pandas_pipeline(path: Path):
    df = pd.read_parquet(path)
    if df[["user", "item"]].isna().any().any() or (df[["user", "item"]] < 0).any().any():
        raise ValueError("bad ids")
    df = df.sort_values("timestamp").drop_duplicates(["user", "item"], keep="last")
    while True:
        before = len(df)
        df = df[df.groupby("user")["user"].transform("size") >= 5]
        df = df[df.groupby("item")["item"].transform("size") >= 5]
        if len(df) == before:
            break
    t_test = df["timestamp"].quantile(0.8, interpolation="higher")
    t_val = df["timestamp"].quantile(0.7, interpolation="higher")
    return df[df.timestamp < t_val], df[(df.timestamp >= t_val) & (df.timestamp < t_test)], df[df.timestamp >= t_test]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.parquet"
        make_log(path, args.rows)
        with Timer() as tf:
            s = fbrec_pipeline(path)
        with Timer() as tp:
            train, val, test = pandas_pipeline(path)
    assert (s.train.height, s.val.height, s.test.height) == (len(train), len(val), len(test)), "pipelines disagree"
    rows = [[f"{args.rows:,}", f"{s.train.height + s.val.height + s.test.height:,}", f"{tf.seconds:.2f}",
             f"{tp.seconds:.2f}", f"{tp.seconds / tf.seconds:.1f}x"]]
    body = (f"### (c) Ingest + dedup + 5-core + temporal split (parquet in, three frames out)\n\n"
            f"`python -m benchmarks.ingest --write` on {machine()}, polars {pl.__version__}, pandas {pd.__version__}."
            f" Both pipelines produce identical row counts (checked).\n\n"
            + table(["log rows", "rows kept", "fbrec/polars (s)", "pandas (s)", "speed-up"], rows))
    print(body)
    if args.write:
        write_section("ingest", body)


if __name__ == "__main__":
    main()
