"""End to end at scale on one machine, as a user runs it: a Zipf click log written to parquet, then exactly
`fbrec train --log LOG --data.source.integer_ids true --trainer.max_epochs 1` with the defaults (the default recipe's model,
validation on a seeded sample of users, the test ranking every item for every user, AUC on), then `fbrec export`;
per-stage wall time (preparation included: the prepared-data cache is off) and peak RSS, for one and two processes
(and the GPU when asked and present). `--train-args` adds settings to compare (e.g. `--model.init_args.auc false`).

python -m benchmarks.scale [--rows 5000000] [--processes 1 2] [--accelerator cpu|gpu] [--train-args ...] [--write]
The log: users and items drawn from Zipf(1.1) over rows/30 users and rows/25 items, one timestamp per row, global
temporal split. The stages come from the run's own per-stage timings (time/<stage>_seconds); the lines the run
printed about its cost (`note: ...`) are quoted. Peak RSS is the high-water mark of this process or any one child
(ru_maxrss); with two processes it is one rank's peak.
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


def train(log: Path, client, processes: int, accelerator: str, extra: list[str]) -> tuple[dict, list[str], float]:
    """`fbrec train --log` in a child process, defaults plus `extra`; the run's per-stage seconds, its notes, and the
    command's wall time."""
    before = {r.info.run_id for r in client.search_runs(_experiment(client))} if _experiment(client) else set()
    command = [sys.executable, "-m", "fbrec.cli.main", "train", "--log", str(log), "--data.source.integer_ids", "true",
               "--trainer.max_epochs", "1", "--trainer.devices", str(processes), "--trainer.accelerator", accelerator,
               "--trainer.enable_progress_bar", "false", "--experiment", "benchmarks-scale", *extra]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True,
                         env={**os.environ, "FBREC_PREPARED_CACHE": "off"})
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-3000:])
    (run,) = [r for r in client.search_runs(_experiment(client)) if r.info.run_id not in before]
    stages = {k.removeprefix("time/").removesuffix("_seconds"): v for k, v in run.data.metrics.items()
              if k.startswith("time/")}
    notes = [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip().startswith("note:")]
    return {"run_id": run.info.run_id, **stages}, notes, wall


def _experiment(client) -> list[str]:
    exp = client.get_experiment_by_name("benchmarks-scale")
    return [exp.experiment_id] if exp else []


def run(rows: int, tmp: Path, client, processes: int, accelerator: str, extra: list[str]) -> tuple[list, list]:
    from fbrec.api.runs import export_run

    log = tmp / f"log_{rows}.parquet"
    stages = []
    if not log.exists():
        start = time.perf_counter()
        zipf_log(rows, log)
        stages.append(("write the log (not part of the run)", time.perf_counter() - start))
    times, notes, total = train(log, client, processes, accelerator, extra)
    stages.append(("`fbrec train`: read + prepare the log + build the model", times["prepare"]))
    stages.append(("`fbrec train`: train 1 epoch (+ checkpoint)", times["train"]))
    stages.append(("`fbrec train`: validate (seeded user sample, default)", times["validation"]))
    stages.append(("`fbrec train`: test (every user, full ranking)", times["test"]))
    stages.append(("`fbrec train`: reports + embeddings + logging", times["export"]))
    stages.append(("`fbrec train`: process start-up, imports, launcher", total - sum(
        times[k] for k in ("prepare", "train", "validation", "test", "export"))))
    start = time.perf_counter()
    export_run(times["run_id"], tmp / f"bundle_{rows}_{processes}", index="IVF1024,Flat", search_params="nprobe=32")
    stages.append(("`fbrec export` with an IVF1024 index", time.perf_counter() - start))
    return stages, notes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1])
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                        help="settings added to the defaults, e.g. --model.init_args.auc false (last on the line)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    client = scratch_tracking("fbrec-scale-")
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            results, notes = {}, {}
            for processes in args.processes:
                results[processes], notes[processes] = run(rows, Path(tmp), client, processes, args.accelerator,
                                                           args.train_args)
                print(results[processes], notes[processes], flush=True)
            names = list(dict.fromkeys(name for stages in results.values() for name, _ in stages))
            cols = {p: dict(stages) for p, stages in results.items()}
            body_rows = [[name, *(f"{cols[p][name]:.1f}" if name in cols[p] else "-" for p in args.processes)]
                         for name in names]
            totals = [sum(v for name, v in cols[p].items() if not name.startswith("write the log"))
                      for p in args.processes]
            body_rows.append(["**end to end (`fbrec train` + `fbrec export`)**", *(f"**{t:.1f}**" for t in totals)])
            heads = ["stage", *(f"{p} process{'es' if p > 1 else ''}, {args.accelerator} (s)" for p in args.processes)]
            said = "\n".join(f"- {p} process(es): `{n}`" for p in args.processes for n in notes[p])
            sections.append(f"#### {rows:,} rows (peak RSS {peak_gb():.2f} GB so far)\n\n{table(heads, body_rows)}"
                            + (f"\n\nWhat the run said about its cost:\n{said}" if said else ""))
            print(sections[-1], flush=True)
    extra = " ".join(args.train_args)
    text = (f"### End to end at scale: `fbrec train --log` with the defaults (Zipf log in parquet)\n\n"
            f"`python -m benchmarks.scale --rows {' '.join(map(str, args.rows))} --processes "
            f"{' '.join(map(str, args.processes))} --accelerator {args.accelerator} --write"
            + (f" --train-args {extra}" if extra else "") + f"` on {machine()}. Each run is `fbrec train --log LOG "
            "--data.source.integer_ids true --trainer.max_epochs 1" + (f" {extra}" if extra else "") + "` (the default "
            "recipe: MF-BPR, 32 dims, AUC on; validation on a seeded sample of 10,000 users; the test ranks every "
            "item for every user), preparation included (cache off), then `fbrec export`.\n\n" + "\n\n".join(sections))
    if args.write:
        write_section("scale-defaults" if not extra else "scale-compare", text)


if __name__ == "__main__":
    main()
