"""A training run's life in the store: where its checkpoints live, which process owns it, and what became of
runs whose process died without saying so (kill -9, OOM, a preempted node)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from fbrec.tracking.store import default_tracking_uri, no_artifact_progress

PID_TAG, HOST_TAG, END_TAG = "fbrec.pid", "fbrec.host", "fbrec.end"


def store_root(tracking_uri: str | None = None) -> Path:
    """The folder of the embedded store (beside mlflow.db), or ./ for remote stores."""
    uri = tracking_uri or default_tracking_uri()
    return Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else Path.cwd()


def checkpoint_dir(run_id: str, tracking_uri: str | None = None) -> Path:
    """`<store>/checkpoints/<run_id>`: the only place fbrec reads a run's checkpoints from."""
    return store_root(tracking_uri) / "checkpoints" / run_id


def owner_tags() -> dict[str, str]:
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_runs(experiment: str, tracking_uri: str | None = None) -> list[str]:
    """RUNNING runs started on this host by a process that no longer exists become KILLED; returns their ids."""
    client = MlflowClient(tracking_uri or default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    host, dead = socket.gethostname(), []
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        pid = int(tags[PID_TAG])
        if pid == os.getpid() or _alive(pid):
            continue
        client.set_tag(run.info.run_id, END_TAG, f"process {pid} on {host} died without finishing the run; "
                       f"continue it with `fbrec train --resume {run.info.run_id}`")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        dead.append(run.info.run_id)
    return dead


def mark_dead_runs_in_store(tracking_uri: str | None = None) -> list[str]:
    """mark_dead_runs over every experiment of the store."""
    client = MlflowClient(tracking_uri or default_tracking_uri())
    return [r for exp in client.search_experiments() for r in mark_dead_runs(exp.name, tracking_uri)]


def end_run(run_id: str, status: str, reason: str, tracking_uri: str | None = None) -> None:
    """Terminate a run as FAILED or KILLED with the reason in the `fbrec.end` tag."""
    client = MlflowClient(tracking_uri or default_tracking_uri())
    client.set_tag(run_id, END_TAG, reason[:500])
    client.set_terminated(run_id, RunStatus.to_string(getattr(RunStatus, status)))


def reopen_run(run_id: str, resumed_from: str, tracking_uri: str | None = None) -> None:
    """A resumed run is RUNNING again, owned by this process."""
    client = MlflowClient(tracking_uri or default_tracking_uri())
    client.update_run(run_id, status="RUNNING")
    for key, value in {**owner_tags(), "fbrec.resumed_from": resumed_from}.items():
        client.set_tag(run_id, key, value)
    if END_TAG in client.get_run(run_id).data.tags:   # "died ... resume it": no longer true
        client.delete_tag(run_id, END_TAG)


def download_config(run_id: str, into: Path, tracking_uri: str | None = None) -> Path | None:
    """The resolved config.yaml a run logged when it started, or None."""
    try:
        with no_artifact_progress():
            return Path(MlflowClient(tracking_uri or default_tracking_uri()).download_artifacts(run_id, "config.yaml",
                                                                                               str(into)))
    except Exception:   # noqa: BLE001 - mlflow raises several kinds for a missing artifact
        return None
