"""A run killed with SIGKILL mid-training is marked KILLED, and `fbrec train --resume RUN_ID` continues it in the
same MLflow run to the same final metrics as a run that was never interrupted (1 process, and 2 gloo processes
with row-wise sharded tables)."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from fbrec.tracking import mark_dead_runs_in_store

CONFIG = """
seed_everything: 3
trainer: {{max_epochs: 5, devices: {devices}, enable_progress_bar: false}}
model:
  class_path: fbrec.models.MatrixFactorizationModule
  init_args: {{embedding_dim: 8, loss: bpr, learning_rate: 0.1, ks: [5, 10], sharding: {sharding}}}
data:
  source: {{dataset: synthetic, options: {{num_users: 300, num_items: 120, sessions_per_user: 12, seed: 0}}}}
  sampling: {{batch_size: 16}}
"""


def _fbrec(args, store, cwd, **kw):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}
    env.pop("MASTER_PORT", None)
    return subprocess.Popen([sys.executable, "-m", "fbrec.cli.main", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def _finish(proc, timeout=300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out.split("MLflow run ")[1].split()[0]


def _saved_epoch(store) -> tuple[str, int] | None:
    for last in (store / "checkpoints").glob("*/last.ckpt/lightning_meta.json"):
        return last.parent.parent.name, json.loads(last.read_text())["epoch"]
    return None


def _kill_after_epoch(proc, store, epoch: int, timeout: float = 240) -> str:
    """SIGKILL the whole process group (every rank, as a preempted node would) once `epoch` has been saved."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        saved = _saved_epoch(store)
        if saved and saved[1] >= epoch:
            time.sleep(0.2)   # into the next epoch's training steps
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return saved[0]
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("no checkpoint was saved in time")


def _straight_and_killed(tmp_path, devices: int, sharding: str):
    """The same run twice at once: one left to finish, one SIGKILLed after its second epoch was saved."""
    config = tmp_path / "resume.yaml"
    config.write_text(CONFIG.format(devices=devices, sharding=sharding))
    straight_store, killed_store = tmp_path / "straight", tmp_path / "killed"
    for store in (straight_store, killed_store):
        store.mkdir()
    straight = _fbrec(["train", "--config", str(config)], straight_store, tmp_path)
    killed = _fbrec(["train", "--config", str(config)], killed_store, tmp_path)
    run_id = _kill_after_epoch(killed, killed_store, epoch=1)
    return config, straight_store, _finish(straight), killed_store, run_id


@pytest.mark.parametrize("devices,sharding", [(1, "null"), (2, "{user: row_wise, item: row_wise}")],
                         ids=["1-process", "2-processes-row-wise"])
def test_a_killed_run_resumes_to_the_metrics_of_an_uninterrupted_run(devices, sharding, tmp_path):
    config, straight_store, straight_id, killed_store, run_id = _straight_and_killed(tmp_path, devices, sharding)

    client = MlflowClient(f"sqlite:///{killed_store}/mlflow.db")
    assert client.get_run(run_id).info.status == "RUNNING"   # nobody told MLflow yet
    if devices == 1:   # the next `fbrec train` on this machine notices
        config.with_name("other.yaml").write_text(CONFIG.format(devices=1, sharding="null").replace(
            "max_epochs: 5", "max_epochs: 1"))
        _finish(_fbrec(["train", "--config", str(config.with_name("other.yaml"))], killed_store, tmp_path))
    else:
        assert mark_dead_runs_in_store(f"sqlite:///{killed_store}/mlflow.db") == [run_id]
    dead = client.get_run(run_id)
    assert dead.info.status == "KILLED" and "--resume" in dead.data.tags["fbrec.end"]

    resumed_id = _finish(_fbrec(["train", "--resume", run_id], killed_store, tmp_path))
    assert resumed_id == run_id
    resumed = client.get_run(run_id)
    assert resumed.info.status == "FINISHED" and "fbrec.end" not in resumed.data.tags, "a stale 'died' note"
    reference = MlflowClient(f"sqlite:///{straight_store}/mlflow.db").get_run(straight_id)
    for key in ("test/ndcg_at_10", "test/recall_at_10", "test/auc"):
        assert resumed.data.metrics[key] == pytest.approx(reference.data.metrics[key], abs=1e-6), key
    assert resumed.data.tags["best_epoch"] == reference.data.tags["best_epoch"]
    epochs = sorted({m.step for m in client.get_metric_history(run_id, "val/ndcg_at_5")})
    assert len(epochs) >= 5, "every epoch's validation is in the one run"


