"""CLI start-up and short commands, wall clock from the shell's point of view (process start included).

python -m benchmarks.cli [--write]
Trains `bpr_movielens100k` for 3 epochs into a scratch store, then times `fbrec --help`, `fbrec export` (Flat),
`fbrec retrieve` and `fbrec evaluate --k 10` (AUC on, slices, report and plots logged), each three times, median.
Targets (issue 15): export and retrieve <= 3 s, evaluate <= 3 s plus the evaluation itself, --help <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, table, write_section


def fbrec(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fbrec.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                         env=os.environ.copy())
    seconds = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}"
        (cwd / "mlruns").mkdir()
        fbrec("train", "--config", "bpr_movielens100k", "--trainer.max_epochs", "3",
              "--trainer.enable_progress_bar", "false", cwd=cwd)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
        run = client.search_runs(client.get_experiment_by_name("fbrec").experiment_id)[0].info.run_id
        eval_seconds = client.get_run(run).data.metrics["test/eval_seconds"]
        rows = []
        cases = [("fbrec --help", ("--help",), 1.0),
                 ("fbrec export --index Flat", ("export", "--run", run, "--out", "bundle", "--overwrite"), 3.0),
                 ("fbrec retrieve --k 10", ("retrieve", "--bundle", "bundle", "--user", "196", "--k", "10"), 3.0),
                 ("fbrec evaluate --k 10", ("evaluate", "--run", run, "--k", "10"), 3.0 + eval_seconds)]
        for name, argv, target in cases:
            times = []
            for _ in range(3):
                times.append(fbrec(*argv, cwd=cwd))
            median = statistics.median(times)
            rows.append([name, f"{median:.2f}", f"{target:.2f}", "yes" if median <= target else "**no**"])
            print(rows[-1], flush=True)
        shutil.rmtree(cwd / "bundle", ignore_errors=True)
    body = (f"### CLI start-up and short commands (MovieLens-100K run, wall clock incl. process start, median of 3)\n\n"
            f"`python -m benchmarks.cli --write` on {machine()}. The evaluate target is 3 s plus the evaluation "
            f"itself ({eval_seconds:.2f} s, the run's test/eval_seconds).\n\n"
            + table(["command", "seconds", "target (s)", "met"], rows))
    print(body)
    if args.write:
        write_section("cli", body)


if __name__ == "__main__":
    main()
