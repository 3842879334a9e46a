"""End to end at scale on one machine: a Zipf click log written to parquet -> read and prepare -> train MF-BPR one
epoch -> validate (a seeded user sample) -> test (every user) -> export with an IVF index; per-stage wall time and
the process's peak RSS.

python -m benchmarks.scale [--rows 1000000 10000000] [--write]
The log: users and items drawn from Zipf(1.1) over rows/30 users and rows/25 items, one timestamp per row, global
temporal split. Peak RSS is this process's high-water mark (ru_maxrss), which only grows: a stage's value is the
peak up to its end.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, scratch_tracking, table, write_section

RECIPE = """seed_everything: 0
trainer: {{max_epochs: 1, devices: 1, enable_progress_bar: false}}
model:
  class_path: fbrec.models.MatrixFactorizationModule
  init_args: {{embedding_dim: 64, loss: bpr, learning_rate: 0.1, ks: [10, 20], auc: false}}
data:
  log_path: {log}
  integer_ids: true
  split: temporal
  num_negatives: 1
  batch_size: 8192
  eval_batch_size: 1024
  val_users: 5000
"""


def zipf_log(rows: int, path: Path, seed: int = 0) -> None:
    import polars as pl

    rng = np.random.default_rng(seed)
    n_users, n_items = max(1000, rows // 30), max(1000, rows // 25)

    def zipf(n):   # ranks 0..n-1 with P(r) ~ (r + 1)^-1.1, shuffled ids
        weights = 1.0 / np.arange(1, n + 1) ** 1.1
        return rng.permutation(n)[rng.choice(n, rows, p=weights / weights.sum())]

    pl.DataFrame({"user": zipf(n_users), "item": zipf(n_items),
                  "timestamp": np.sort(rng.integers(1_600_000_000, 1_700_000_000, rows))}).write_parquet(path)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(rows: int, tmp: Path, client) -> list:
    from fbrec.api.runs import export_run
    from fbrec.api.training import run_training
    from fbrec.data.datamodule import FeedbackDataModule

    log = tmp / f"log_{rows}.parquet"
    stages = []
    start = time.perf_counter()
    zipf_log(rows, log)
    stages.append(("write the log", time.perf_counter() - start))
    start = time.perf_counter()
    dm = FeedbackDataModule(log_path=str(log), integer_ids=True, split="temporal")
    data = dm.data
    stages.append((f"read + prepare ({data.train.height:,} train rows, {data.num_users:,} users x "
                   f"{data.num_items:,} items)", time.perf_counter() - start))
    config = tmp / f"scale_{rows}.yaml"
    config.write_text(RECIPE.format(log=log))
    start = time.perf_counter()
    run_id = run_training(str(config), ["--experiment=benchmarks-scale"])
    total = time.perf_counter() - start
    metrics = client.get_run(run_id).data.metrics
    val = sum(m.value for m in client.get_metric_history(run_id, "val_users5000/eval_seconds"))
    test = metrics.get("test/eval_seconds", float("nan"))
    stages.append(("prepare again + train 1 epoch + checkpoint + log (train run minus evaluations)", total - val - test))
    stages.append(("validate (5,000-user sample)", val))
    stages.append(("test (every user, full ranking)", test))
    start = time.perf_counter()
    export_run(run_id, tmp / f"bundle_{rows}", index="IVF1024,Flat", search_params="nprobe=32")
    stages.append(("export with IVF1024 index", time.perf_counter() - start))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-scale-")
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            stages = run(rows, Path(tmp), client)
            total = sum(s for _, s in stages[1:])
            body = table(["stage", "seconds"], [[name, f"{sec:.1f}"] for name, sec in stages]
                         + [["**end to end (without writing the log)**", f"**{total:.1f}**"]])
            sections.append(f"#### {rows:,} rows (peak RSS {peak_gb():.2f} GB so far)\n\n{body}")
            print(sections[-1], flush=True)
    text = (f"### End to end at scale (Zipf log in parquet, MF-BPR, one process)\n\n`python -m benchmarks.scale "
            f"--rows {' '.join(map(str, args.rows))} --write` on {machine()}. Targets (issue 14): 10M rows end to end "
            "in <= 10 min with peak RSS <= 8 GB.\n\n" + "\n\n".join(sections))
    if args.write:
        write_section("scale", text)


if __name__ == "__main__":
    main()
