"""The test report, the logged embeddings and the MLflow tags come from the best validation epoch, not the last."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from peaking import planted_embeddings

from fbrec.api.training import run_training
from fbrec.data.datamodule import FeedbackDataModule
from fbrec.evaluation import embedding_scorer, evaluate_scores
from fbrec.tracking import read_run_artifacts


def _config(tmp_path, planted_dir, **replace: str) -> str:
    path = tmp_path / "peaking.yaml"
    text = f"""
seed_everything: 0
trainer: {{max_epochs: 4, devices: 1, enable_progress_bar: false}}
model:
  class_path: peaking.PeakingModule
  init_args: {{ks: [1, 5]}}
data: {{source: {{prepared_dir: {planted_dir}}}, sampling: {{batch_size: 64}}}}
"""
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return str(path)


def test_a_run_reports_and_exports_its_best_validation_epoch_not_its_last(planted_dir, tmp_path, mlflow_store):
    run_id = run_training(_config(tmp_path, planted_dir), [])
    run = MlflowClient(mlflow_store).get_run(run_id)
    assert run.data.tags["best_epoch"] == "0"
    val = [m.value for m in MlflowClient(mlflow_store).get_metric_history(run_id, "val/hit_rate_at_1")]
    assert len(val) == 4 and val[0] == max(val) > val[-1], "validation peaked at epoch 0 by construction"
    assert float(run.data.tags["best_val_ndcg_at_1"]) == pytest.approx(val[0], abs=1e-6)

    dm = FeedbackDataModule(prepared_dir=str(planted_dir))
    good, bad = planted_embeddings(dm, 1.0), planted_embeddings(dm, -1.0)
    best = evaluate_scores(embedding_scorer(*good), dm.eval_set("test"), (1, 5)).summary()
    last = evaluate_scores(embedding_scorer(*bad), dm.eval_set("test"), (1, 5)).summary()
    assert best["ndcg_at_5"] > last["ndcg_at_5"] + 0.5
    assert run.data.metrics["test/ndcg_at_5"] == pytest.approx(best["ndcg_at_5"], abs=1e-6)
    assert run.data.metrics["test/hit_rate_at_1"] == pytest.approx(best["hit_rate_at_1"], abs=1e-6)
    art = read_run_artifacts(run_id, mlflow_store)
    np.testing.assert_array_equal(art.item_embeddings, good[1])
    # the best epoch is kept for the report; last.ckpt is the latest epoch, what --resume continues from
    from fbrec.models.selection import checkpoint_epoch
    from fbrec.tracking import checkpoint_dir

    store = checkpoint_dir(run_id, mlflow_store)
    assert checkpoint_epoch(store / "last.ckpt") == 3
    assert checkpoint_epoch(run.data.tags["best_checkpoint"]) == 0


def test_early_stopping_ends_the_run_after_patience_validations_without_improvement(planted_dir, tmp_path,
                                                                                   mlflow_store):
    run_id = run_training(_config(tmp_path, planted_dir, **{"max_epochs: 4": "max_epochs: 20"}), ["--patience", "2"])
    history = MlflowClient(mlflow_store).get_metric_history(run_id, "val/ndcg_at_1")
    assert len(history) == 3, "epoch 0 is best; epochs 1 and 2 do not improve; patience 2 stops there"
    assert MlflowClient(mlflow_store).get_run(run_id).data.tags["best_epoch"] == "0"


def test_a_run_that_raises_is_marked_failed_with_its_error_not_left_running(planted_dir, tmp_path, mlflow_store):
    config = _config(tmp_path, planted_dir, **{"peaking.PeakingModule": "peaking.FailingModule"})
    with pytest.raises(FloatingPointError):
        run_training(config, [])
    (run,) = MlflowClient(mlflow_store).search_runs(["1"])
    assert run.info.status == "FAILED"
    assert run.data.tags["fbrec.end"] == "FloatingPointError: training loss is nan at epoch 1"


def test_checkpoints_load_without_unpickling_arbitrary_objects():
    """The claim of the README's trust boundary: no weights_only=False anywhere in fbrec, and DCP's non-tensor
    entries go through the restricted unpickler."""
    from pathlib import Path

    import fbrec
    from fbrec.embeddings.strategy import _SafeLoadPlanner

    sources = Path(fbrec.__file__).parent.rglob("*.py")
    assert not [p for p in sources if "weights_only=False" in p.read_text()]
    import inspect
    assert "weights_only=True" in inspect.getsource(_SafeLoadPlanner.load_bytes)
