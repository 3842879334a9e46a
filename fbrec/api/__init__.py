"""The Python API: `fbrec.train`, `fbrec.evaluate`, `fbrec.export` return plain results; every `fbrec` command is
a thin wrapper over these.

    run = fbrec.train("bpr_movielens100k", {"trainer.max_epochs": 5})
    print(run.best_epoch, run.metrics["test/ndcg_at_10"])
    fbrec.export(run.run_id, "bundle/", index="HNSW32")
    fbrec.Bundle("bundle/").recommend(196, k=10)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fbrec.api.runs import Evaluation, evaluate_run, export_run


@dataclass
class TrainResult:
    """A finished training run: its MLflow id and store, the epoch selected on validation, every logged metric, and
    the trained model (the selected epoch's weights, a LightningModule) with its data module."""

    run_id: str
    tracking_uri: str
    best_epoch: int | None
    metrics: dict[str, float]
    model: object = None
    datamodule: object = None


def train(config: str, overrides: Mapping[str, object] | Sequence[str] = (), *, log: str | Path | None = None,
          resume: str | None = None, register: str | None = None) -> TrainResult | None:
    """Train a recipe (a name under models/ or a YAML path), select the best epoch on validation, test it, log it.

    overrides: {"trainer.max_epochs": 5, "model.init_args.embedding_dim": 64} or CLI-style ["--trainer.max_epochs=5"].
    log: your own click log (parquet/CSV/NDJSON with user, item[, timestamp, level] columns; see fbrec.read_log)
        instead of the recipe's dataset: the same as {"data.log_path": log}.
    resume: continue that run from its last saved epoch instead (config is then ignored). Returns None on ranks > 0.
    register: also register the run's MLflow model (its bundle as a pyfunc) under this model-registry name.
    """
    from fbrec.api.training import run_training
    from fbrec.tracking import default_tracking_uri, find_run

    args = list(overrides) if not isinstance(overrides, Mapping) else [f"--{k}={v}" for k, v in overrides.items()]
    if log is not None:
        args.append(f"--data.log_path={Path(log).resolve()}")
    objects: dict = {}
    run_id = run_training(config if resume is None else None, args, resume=resume, objects=objects,
                          register=register)
    if run_id is None:
        return None
    uri = default_tracking_uri()
    run = find_run(run_id, uri)
    best = run.data.tags.get("best_epoch")
    return TrainResult(run_id, uri, int(best) if best not in (None, "None") else None, dict(run.data.metrics),
                       objects.get("model"), objects.get("datamodule"))


def evaluate(run_id: str, *, stage: str = "test", k: Sequence[int] = (10, 20, 50),
             out: str | Path | None = None) -> Evaluation:
    """Full-ranking evaluation of a run's embeddings (see fbrec.api.runs.evaluate_run)."""
    return evaluate_run(run_id, stage=stage, k=list(k), out=out)


def export(run_id: str, out: str | Path, *, index: str = "Flat", search_params: str = "", overwrite: bool = False):
    """Write the run's bundle to `out` (see fbrec.api.runs.export_run); returns its Manifest."""
    return export_run(run_id, out, index=index, search_params=search_params, overwrite=overwrite)


__all__ = ["Evaluation", "TrainResult", "evaluate", "export", "train"]
