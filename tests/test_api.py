"""The Python API is as short as implicit's and returns plain results; `import fbrec` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_cli import TINY

import fbrec


def test_train_evaluate_export_recommend_from_python(tmp_path, mlflow_store):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    run = fbrec.train(str(config), {"trainer.max_epochs": 2, "trainer.enable_progress_bar": False})
    assert run.best_epoch in (0, 1) and run.tracking_uri == mlflow_store
    assert 0 < run.metrics["test/ndcg_at_5"] <= 1
    evaluation = fbrec.evaluate(run.run_id, k=[5])
    assert evaluation.summary["ndcg_at_5"] == pytest.approx(run.metrics["test/ndcg_at_5"], abs=1e-6)
    assert {"all", "head", "tail"} <= set(evaluation.report["slice"].to_list())
    manifest = fbrec.export(run.run_id, tmp_path / "bundle", index="Flat")
    assert manifest.run_id == run.run_id
    recs = fbrec.Bundle(tmp_path / "bundle").recommend(0, k=3)
    assert len(recs) == 3


def test_the_python_api_store_follows_the_current_directory(tmp_path, monkeypatch):
    """Without MLFLOW_TRACKING_URI, each run goes to ./mlruns of the directory it starts in (mlflow exports the first
    run's store into the environment; fbrec does not take that for the user's setting)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uris = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        run = fbrec.train(str(config), {"trainer.max_epochs": 1, "trainer.enable_progress_bar": False})
        uris.append(run.tracking_uri)
        assert (tmp_path / name / "mlruns" / "checkpoints" / run.run_id).is_dir()
    assert uris == [f"sqlite:///{tmp_path / n / 'mlruns' / 'mlflow.db'}" for n in ("first", "second")]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uris[0])   # the user's own setting wins wherever they are
    assert fbrec.train(str(config), {"trainer.max_epochs": 1}).tracking_uri == uris[0]


@pytest.mark.slow
def test_import_fbrec_loads_neither_torch_nor_mlflow():
    code = "import sys, fbrec; fbrec.Bundle; assert 'torch' not in sys.modules and 'mlflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_train_a_model_object_on_a_data_object(tmp_path, mlflow_store):
    from fbrec.data.feedback import FeedbackData
    from fbrec.models import MatrixFactorizationModule

    data = FeedbackData("synthetic", dataset_options={"num_users": 120, "num_items": 80, "sessions_per_user": 12,
                                                      "seed": 0}, batch_size=256)
    model = MatrixFactorizationModule(data.num_users, data.num_items, embedding_dim=12, loss="bce", ks=(5,))
    run = fbrec.train(model=model, data=data, overrides={"trainer.max_epochs": 2,
                                                          "trainer.enable_progress_bar": False})
    assert isinstance(run.model, MatrixFactorizationModule) and run.model.hparams.embedding_dim == 12
    assert run.model.loss_name == "bce" and "test/ndcg_at_5" in run.metrics
    assert fbrec.evaluate(run.run_id, k=[5]).summary["ndcg_at_5"] == pytest.approx(run.metrics["test/ndcg_at_5"],
                                                                                    abs=1e-6)


def test_nothing_to_train_is_one_clear_error(mlflow_store):
    from fbrec.errors import ConfigError

    with pytest.raises(ConfigError, match="nothing to train"):
        fbrec.train()


@pytest.mark.parametrize("kwargs,pattern", [
    ({"model": object()}, r"model object has no constructor arguments.*fbrec\.models"),
    ({"data": object()}, r"data object object records no constructor arguments.*FeedbackData"),
])
def test_objects_fbrec_cannot_rebuild_are_refused_before_any_run(kwargs, pattern, mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    from fbrec.errors import ConfigError

    with pytest.raises(ConfigError, match=pattern):
        fbrec.train(**kwargs)
    assert MlflowClient(mlflow_store).search_experiments(filter_string="name = 'fbrec'") == []


def test_progress_receives_what_the_cli_prints_and_the_outcome_is_returned(tmp_path, mlflow_store):
    from test_cli import TINY

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    lines: list[str] = []
    run = fbrec.train(str(config), {"trainer.max_epochs": 1, "trainer.enable_progress_bar": False},
                      progress=lines.append)
    assert any(line.startswith("best epoch on validation: 0") for line in lines), lines
    assert any(line.startswith("time: config + read + prepare data") for line in lines), lines
    assert run.outcome.run_id == run.run_id and run.outcome.recipe == "tiny" and run.outcome.dataset == "synthetic"
    assert run.outcome.test["ndcg_at_5"] == pytest.approx(run.metrics["test/ndcg_at_5"], abs=1e-6)
