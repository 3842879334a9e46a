"""The MLflow "model from code" of a run's bundle: MLflow executes this file to build the pyfunc, so it imports
nothing of fbrec but the bundle reader (no torch, no Lightning when a server loads it). Logged by
fbrec.tracking.model.log_bundle_model.

Input: a DataFrame with a `user` column (raw user ids as the log had them) and optionally `k` per row; params
{"k": 10, "exclude_seen": true}. Output: one row per (user, rank) with item and score.
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import pandas as pd


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


mlflow.models.set_model(BundleModel())
