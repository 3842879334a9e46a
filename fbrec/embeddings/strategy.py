"""A Lightning strategy for TorchRec models: DDP's launcher, process group and samplers, no outer DDP wrap,
and sharded checkpoints through torch.distributed.checkpoint (each rank writes only its own shards).

The LightningModule builds its DistributedModelParallel in `configure_model()`, which runs after the process
group exists. Stock `strategy="ddp"` would wrap the DMP again and broadcast parameters whose shapes differ per
rank; this strategy skips that.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

_META = "lightning_meta.pt"


class _NoWeightsLauncher(_MultiProcessingLauncher):
    """spawn/fork: rank 0's sharded weights cannot travel back to the parent through torch.load; drop them."""

    def _collect_rank_zero_results(self, trainer, results):
        out = super()._collect_rank_zero_results(trainer, results)
        if out is not None and out.weights_path is not None:
            os.remove(out.weights_path)
            out = out._replace(weights_path=None)
        return out


class TorchRecStrategy(DDPStrategy):
    """DDPStrategy for modules that own a DistributedModelParallel. Use with accelerator="cpu" (gloo) or "gpu"."""

    strategy_name = "torchrec"

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("process_group_backend", None)
        super().__init__(**kwargs)

    def configure_ddp(self) -> None:  # DMP already wraps the dense part in DDP
        pass

    def setup(self, trainer) -> None:
        self.accelerator.setup(trainer)
        self.model_to_device()
        if trainer.state.fn == "fit":
            self.setup_optimizers(trainer)
        self.setup_precision_plugin()

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if self._start_method != "popen":
            self._launcher = _NoWeightsLauncher(self, start_method=self._start_method)

    @property
    def restore_checkpoint_after_setup(self) -> bool:  # load after configure_model built the shards
        return True

    @property
    def lightning_restore_optimizer(self) -> bool:  # optimizer state comes back through DCP in load_checkpoint
        return False

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        path = Path(self.broadcast(str(filepath)))
        state = {"state_dict": checkpoint.pop("state_dict")}
        state.update({f"optimizer_{i}": o for i, o in enumerate(checkpoint.pop("optimizer_states", []))})
        dcp.save(state, checkpoint_id=str(path))          # a directory: .metadata + one .distcp per rank
        if self.global_rank == 0:
            torch.save(checkpoint, path / _META)
        self.barrier("save_checkpoint")

    def load_checkpoint(self, checkpoint_path, weights_only=None) -> dict:
        path = Path(self.broadcast(str(checkpoint_path)))
        module = self.lightning_module
        state: dict[str, Any] = {"state_dict": module.state_dict()}
        if module.trainer.state.fn == "fit":
            for opt in self.optimizers:
                if hasattr(opt, "init_state"):
                    opt.init_state()                      # KeyedOptimizer: materialize state before loading
            state.update({f"optimizer_{i}": o.state_dict() for i, o in enumerate(self.optimizers)})
        dcp.load(state, checkpoint_id=str(path))          # in place, into this rank's shards (reshards if needed)
        for i, opt in enumerate(self.optimizers if "optimizer_0" in state else ()):
            opt.load_state_dict(state[f"optimizer_{i}"])
        meta = torch.load(path / _META, weights_only=False)
        meta["state_dict"] = state["state_dict"]
        return meta

    def load_model_state_dict(self, checkpoint, strict: bool = True) -> None:
        pass  # already loaded in place by dcp.load

    def remove_checkpoint(self, filepath) -> None:
        if self.global_rank == 0:
            import shutil
            shutil.rmtree(filepath, ignore_errors=True)


def register_strategies() -> None:
    """Make `strategy: torchrec` (popen/torchrun launch) and `torchrec_spawn` (inside pytest/notebooks) valid
    Trainer strategy names. Idempotent."""
    from lightning.pytorch.strategies import StrategyRegistry

    if "torchrec" not in StrategyRegistry:
        StrategyRegistry.register("torchrec", TorchRecStrategy, description="DDP launcher + TorchRec DMP, no outer DDP")
    if "torchrec_spawn" not in StrategyRegistry:
        StrategyRegistry.register("torchrec_spawn", TorchRecStrategy, description="torchrec with start_method=spawn",
                                  start_method="spawn")
