"""One run's fit, selection and test: fit with a checkpoint after every validation, restore the epoch validation chose,
test it, report it, flag a degenerate model, keep its embeddings and model in the run (rank 0)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fbrec.api.progress import Progress
from fbrec.api.reporting import (
    _calibration_pairs,
    _log_mlflow_model,
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
        kept = "test metrics, report and embeddings" if embeds else "test metrics and report"
        say(f"best epoch on validation: {best_epoch} ({monitor} = {score:.4f}); the {kept} below come from that "
            "checkpoint")
    elif best:
        say(f"no validation split: the last epoch ({best_epoch}) is tested" + (" and exported" if embeds else ""))
    if hasattr(model, "sharding_plan"):
        client.set_tag(run_id, "sharding_plan", str(model.sharding_plan()))
    stages["export"] = time.perf_counter() - started
    for stage, seconds in stages.items():   # per-stage wall time of the run, in the run
        client.log_metric(run_id, f"time/{stage}_seconds", seconds)
    say(stage_line(stages, validations))
    trainer.loggers[0].finalize("success")
    return RunOutcome(run_id, uri, recipe, dm.data.name, list(model.ks), summary, best_epoch, monitor, score, table,
                      dict(stages))
