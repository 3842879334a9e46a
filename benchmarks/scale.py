"""End to end at scale on one machine: a Zipf click log written to parquet -> read and prepare -> train MF-BPR one
epoch -> validate (a seeded user sample) -> test (every user) -> export with an IVF index; per-stage wall time and
peak RSS, for one and two processes (and the GPU when asked and present).

python -m benchmarks.scale [--rows 1000000 10000000] [--processes 1 2] [--accelerator cpu|gpu] [--write]
The log: users and items drawn from Zipf(1.1) over rows/30 users and rows/25 items, one timestamp per row, global
temporal split. The in-process read + prepare fills the prepared-data cache (fbrec.data.cache), so `fbrec train`'s
own preparation reads it. Training runs as `fbrec train` in a child process (Lightning's launcher starts the other ranks);
the stages come from the run's own per-stage timings (time/<stage>_seconds). Peak RSS is the high-water mark of
this process or any one child (ru_maxrss), which only grows: a row's value is the peak up to its end; with two
processes it is one rank's peak, the machine holds about twice that.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, scratch_tracking, table, write_section

RECIPE = """seed_everything: 0
trainer: {{max_epochs: 1, devices: {devices}, accelerator: {accelerator}, enable_progress_bar: false}}
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
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 2**20


def train(config: Path, client) -> dict[str, float]:
    """`fbrec train` in a child process; the run's per-stage seconds."""
    before = {r.info.run_id for r in client.search_runs(_experiment(client))} if _experiment(client) else set()
    out = subprocess.run([sys.executable, "-m", "fbrec.cli.main", "train", "--config", str(config),
                          "--experiment", "benchmarks-scale"], capture_output=True, text=True, env=os.environ.copy())
    if out.returncode:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-3000:])
    (run,) = [r for r in client.search_runs(_experiment(client)) if r.info.run_id not in before]
    stages = {k.removeprefix("time/").removesuffix("_seconds"): v for k, v in run.data.metrics.items()
              if k.startswith("time/")}
    return {"run_id": run.info.run_id, **stages}


def _experiment(client) -> list[str]:
    exp = client.get_experiment_by_name("benchmarks-scale")
    return [exp.experiment_id] if exp else []


def run(rows: int, tmp: Path, client, processes: int, accelerator: str) -> list:
    from fbrec.api.runs import export_run
    from fbrec.data.datamodule import FeedbackDataModule

    log = tmp / f"log_{rows}.parquet"
    stages = []
    if not log.exists():
        start = time.perf_counter()
        zipf_log(rows, log)
        stages.append(("write the log", time.perf_counter() - start))
        start = time.perf_counter()
        dm = FeedbackDataModule(log_path=str(log), integer_ids=True, split="temporal")
        data = dm.data
        stages.append((f"read + prepare in this process ({data.train.height:,} train rows, {data.num_users:,} "
                       f"users x {data.num_items:,} items)", time.perf_counter() - start))
        del dm, data
    config = tmp / f"scale_{rows}_{processes}.yaml"
    config.write_text(RECIPE.format(log=log, devices=processes, accelerator=accelerator))
    start = time.perf_counter()
    times = train(config, client)
    total = time.perf_counter() - start
    stages.append(("`fbrec train`: config + read + prepare + build model", times["prepare"]))
    stages.append(("`fbrec train`: train 1 epoch (+ checkpoint)", times["train"]))
    stages.append(("`fbrec train`: validate (5,000-user sample)", times["validation"]))
    stages.append(("`fbrec train`: test (every user, full ranking)", times["test"]))
    stages.append(("`fbrec train`: reports + embeddings + logging", times["export"]))
    stages.append(("`fbrec train`: process start-up, imports, launcher", total - sum(
        times[k] for k in ("prepare", "train", "validation", "test", "export"))))
    start = time.perf_counter()
    export_run(times["run_id"], tmp / f"bundle_{rows}_{processes}", index="IVF1024,Flat", search_params="nprobe=32")
    stages.append(("export with IVF1024 index", time.perf_counter() - start))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-scale-")
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            results = {}
            for processes in args.processes:
                results[processes] = run(rows, Path(tmp), client, processes, args.accelerator)
                print(results[processes], flush=True)
            names = list(dict.fromkeys(name for stages in results.values() for name, _ in stages))
            cols = {p: dict(stages) for p, stages in results.items()}
            body_rows = [[name, *(f"{cols[p][name]:.1f}" if name in cols[p] else "-" for p in args.processes)]
                         for name in names]
            totals = [sum(v for name, v in cols[p].items() if name != "write the log"
                          and not name.startswith("read + prepare in this")) for p in args.processes]
            body_rows.append(["**end to end (`fbrec train` + export)**", *(f"**{t:.1f}**" for t in totals)])
            if len(args.processes) > 1:
                key = "`fbrec train`: test (every user, full ranking)"
                ratio = cols[args.processes[-1]][key] / cols[args.processes[0]][key]
                body_rows.append([f"test time, {args.processes[-1]} / {args.processes[0]} processes",
                                  *([""] * (len(args.processes) - 1)), f"{ratio:.2f}x"])
            heads = ["stage", *(f"{p} process{'es' if p > 1 else ''}, {args.accelerator} (s)" for p in args.processes)]
            sections.append(f"#### {rows:,} rows (peak RSS {peak_gb():.2f} GB so far)\n\n{table(heads, body_rows)}")
            print(sections[-1], flush=True)
    text = (f"### End to end at scale (Zipf log in parquet, MF-BPR)\n\n`python -m benchmarks.scale --rows "
            f"{' '.join(map(str, args.rows))} --processes {' '.join(map(str, args.processes))} --accelerator "
            f"{args.accelerator} --write` on {machine()}. Targets (issue 14): 10M rows end to end in <= 10 min with "
            "peak RSS <= 8 GB; evaluation with 2 processes <= 0.6x the 1-process time.\n\n" + "\n\n".join(sections))
    if args.write:
        write_section("scale", text)


if __name__ == "__main__":
    main()
