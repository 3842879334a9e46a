"""Work on a finished run: evaluate its embeddings again, export them as a bundle. The CLI prints these results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fbrec.errors import ConfigError


@dataclass
class Evaluation:
    """Summary (metric -> mean over users), the long report with slices and CIs, and the per-user frame."""

    summary: dict[str, float]
    report: pl.DataFrame
    per_user: pl.DataFrame


def _datamodule(data_args: dict):
    from fbrec.data.datamodule import FeedbackDataModule

    return FeedbackDataModule(**data_args)


def evaluate_run(run_id: str, *, stage: str = "test", k=(10, 20, 50), out: str | Path | None = None) -> Evaluation:
    """Full-ranking evaluation of a run's logged embeddings on its data's val or test split, logged to the run
    under evaluate_<stage>/; `out` also writes the report CSV (a new file only)."""
    from fbrec._atomic import new_file_path, write_new_file
    from fbrec.evaluation import embedding_scorer, evaluate_scores, report
    from fbrec.tracking import default_tracking_uri, log_report, read_run_artifacts

    if stage not in ("test", "val"):
        raise ConfigError(f"stage {stage!r}", rule="stage is 'test' or 'val'", fix="pass --stage test")
    if out:
        new_file_path(out)   # refuse before the work, not after
    art = read_run_artifacts(run_id)
    dm = _datamodule(art.data_args)
    evaluator = evaluate_scores(embedding_scorer(art.user_embeddings, art.item_embeddings), dm.eval_set(stage), k)
    frame = evaluator.frame()
    result = Evaluation(evaluator.summary(frame), report(frame), frame)
    log_report(run_id, f"evaluate_{stage}", result.summary, result.report, frame, default_tracking_uri(),
               main_k=min(k))
    if out:
        write_new_file(out, result.report.write_csv)
    return result


def export_run(run_id: str, out: str | Path, *, index: str = "Flat", search_params: str = "",
               overwrite: bool = False):
    """Write the run's bundle (embeddings, id maps, seen items, item attributes, FAISS index, an ONNX user tower
    when the model has one, manifest) to `out` atomically and log it to the run; returns the Manifest."""
    from fbrec.bundle import USER_FEATURES, USER_TOWER, write_bundle
    from fbrec.tracking import default_tracking_uri, log_bundle, read_run_artifacts

    art = read_run_artifacts(run_id)
    dm = _datamodule(art.data_args)
    seen = dm.data.train.select("user_index", "item_index")
    if dm.data.val.height:
        seen = pl.concat([seen, dm.data.val.select("user_index", "item_index")])
    tower = {n: art.files[n] for n in (USER_TOWER, USER_FEATURES)} if USER_TOWER in art.files else None
    manifest = write_bundle(out, user_embeddings=art.user_embeddings, item_embeddings=art.item_embeddings,
                            user_map=dm.data.user_map, item_map=dm.data.item_map, seen=seen, model=art.model,
                            index_factory=index, search_params=search_params, run_id=run_id, dataset=dm.data.name,
                            overwrite=overwrite, items=dm.data.items, levels=dm.level_names(), user_tower=tower)
    log_bundle(run_id, out, default_tracking_uri())
    return manifest
