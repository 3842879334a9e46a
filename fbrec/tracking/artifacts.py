"""What a run keeps: its dataset inputs, the embeddings and data config under `model/` (what `fbrec evaluate` and
`fbrec export` read back), bundles and tables."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
from mlflow.tracking import MlflowClient

from fbrec.errors import ConfigError
from fbrec.tracking.store import _jsonable, default_tracking_uri, find_run, no_artifact_progress


def log_dataset_inputs(run_id: str, data, source: str, tracking_uri: str | None = None) -> None:
    """The prepared splits as the run's MLflow dataset inputs (name, digest, source, schema, row counts), with the
    context tags train / validation / test MLflow shows in its dataset views."""
    import warnings

    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag

    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    inputs = []
    for context, frame in (("train", data.train), ("validation", data.val), ("test", data.test)):
        if frame.height == 0:
            continue
        with warnings.catch_warnings():   # a local path matches two equivalent source resolvers
            warnings.simplefilter("ignore")
            # MLflow's schema has no categorical type: levels are logged as their names (strings)
            frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                                       if isinstance(t, pl.Enum | pl.Categorical))
            ds = mlflow.data.from_polars(frame, source=source, name=f"{data.name}/{context}",
                                         digest=f"{data.checksum[:16]}-{context}")
        inputs.append(DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", context)]))
    client.log_inputs(run_id, datasets=inputs)


@dataclass
class RunArtifacts:
    """What `fbrec evaluate` / `fbrec export` need from a finished training run."""

    run_id: str
    model: str
    data_args: dict
    user_embeddings: np.ndarray
    item_embeddings: np.ndarray
    files: dict[str, bytes] = field(default_factory=dict)   # other model/ files, e.g. an ONNX user tower




def log_model_artifacts(run_id: str, *, model: str, data_args: dict, user_embeddings: np.ndarray,
                        item_embeddings: np.ndarray, dataset_card: dict, config_yaml: str | None,
                        tracking_uri: str | None = None, files: list[Path] = ()) -> None:
    """Everything `fbrec evaluate/export` need under model/ (embeddings, run.json, any `files` such as an ONNX
    user tower), the dataset card under data/, and the config."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for f in files:
            (d / Path(f).name).write_bytes(Path(f).read_bytes())
        np.save(d / "user_embeddings.npy", user_embeddings)
        np.save(d / "item_embeddings.npy", item_embeddings)
        (d / "run.json").write_text(json.dumps({"model": model, "data": data_args}, indent=2, default=_jsonable))
        client.log_artifacts(run_id, str(d), artifact_path="model")
        (d / "dataset_card.json").write_text(json.dumps(dataset_card, indent=2, default=str))
        client.log_artifact(run_id, str(d / "dataset_card.json"), artifact_path="data")
        if config_yaml:
            (d / "config.yaml").write_text(config_yaml)
            client.log_artifact(run_id, str(d / "config.yaml"))
    client.set_tag(run_id, "dataset.checksum", dataset_card.get("checksum", ""))


def read_run_artifacts(run_id: str, tracking_uri: str | None = None) -> RunArtifacts:
    uri = tracking_uri or default_tracking_uri()
    run = find_run(run_id, uri)
    if run.data.tags.get("embeddings") == "none":   # a model that ranks through each user's history (HistoryRerank)
        model = run.data.tags.get("model", "its model")
        raise ConfigError(f"run {run_id!r} ({model}) has no embeddings: it ranks through each user's own history, "
                          "so there is nothing to evaluate again, export or serve",
                          rule="evaluate, export and simulate read a run's user and item embeddings",
                          fix="its test metrics and report are in the run (mlflow ui); export a run of an embedding "
                              "model (e.g. wmf_als_tmall_levels)")
    client = MlflowClient(uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with no_artifact_progress():
                local = Path(client.download_artifacts(run_id, "model", tmp))
        except (OSError, mlflow.exceptions.MlflowException) as exc:
            raise ConfigError(f"run {run_id!r} has no model/ artifacts", rule="only finished `fbrec train` runs "
                              "can be evaluated or exported", fix="train again with `fbrec train`") from exc
        meta = json.loads((local / "run.json").read_text())
        known = {"run.json", "user_embeddings.npy", "item_embeddings.npy"}
        files = {p.name: p.read_bytes() for p in local.iterdir() if p.is_file() and p.name not in known}
        return RunArtifacts(run_id, meta["model"], meta["data"], np.load(local / "user_embeddings.npy"),
                            np.load(local / "item_embeddings.npy"), files)


def log_bundle(run_id: str, bundle_dir: str | Path, tracking_uri: str | None = None) -> None:
    MlflowClient(tracking_uri or mlflow.get_tracking_uri()).log_artifacts(run_id, str(bundle_dir), "bundle")


def log_table(run_id: str, frame: pl.DataFrame, artifact_file: str, tracking_uri: str | None = None) -> None:
    """A polars frame as a CSV artifact (e.g. "report/biased_vs_unbiased.csv")."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.write_csv(path)
        client.log_artifact(run_id, str(path), artifact_path=str(Path(artifact_file).parent) or None)
