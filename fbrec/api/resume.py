"""Continuing a run that died: which state it resumes from (refusing finished, live and stateless runs), every
checkpoint checked against the digest fbrec recorded before anything in it is read, the run's logged config, and a
note when the run continues on another number of processes."""

from __future__ import annotations

import os
from pathlib import Path

from fbrec.api.progress import Progress
from fbrec.errors import ConfigError


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def _resumable(run_id: str, uri: str):
    """The run to continue and its last saved state; refuses finished runs, live runs and runs with no state."""
    from fbrec.tracking import checkpoint_dir, find_run

    run = find_run(run_id, uri)
    status = run.info.status
    if status == "FINISHED":
        raise ConfigError(f"run {run_id!r} already finished", rule="--resume continues runs that died or failed",
                          fix="start a new run with --config")
    if status == "RUNNING" and _is_rank_zero():
        raise ConfigError(f"run {run_id!r} is still RUNNING (process {run.data.tags.get('fbrec.pid', '?')} on "
                          f"{run.data.tags.get('fbrec.host', '?')})", rule="one process trains a run at a time",
                          fix="wait for it, or stop it first; a dead process's run is marked KILLED automatically")
    last = checkpoint_dir(run_id, uri) / "last.ckpt"
    if not last.is_dir():
        raise ConfigError(f"run {run_id!r} has no saved state in {str(last.parent)!r}",
                          rule="a run saves its state after each validated epoch; this one died before the first",
                          fix="start it again with --config")
    _verify_checkpoints(run, last.parent)
    return run, last


def _verify_checkpoints(run, folder: Path) -> None:
    """Every checkpoint of the run hashes to a digest the run recorded when fbrec wrote it, checked before anything
    in it is read (DCP's .metadata is a pickle): a checkpoint changed since is refused with one line."""
    from fbrec._atomic import tree_sha256
    from fbrec.embeddings.strategy import checkpoint_tag

    for ckpt in sorted(p for p in folder.glob("*.ckpt") if not p.name.startswith(".")):
        recorded = run.data.tags.get(checkpoint_tag(ckpt.name), "").split()
        if tree_sha256(ckpt) not in recorded:
            raise ConfigError(f"checkpoint {ckpt.name!r} of run {run.info.run_id!r} does not match the hash recorded "
                              "when fbrec wrote it" if recorded else f"checkpoint {ckpt.name!r} of run "
                              f"{run.info.run_id!r} has no recorded hash",
                              rule="--resume reads only checkpoints whose sha256 the run recorded (a changed "
                              "checkpoint could run code when unpickled)",
                              fix="start a new run with --config; do not copy checkpoints between run stores")


def _logged_config(run_id: str, uri: str, into: Path) -> Path:
    from fbrec.tracking import download_config

    path = download_config(run_id, into, uri)
    if path is None:
        raise ConfigError(f"run {run_id!r} has no logged config.yaml", rule="runs started by this fbrec log their "
                          "resolved config first", fix="start a new run with --config")
    return path


def _state_world_size_change(client, run_id: str, world: int, dm, say: Progress) -> None:
    """A run resumed on another number of processes: DCP reshards its checkpoint; the run records the new world size
    and the line says what became of the global batch (each process takes data.sampling.batch_size)."""
    before = client.get_run(run_id).data.tags.get("world_size")
    if before is None or not before.isdigit() or int(before) == world:
        return
    batch, old = dm.batch_size, int(before)
    client.set_tag(run_id, "world_size", str(world))
    client.set_tag(run_id, "fbrec.world_size_before_resume", before)
    keep = batch * old / world
    say(f"resumed on {world} process(es); the run was trained on {old}: its checkpoint is resharded, and the global "
        f"batch is now {batch * world:,} examples (was {batch * old:,})"
        + (f"; --data.sampling.batch_size {int(keep)} keeps it" if keep == int(keep) and keep != batch else ""))
