"""MLflow conventions: an embedded sqlite store under the working directory unless MLFLOW_TRACKING_URI says so."""

from __future__ import annotations

from fbrec.tracking import default_tracking_uri, tracking_setup


def test_default_store_is_sqlite_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"


def test_environment_overrides_the_store(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/other.db")
    assert default_tracking_uri() == f"sqlite:///{tmp_path}/other.db"


def test_experiment_artifacts_stay_beside_the_store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    (tmp_path / "db").mkdir()
    _, exp_id = tracking_setup("exp", uri)
    location = MlflowClient(uri).get_experiment(exp_id).artifact_location
    assert location == (tmp_path / "db" / "artifacts").as_uri()


def test_calibration_table_and_ece_by_hand():
    import numpy as np

    from fbrec.evaluation.calibration import calibration

    probs = np.array([0.05, 0.15, 0.95, 0.91])
    labels = np.array([0.0, 1.0, 1.0, 0.0])
    ece, table = calibration(probs, labels)
    assert table["bin"].to_list() == [0, 1, 9] and table["count"].to_list() == [1, 1, 2]
    assert table["observed"].to_list() == [0.0, 1.0, 0.5]
    assert abs(ece - (0.05 + 0.85 + 2 * abs(0.5 - 0.93)) / 4) < 1e-9


def test_a_log_loss_run_logs_its_calibration(mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient
    from test_cli import TINY

    import fbrec

    config = tmp_path / "bce.yaml"
    config.write_text(TINY.replace("loss: bpr", "loss: bce"))
    run = fbrec.train(str(config), {"trainer.max_epochs": 2, "trainer.enable_progress_bar": False})
    assert 0 <= run.metrics["test/ece"] <= 1
    files = {a.path for a in MlflowClient(mlflow_store).list_artifacts(run.run_id, "test")}
    assert {"test/test_calibration.png", "test/test_calibration.csv"} <= files
