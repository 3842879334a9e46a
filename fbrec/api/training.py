"""`fbrec train`: a run's life from the top. Build it from a recipe (or continue a run that died: fbrec.api.resume),
create its MLflow run, fit, select and test it (fbrec.api.fitting), refit it on request; a run that fails or is
interrupted is marked so, never left RUNNING."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from fbrec.api.config import recipe_name
from fbrec.api.fitting import _add_early_stopping, _fit_select_test
from fbrec.api.progress import Progress, to_log
from fbrec.api.reporting import _data_source, _sample_words
from fbrec.api.resume import _is_rank_zero, _logged_config, _resumable, _state_world_size_change
from fbrec.errors import ConfigError


def run_training(config: str | None, overrides: list[str], *, resume: str | None = None,
                 refit: bool = False, objects: dict | None = None, register: str | None = None,
                 progress: Progress | None = None) -> str | None:
    """Train, select the best epoch on validation, test it, log everything; returns the MLflow run id (rank 0).

    resume: an earlier run's id; its logged config is rebuilt (`overrides` still apply) and training continues
    from its last saved epoch in the same MLflow run.
    refit: after that run, train again on training + validation pairs for the chosen number of epochs (a second
    run, tagged refit_of=<the selection run>), and test and export that model; returns the refit run's id.
    objects: filled with the trained "model" (the selected checkpoint's weights), its "datamodule" and the run's
    "outcome" (RunOutcome).
    progress: called with each line worth telling a person (default: the "fbrec" logger at INFO).
    register: also register the run's MLflow model (the bundle as a pyfunc) under this registry name (with refit:
    the refit run's)."""
    from fbrec.api.config import quiet_third_parties

    quiet_third_parties()   # before anything is read from the store (a resume reads the run's config first)
    if refit:
        if resume is not None:
            raise ConfigError("--refit with --resume", rule="a refit follows a finished selection run",
                              fix="resume first, then train again with --refit")
        selected = run_training(config, overrides, progress=progress)
        return _refit(config, overrides, selected, objects, register, progress or to_log)
    from fbrec.tracking import default_tracking_uri, mark_dead_runs_in_store

    uri = default_tracking_uri()
    with tempfile.TemporaryDirectory() as tmp:
        last = None
        if resume is not None:
            if _is_rank_zero():
                mark_dead_runs_in_store(uri)
            from fbrec.tracking import resolve_run_id

            resume = resolve_run_id(resume, uri)
            run, last = _resumable(resume, uri)
            path, recipe = _logged_config(resume, uri, Path(tmp)), run.data.tags.get("recipe", "resumed")
            # the node count comes from this launch (torchrun sets it; else one node), never from the old config: a
            # two-node run resumed on one machine would wait for a second node forever
            overrides = ["--trainer.num_nodes=1", *overrides]
        else:
            from fbrec.api.config import resolve_config

            path = resolve_config(config)
            recipe = recipe_name(path)
        cli = _build(path, overrides)
        if objects is not None:
            objects.update(model=cli.model, datamodule=cli.datamodule)
        return _run(cli, recipe, uri, resume, last, register, progress or to_log, objects)


def _refit(config: str, overrides: list[str], selected: str | None, objects: dict | None,
           register: str | None, say: Progress) -> str | None:
    """Rank 0 knows the selection run's best epoch; every rank needs it to build the refit run."""
    import torch.distributed as dist

    from fbrec.api.config import resolve_config
    from fbrec.tracking import default_tracking_uri

    uri = default_tracking_uri()
    epoch = -1
    if _is_rank_zero():
        from fbrec.tracking import find_run

        tags = find_run(selected, uri).data.tags
        if "best_epoch" not in tags or not any(k.startswith("best_val_") for k in tags):
            raise ConfigError(f"run {selected} has no epoch chosen on validation",
                              rule="--refit reuses the epoch count validation chose",
                              fix="use a recipe with a validation split, or train without --refit")
        epoch = int(tags["best_epoch"])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [epoch]
        dist.broadcast_object_list(box, src=0)
        epoch = box[0]
    path = resolve_config(config)
    say(f"refit: training on training + validation pairs for {epoch + 1} epochs (the selected count)")
    cli = _build(path, [*overrides, "--data.sampling.merge_validation=true", f"--trainer.max_epochs={epoch + 1}"])
    if objects is not None:
        objects.update(model=cli.model, datamodule=cli.datamodule)
    run_id = _run(cli, recipe_name(path), uri, None, None, register, say, objects)
    if _is_rank_zero():
        from fbrec.tracking import set_run_tags

        set_run_tags(run_id, {"refit_of": selected, "refit_epochs": str(epoch + 1)}, uri)
    return run_id


def launcher_overrides(env=os.environ) -> list[str]:
    """Under torchrun (any --nnodes, --nproc_per_node) the launcher decides the processes: the trainer takes its
    devices per node and its node count from the launcher's environment, over any config or resumed run."""
    if "TORCHELASTIC_RUN_ID" not in env or "LOCAL_WORLD_SIZE" not in env or "WORLD_SIZE" not in env:
        return []
    local, world = int(env["LOCAL_WORLD_SIZE"]), int(env["WORLD_SIZE"])
    if local < 1 or world % local:
        raise ConfigError(f"torchrun started {world} processes with {local} per node",
                          rule="every node runs the same number of processes (--nproc_per_node)",
                          fix="launch each node with the same --nproc_per_node")
    return [f"--trainer.devices={local}", f"--trainer.num_nodes={world // local}"]


def _build(path: Path, overrides: list[str]):
    """The LightningCLI objects; building them reads and prepares the data (the model's sizes come from it)."""
    from fbrec.api.config import build_cli

    cap = os.environ.get("FBREC_MAX_EPOCHS")   # a smoke run of any documented command: at most this many epochs
    if cap and (not cap.isdigit() or int(cap) < 1):   # refused before any data is read
        raise ConfigError(f"FBREC_MAX_EPOCHS={cap!r}", rule="a whole number of epochs >= 1",
                          fix="export FBREC_MAX_EPOCHS=1, or unset it")
    started = time.perf_counter()
    cli = build_cli(["--config", str(path), *overrides, *launcher_overrides()])
    if cap:
        loop = cli.trainer.fit_loop
        loop.max_epochs = int(cap) if loop.max_epochs in (None, -1) else min(loop.max_epochs, int(cap))
    cli.fbrec_build_seconds = time.perf_counter() - started
    return cli


def _run(cli, recipe: str, uri: str, resume: str | None, last: Path | None, register: str | None, say: Progress,
         objects: dict | None) -> str | None:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import fbrec
    from fbrec.tracking import (
        checkpoint_dir,
        end_run,
        flat_params,
        log_dataset_inputs,
        make_logger,
        mark_dead_runs,
        owner_tags,
        reopen_run,
    )

    trainer, model, dm = cli.trainer, cli.model, cli.datamodule
    started = time.perf_counter()
    data = dm.data   # read and prepare: usually done while building (the model's sizes come from it)
    model.stage_seconds = {"prepare": getattr(cli, "fbrec_build_seconds", 0.0) + time.perf_counter() - started}
    tags = {"recipe": recipe, "model": type(model).__name__, "dataset": data.name,
            "fbrec_version": fbrec.__version__, "world_size": str(trainer.world_size),
            "seed": str(cli.config["seed_everything"]), "data_seed": str(dm.seed), **owner_tags()}
    ks = [int(k) for k in getattr(model, "ks", ())]
    if ks and max(ks) > dm.num_items:   # found before a run exists: no FAILED run is left behind for a typo
        raise ConfigError(f"k={max(ks)} exceeds the catalogue of {dm.num_items} items",
                          rule="every cut-off k <= the number of items", fix="lower the largest of model.init_args.ks")
    ckpt, monitor = trainer.checkpoint_callback, None   # settings are checked before a run is created
    if ckpt is not None:
        if ckpt.monitor is None and dm.data.val.height:
            ckpt.monitor = f"val/ndcg_at_{model.ks[0]}"
        prefix = dm.metric_prefix("val") if dm.data.val.height else "val"
        if ckpt.monitor is not None and prefix != "val" and ckpt.monitor.startswith("val/"):
            ckpt.monitor = prefix + ckpt.monitor.removeprefix("val")
            say(f"validation ranks {_sample_words(dm)}: its metrics are logged as {prefix}/*, and the "
                          f"epoch is chosen on {ckpt.monitor}; the test ranks every item for every user")
        monitor = ckpt.monitor
    if cli.config.get("patience") is not None:
        _add_early_stopping(trainer, monitor, cli.config["patience"])
    logger = make_logger(cli.config["experiment"], cli.config["run_name"] or recipe, tags, uri, run_id=resume)
    trainer.loggers = [logger]
    rank0 = trainer.global_rank == 0
    run_id = logger.run_id if rank0 else resume
    client = logger.experiment if rank0 else None
    if rank0 and resume is None:
        mark_dead_runs(cli.config["experiment"], uri)
    if rank0 and resume is not None:
        reopen_run(resume, str(last), uri)
        _state_world_size_change(client, resume, trainer.world_size, dm, say)
    if ckpt is not None:
        ckpt.dirpath = str(checkpoint_dir(run_id or "rank", uri))
    dropped = {part: dm.data.stats.get(f"cold_dropped_{part}", 0) for part in ("val", "test")}
    if rank0:   # rows the protocol cannot rank (user or item unknown to training) are counted, never silent
        for part, n in dropped.items():
            client.set_tag(run_id, f"data.dropped_{part}_rows", str(n))
        if any(dropped.values()):
            say(f"note: dropped {dropped['val']} validation and {dropped['test']} test rows whose user, "
                          "or item, has no training interaction (and is not in a declared catalogue)")
    try:
        if rank0 and resume is None:
            client.log_text(run_id, cli.parser.dump(cli.config, skip_none=False, skip_check=True), "config.yaml")
            params = flat_params(cli.config, recipe, dm.seed)   # each once, flat
            # the table sizes come from the data (linked at instantiation); the config still holds their 0 default
            params.update({"model.num_users": dm.num_users, "model.num_items": dm.num_items})
            logger.log_params(params)
            log_dataset_inputs(run_id, dm.data, _data_source(dm), uri)
        outcome = _fit_select_test(trainer, model, dm, ckpt, monitor, last, run_id, recipe, uri, cli, register, say)
    except BaseException as exc:
        stopped = isinstance(exc, SIGTERMException)   # Lightning stops at the next step; it is a SystemExit(None)
        if rank0:
            end_run(run_id, "KILLED" if stopped or isinstance(exc, KeyboardInterrupt) else "FAILED",
                    "stopped by SIGTERM" if stopped else f"{type(exc).__name__}: {exc}", uri)
        if stopped:   # a scheduler must not read success: 128 + SIGTERM, as a shell reports a terminated process
            say(f"stopped by SIGTERM: run {run_id} is marked KILLED; `fbrec train --resume {run_id}` continues it "
                "from its last saved epoch")
            raise SystemExit(143) from None
        raise
    if outcome is None:
        return None
    provenance = getattr(getattr(model, "alignment", None), "provenance", None)
    if rank0 and provenance:   # an aligned run says whose profiles it learned from (template or language model)
        for key, value in provenance.items():
            client.set_tag(outcome.run_id, key, value)
    if objects is not None:
        objects["outcome"] = outcome
    return outcome.run_id


