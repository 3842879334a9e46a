"""`fbrec train`: a run's whole life in one place. Build it from a recipe (or continue a run that died), fit with a
checkpoint after every validation, restore the best epoch on validation, test it, report, keep its embeddings, and
log all of it to MLflow; a run that fails or is interrupted is marked so, never left RUNNING."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fbrec.api.config import recipe_name
from fbrec.api.progress import Progress, to_log
from fbrec.api.reporting import (
    _calibration_pairs,
    _data_source,
    _log_mlflow_model,
    _sample_words,
    biased_vs_unbiased,
    stage_line,
)
from fbrec.errors import ConfigError


@dataclass
class RunOutcome:
    """What a finished run reports (rank 0): the CLI prints it, the Python API returns it inside TrainResult."""

    run_id: str
    tracking_uri: str
    recipe: str
    dataset: str
    ks: list[int]
    test: dict[str, float]                 # the selected checkpoint's test summary (metric -> mean over users)
    best_epoch: int | None
    monitor: str | None
    best_score: float | None
    mnar_table: object = None              # polars frame: validation naive vs SNIPS next to test (MNAR recipes)
    stages: dict | None = None             # time per stage, seconds


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


def _add_early_stopping(trainer, monitor: str | None, patience: int) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    if monitor is None:
        raise ConfigError(f"patience={patience} without a validation split", rule="early stopping watches a "
                          "validation metric", fix="use a split with validation data, or drop --patience")
    if patience < 1:
        raise ConfigError(f"patience={patience}", rule="patience >= 1 validated epochs", fix="pass --patience 3")
    trainer.callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=patience))


def _flag_degenerate(client, run_id: str, user_emb, item_emb, best_epoch: int | None, say: Progress) -> None:
    """A selected model whose scores are flat for most users is said so on the console and tagged
    `fbrec.degenerate` (the share of flat users), so no one mistakes a tie-break's metrics for a model's."""
    import numpy as np

    from fbrec.evaluation.degenerate import FLAT_RANGE, FLAT_SHARE, flat_user_share

    share = flat_user_share(user_emb, item_emb)
    client.set_tag(run_id, "fbrec.degenerate", "true" if share > FLAT_SHARE else "false")
    if share > FLAT_SHARE:
        client.set_tag(run_id, "fbrec.degenerate.flat_user_share", f"{share:.3f}")
        scale = float(np.abs(np.asarray(item_emb)).max()) if np.size(item_emb) else 0.0
        say(f"warning: the selected model (epoch {best_epoch}) scores every item the same for {share:.0%} of users "
            f"(their scores span < {FLAT_RANGE:g}; the largest item embedding entry is {scale:.2g}): its embeddings "
            "collapsed, so its metrics are those of the tie-break order, not of a learned model; lower the "
            "regularisation or choose another recipe (tag fbrec.degenerate=true)")


def _fit_select_test(trainer, model, dm, ckpt, monitor, last, run_id, recipe, uri, cli, register, say: Progress
                     ) -> RunOutcome | None:
    from fbrec.evaluation import report
    from fbrec.models.selection import checkpoint_epoch
    from fbrec.tracking import (
        log_calibration,
        log_learning_curves,
        log_model_artifacts,
        log_report,
        log_table,
    )

    stages = model.stage_seconds
    started = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=str(last) if last is not None else None)
    stages["validation"] = model.eval_seconds.get("val", 0.0)
    validations = model.eval_counts.get("val", 0)   # the side-by-side validation after the test is not counted
    stages["train"] = time.perf_counter() - started - stages["validation"]
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    best_epoch = checkpoint_epoch(best) if best else None
    started = time.perf_counter()
    trainer.test(model, datamodule=dm, ckpt_path=best, verbose=False)
    stages["test"] = time.perf_counter() - started
    started = time.perf_counter()
    side_by_side = None
    if getattr(dm, "propensity_name", None) is not None and dm.data.val.height:
        # the same checkpoint on validation (MNAR clicks, naive and SNIPS-corrected) next to the test report; it is
        # reported in report/biased_vs_unbiased.csv, not logged again as a phantom epoch of the learning curve
        loggers, trainer.loggers = trainer.loggers, []
        try:
            trainer.validate(model, datamodule=dm, ckpt_path=best, verbose=False)
        finally:
            trainer.loggers = loggers
        side_by_side = model.last_evaluators["val"].summary()
    embeds = getattr(model, "exports_embeddings", True)   # False: it ranks through data no vector holds (history)
    user_emb, item_emb = (model.export_embeddings(dm.num_users, dm.num_items) if embeds   # collective when sharded
                          else (None, None))
    tower = model.user_feature_tower() if hasattr(model, "user_feature_tower") else None   # collective too
    if trainer.global_rank != 0:
        return None
    client = trainer.loggers[0].experiment
    summaries = {}
    for key, evaluator in model.last_evaluators.items():   # "test", and on ordinal data "test/level_<name>"
        if key == "test" or key.startswith("test/level_"):
            frame = evaluator.frame()
            summaries[key] = evaluator.summary(frame)
            log_report(run_id, key.replace("/", "_"), summaries[key],
                       report(frame, protocol_users=evaluator.eval_set.protocol_users), frame, uri, main_k=model.ks[0],
                       title=f"{recipe} on {dm.data.name}")
    summary = summaries["test"]
    log_learning_curves(run_id, monitor, uri, title=f"{recipe} on {dm.data.name}")
    if getattr(model, "loss_name", None) == "bce":   # a log-loss model outputs probabilities: check them
        probs, labels = _calibration_pairs(dm, user_emb, item_emb)
        log_calibration(run_id, probs, labels, uri, title=f"{recipe} on {dm.data.name}")
    table = None
    if side_by_side is not None:
        table = biased_vs_unbiased(side_by_side, summary, model.ks)
        log_table(run_id, table, "report/biased_vs_unbiased.csv", uri)
    if embeds:
        _flag_degenerate(client, run_id, user_emb, item_emb, best_epoch, say)
    if not embeds:
        client.set_tag(run_id, "embeddings", "none")
        say(f"{type(model).__name__} ranks through each user's history: no embeddings, model or bundle are logged")
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        if tower is not None:   # new users with side features get this tower in the service (fbrec export)
            from fbrec.models.export import write_user_tower

            files = write_user_tower(tower, model.user_encoders, tmp)
        # the resolved data seed: evaluate/export/simulate rebuild this run's split, not the default seed's
        if embeds:
            log_model_artifacts(run_id, model=type(model).__name__, data_args={**dm.init_args, "seed": dm.seed},
                                user_embeddings=user_emb, item_embeddings=item_emb, dataset_card=dm.data.card(),
                                config_yaml=None, tracking_uri=uri, files=files)
            _log_mlflow_model(run_id, model, dm, user_emb, item_emb, files, Path(tmp) / "bundle", uri, register,
                              say)
    if best:
        client.set_tag(run_id, "best_checkpoint", best)
        client.set_tag(run_id, "best_epoch", str(best_epoch))
    score = None
    if monitor is not None and ckpt.best_model_score is not None:
        score = float(ckpt.best_model_score)
        client.set_tag(run_id, f"best_{monitor.replace('/', '_')}", f"{score:.6f}")
        say(f"best epoch on validation: {best_epoch} ({monitor} = {score:.4f}); the test metrics, report "
                      "and embeddings below come from that checkpoint")
    elif best:
        say(f"no validation split: the last epoch ({best_epoch}) is tested and exported")
    if hasattr(model, "sharding_plan"):
        client.set_tag(run_id, "sharding_plan", str(model.sharding_plan()))
    stages["export"] = time.perf_counter() - started
    for stage, seconds in stages.items():   # per-stage wall time of the run, in the run
        client.log_metric(run_id, f"time/{stage}_seconds", seconds)
    say(stage_line(stages, validations))
    trainer.loggers[0].finalize("success")
    return RunOutcome(run_id, uri, recipe, dm.data.name, list(model.ks), summary, best_epoch, monitor, score, table,
                      dict(stages))
