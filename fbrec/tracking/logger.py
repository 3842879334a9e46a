"""The Lightning MLflow logger fbrec trains with (imported only when training: it pulls in Lightning)."""

from __future__ import annotations

from lightning.pytorch.loggers import MLFlowLogger


class FbrecMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger minus its automatic hyperparameters: Lightning would log the model's and the data
    module's arguments (the data ones twice, plus LightningCLI's `_instantiator`); fbrec logs one flat, readable
    set itself (`log_params`)."""

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        return None

    def log_params(self, params: dict[str, object]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):   # MLflow's batch limit
            self.experiment.log_batch(self.run_id, params=items[start:start + 100])
