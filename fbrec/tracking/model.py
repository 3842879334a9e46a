"""A run's bundle as an MLflow model: a pyfunc, so `mlflow.pyfunc.load_model` and `mlflow models serve` answer top-k
requests, the run shows under "Logged models", and `--register NAME` puts it in the model registry.

Input: a DataFrame with a `user` column (raw user ids as the log had them) and optionally `k` per row; params
{"k": 10, "exclude_seen": true}. Output: one row per (user, rank) with item and score. The fbrec source travels
with the model (code_paths), so loading needs numpy, polars, pyarrow and faiss, not torch.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

MODEL_NAME = "fbrec_bundle"
_REQUIREMENTS = ("numpy", "polars", "pyarrow", "faiss-cpu", "pandas")


class BundleModel(mlflow.pyfunc.PythonModel):
    """Top-k recommendations from a bundle (fbrec.bundle.Bundle), as an MLflow pyfunc."""

    def load_context(self, context) -> None:
        from fbrec.bundle import Bundle

        self.bundle = Bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        k_default, exclude_seen = int(params.get("k", 10)), bool(params.get("exclude_seen", True))
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        rows = []
        for i, user in enumerate(frame["user"].tolist()):
            k = int(frame["k"].iloc[i]) if "k" in frame.columns and pd.notna(frame["k"].iloc[i]) else k_default
            for rank, (item, score) in enumerate(self.bundle.recommend(user, k, exclude_seen=exclude_seen), 1):
                rows.append({"user": user, "rank": rank, "item": item, "score": float(score)})
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])


def _requirements() -> list[str]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def log_bundle_model(run_id: str, bundle_dir: str | Path, tracking_uri: str, *, user_id_type: str = "string",
                     item_id_type: str = "string", register: str | None = None) -> str:
    """Log `bundle_dir` as the run's MLflow model (and register it under `register`); returns its model URI."""
    import fbrec

    mlflow.set_tracking_uri(tracking_uri)
    signature = ModelSignature(
        inputs=Schema([ColSpec(user_id_type, "user"), ColSpec("long", "k", required=False)]),
        outputs=Schema([ColSpec(user_id_type, "user"), ColSpec("long", "rank"), ColSpec(item_id_type, "item"),
                        ColSpec("double", "score")]),
        params=ParamSchema([ParamSpec("k", "long", 10), ParamSpec("exclude_seen", "boolean", True)]))
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # the signature is explicit, so MLflow's advice on type hints and input examples is noise here
        warnings.filterwarnings("ignore", message=".*(type hints|input example|input_example).*")
        info = mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=BundleModel(),
                                       artifacts={"bundle": str(bundle_dir)},
                                       code_paths=[str(Path(fbrec.__file__).parent)],
                                       pip_requirements=_requirements(), signature=signature,
                                       registered_model_name=register)
    return info.model_uri
