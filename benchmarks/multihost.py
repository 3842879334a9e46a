"""Two torchrun launchers ("hosts") on 127.0.0.1 with c10d rendezvous, one process each, beside one process:
the same recipe, wall time, the run's world size and test metrics.

python -m benchmarks.multihost [--config bpr_synthetic] [--epochs 3] [--write]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, table, write_section


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_id(text: str) -> str:
    return text.split("MLflow run ")[1].split()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="bpr_synthetic")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    torchrun = str(Path(sys.executable).with_name("torchrun"))
    train = ["-m", "fbrec.cli.main", "train", "--config", args.config, "--trainer.max_epochs", str(args.epochs),
             "--trainer.enable_progress_bar", "false"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlruns/mlflow.db"}
        Path(tmp, "mlruns").mkdir()
        start = time.perf_counter()
        one = subprocess.run([sys.executable, *train], capture_output=True, text=True, env=env, cwd=tmp)
        one_s = time.perf_counter() - start
        assert one.returncode == 0, one.stderr[-3000:]
        port = _port()
        command = [torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                   f"127.0.0.1:{port}", "--rdzv-id", "fbrec-bench", *train]
        start = time.perf_counter()
        hosts = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                  cwd=tmp) for _ in range(2)]
        outs = [h.communicate(timeout=1800)[0] for h in hosts]
        two_s = time.perf_counter() - start
        assert all(h.returncode == 0 for h in hosts), "\n".join(o[-2000:] for o in outs)
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        runs = {"1 process": (client.get_run(_run_id(one.stdout + one.stderr)), one_s),
                "2 torchrun launchers x 1 process (c10d)": (client.get_run(_run_id(
                    next(o for o in outs if "MLflow run" in o))), two_s)}
        for name, (run, seconds) in runs.items():
            m = run.data.metrics
            rows.append([name, run.data.tags["world_size"], f"{seconds:.1f}", f"{m['test/ndcg_at_10']:.4f}",
                         f"{m['test/recall_at_10']:.4f}", f"{m['test/auc']:.4f}"])
    body = (f"### Two hosts (torchrun, c10d rendezvous) beside one process\n\n`python -m benchmarks.multihost "
            f"--config {args.config} --epochs {args.epochs} --write` on {machine()}; both \"hosts\" are this machine "
            f"(127.0.0.1), each launcher `{' '.join(['torchrun'] + command[1:11])} -m fbrec.cli.main train --config "
            f"{args.config} ...`, one run store. The trainer takes devices and nodes from the launchers' "
            "environment; the global batch doubles with two processes, so metrics differ a little.\n\n"
            + table(["launch", "world size", "wall (s)", "test NDCG@10", "test recall@10", "test AUC"], rows))
    print(body)
    if args.write:
        write_section("multihost", body)


if __name__ == "__main__":
    main()
