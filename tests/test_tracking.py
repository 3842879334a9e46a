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