def test_resume_refuses_a_checkpoint_changed_after_fbrec_wrote_it(tmp_path):
    """Checkpoints are hashed when written (run tags); --resume checks them before DCP unpickles `.metadata`."""
    config = tmp_path / "short.yaml"
    config.write_text(CONFIG.format(devices=1, sharding="null").replace("max_epochs: 5", "max_epochs: 2"))
    store = tmp_path / "store"
    store.mkdir()
    run_id = _finish(_fbrec(["train", "--config", str(config)], store, tmp_path))
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    client.set_terminated(run_id, "FAILED")   # as if it had died after its last save
    tags = client.get_run(run_id).data.tags
    assert tags["fbrec.checkpoint.last.ckpt"].split()[0] and any(k.startswith("fbrec.checkpoint.epoch") for k in tags)
    metadata = store / "checkpoints" / run_id / "last.ckpt" / ".metadata"
    genuine = metadata.read_bytes()
    metadata.write_bytes(genuine + b"tampered")
    refused = _fbrec(["train", "--resume", run_id], store, tmp_path)
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 2, err[-2000:]
    assert "checkpoint 'last.ckpt' of run" in err and "does not match the hash recorded" in err, err[-2000:]
    assert "Traceback" not in err
    # the store edited too (the crafted file's digest recorded): the metadata is read by a restricted unpickler that
    # admits DCP's own classes only, so the crafted pickle is refused and runs nothing
    marker = tmp_path / "pwned"
    metadata.write_bytes(pickle.dumps(_Crafted(str(marker))))
    from fbrec._atomic import tree_sha256

    client.set_tag(run_id, "fbrec.checkpoint.last.ckpt", tree_sha256(metadata.parent))
    refused = _fbrec(["train", "--resume", run_id], store, tmp_path)
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 2, err[-2000:]
    assert re.search(r"is not DCP metadata: it refers to (os|posix)\.system", err), err[-2000:]
    assert "nothing else is unpickled" in err and not marker.exists() and "Traceback" not in err
    metadata.write_bytes(genuine)   # the state fbrec wrote resumes
    client.set_tag(run_id, "fbrec.checkpoint.last.ckpt", tree_sha256(metadata.parent))
    client.set_terminated(run_id, "FAILED")
    assert _finish(_fbrec(["train", "--resume", run_id], store, tmp_path)) == run_id


class _Crafted:
    """A pickle that would run a shell command when loaded by plain pickle.load."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.slow
@pytest.mark.parametrize("before,after", [(2, 1), (1, 2)], ids=["2-to-1-process", "1-to-2-processes"])
def test_a_run_resumes_on_another_number_of_processes(before, after, tmp_path):
    """DCP reshards the row-wise tables; the run records the new world size; the line states the global batch and
    the per-process batch that keeps it, which the resume passes; the metrics land near the uninterrupted run's."""
    _, straight_store, straight_id, killed_store, run_id = _straight_and_killed(
        tmp_path, before, "{user: row_wise, item: row_wise}")
    mark_dead_runs_in_store(f"sqlite:///{killed_store}/mlflow.db")
    kept = 16 * before // after   # the per-process batch that keeps the global batch
    resumed = _fbrec(["train", "--resume", run_id, "--trainer.devices", str(after), "--data.sampling.batch_size",
                      str(kept)], killed_store, tmp_path)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert (f"resumed on {after} process(es); the run was trained on {before}: its checkpoint is resharded, and the "
            f"global batch is now {kept * after}") in out + err, (out + err)[-3000:]
    client = MlflowClient(f"sqlite:///{killed_store}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["world_size"] == str(after)
    assert run.data.tags["fbrec.world_size_before_resume"] == str(before)
    reference = MlflowClient(f"sqlite:///{straight_store}/mlflow.db").get_run(straight_id)
    for key in ("test/ndcg_at_10", "test/recall_at_10", "test/auc"):
        assert run.data.metrics[key] == pytest.approx(reference.data.metrics[key], abs=0.05), key
    epochs = sorted({m.step for m in client.get_metric_history(run_id, "val/ndcg_at_5")})
    assert len(epochs) == 5, "each epoch validated once, none retrained after the resume"


def test_the_shipped_recipe_keeps_last_at_the_latest_epoch_sigterm_fails_and_a_resume_prints_as_a_fresh_run(
        tmp_path):
    """bpr_synthetic as shipped (its best epoch is 1): last.ckpt follows every epoch, not the best one; `kill -TERM`
    exits 143 with the run KILLED (a scheduler must not read success); the resume continues from the latest epoch
    and prints what a fresh run prints, once."""
    store = tmp_path / "mlruns"
    store.mkdir()
    proc = _fbrec(["train", "--config", "bpr_synthetic", "--trainer.max_epochs", "40",
                   "--trainer.enable_progress_bar=false"], store, tmp_path)
    deadline = time.time() + 240
    while (saved := _saved_epoch(store)) is None or saved[1] < 3:   # last.ckpt stuck at the best epoch never gets here
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    run_id, stopped_at = _saved_epoch(store)
    assert proc.returncode == 143, err[-3000:]
    assert f"stopped by SIGTERM: run {run_id} is marked KILLED; `fbrec train --resume {run_id}` continues it" in out
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    assert client.get_run(run_id).info.status == "KILLED"

    resumed = _fbrec(["train", "--resume", run_id, "--trainer.max_epochs", str(stopped_at + 3)], store, tmp_path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert re.findall(r"val of epoch (\d+)", err) == [str(e) for e in range(stopped_at + 1, stopped_at + 3)]
    assert _saved_epoch(store) == (run_id, stopped_at + 2)
    assert int(client.get_run(run_id).data.tags["best_epoch"]) < stopped_at, "the best epoch is not the last one"
    lines = err.splitlines()
    assert not [line for line in lines if line.startswith("INFO")], err          # each line once, as Lightning's
    for noise in ("Downloading artifacts", "Tip:", "distributed_backend", "exists and is not empty", "Warning"):
        assert noise not in err, noise
