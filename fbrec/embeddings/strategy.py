"""A Lightning strategy for TorchRec models: DDP's launcher, process group and samplers, no outer DDP wrap,
and sharded checkpoints through torch.distributed.checkpoint (each rank writes only its own shards).

Checkpoints are directories: `.metadata` and one `.distcp` file per rank (tensors only, read by DCP's safe
loader) plus `lightning_meta.json` (epoch, loop progress, callback state) as JSON — nothing is unpickled on load.

The LightningModule builds its DistributedModelParallel in `configure_model()`, which runs after the process
group exists. Stock `strategy="ddp"` would wrap the DMP again and broadcast parameters whose shapes differ per
rank; this strategy skips that.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.planner import ReadItem

from fbrec._atomic import is_fbrec_output, new_temp_dir, recover, swap_into_place, tree_sha256
from fbrec.embeddings.meta import META_FILE, read_meta, write_meta
from fbrec.errors import ConfigError

# what a DCP `.metadata` pickle refers to: the checkpoint's own metadata classes, torch sizes, dtypes and layouts
_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name) for name in (
        "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties", "TensorStorageMetadata",
        "BytesStorageMetadata", "ChunkStorageMetadata", "_MEM_FORMAT_ENCODING")} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"), ("torch.serialization", "_get_layout"),
    ("torch", "Size"), ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("collections", "OrderedDict")}


class _MetadataUnpickler(pickle.Unpickler):
    """Admits only the classes a DCP checkpoint's metadata is made of; anything else (os.system, a model class, ...)
    is refused before it is looked up, so a crafted `.metadata` runs nothing whatever the tracking store says."""

    def find_class(self, module: str, name: str):
        if (module, name) in _METADATA_CLASSES:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype | torch.layout
                                            | torch.memory_format):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


class _SafeMetadataReader(FileSystemReader):
    """DCP's file reader with the metadata read through _MetadataUnpickler (the shards are read by the safe
    planner below)."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self._get_metadata_path(kwargs.get("rank"))
        try:
            with self.fs.create_stream(path, "rb") as stream:
                metadata = _MetadataUnpickler(stream).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"checkpoint metadata {str(path)!r} is not DCP metadata: it refers to {exc}",
                              rule="a checkpoint's .metadata holds only DCP's own metadata classes; nothing else is "
                                   "unpickled", fix="resume from a checkpoint fbrec wrote, or start a new run") from None
        if not isinstance(metadata, Metadata):
            raise ConfigError(f"checkpoint metadata {str(path)!r} holds a {type(metadata).__name__}, not DCP metadata",
                              rule="a checkpoint's .metadata is DCP's Metadata", fix="start a new run")
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


CHECKPOINT_TAG = "fbrec.checkpoint."   # + the checkpoint's name: "<its sha256> <the replaced state's sha256>"


def checkpoint_tag(name: str) -> str:
    """The run tag holding a checkpoint's digests (MLflow keys take letters, digits and _-. /; `=` becomes _)."""
    return CHECKPOINT_TAG + re.sub(r"[^\w.\- /]", "_", name)


def check_shared_folder(folder: Path, rank: int, world: int, nonce: str) -> None:
    """Each rank writes a probe file into `folder`; rank 0 checks it sees every rank's, and every rank refuses the
    run with one line when it does not (without a shared filesystem, checkpoints would silently hold rank 0's shards
    only and could neither test nor resume). Collective: every rank calls it."""
    import torch.distributed as dist

    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".fbrec-probe-{nonce}-{rank}"
    probe.write_text(str(rank))
    dist.barrier()
    missing = [r for r in range(world) if not (folder / f".fbrec-probe-{nonce}-{r}").exists()] if rank == 0 else []
    box = [missing]
    dist.broadcast_object_list(box, src=0)
    dist.barrier()   # every probe was looked at before any is removed
    probe.unlink(missing_ok=True)
    if box[0]:
        raise ConfigError(f"checkpoint folder {str(folder)!r} is not shared: rank 0 does not see the files of rank(s) "
                          f"{box[0]}", rule="every process writes its shards of each checkpoint into one folder that "
                          "rank 0 sees (a filesystem every node mounts)",
                          fix="put the run store on shared storage (e.g. NFS): MLFLOW_TRACKING_URI=sqlite:///"
                              "/shared/mlruns/mlflow.db, or start every node in a shared working directory")


class _SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default planner unpickles non-tensor entries without restriction; these are plain numbers and
    strings (optimizer hyper-parameters, step counts), which the restricted unpickler reads."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        obj = torch.load(value, weights_only=True)
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


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
            ckpt = trainer.checkpoint_callback
            if self.world_size > 1 and ckpt is not None and getattr(ckpt, "dirpath", None):
                # every rank writes its shards where rank 0 swaps the checkpoint in: refuse storage it cannot see
                check_shared_folder(Path(self.broadcast(str(ckpt.dirpath))), self.global_rank, self.world_size,
                                    self.broadcast(uuid.uuid4().hex[:12]))
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
        """Each rank writes its shards into one temp directory beside `filepath`; rank 0 adds the metadata as JSON
        and swaps the directory into place, so a kill at any instant leaves the previous checkpoint or this one."""
        path = Path(self.broadcast(str(filepath)))
        if self.global_rank == 0:
            recover(path)   # leftovers of a save that a kill interrupted
        tmp = Path(self.broadcast(str(new_temp_dir(path, "checkpoint")) if self.global_rank == 0 else None))
        state = {"state_dict": checkpoint.pop("state_dict")}
        state.update({f"optimizer_{i}": o for i, o in enumerate(checkpoint.pop("optimizer_states", []))})
        dcp.save(state, checkpoint_id=str(tmp))          # a directory: .metadata + one .distcp per rank
        self.barrier("save_checkpoint:written")
        if self.global_rank == 0:
            write_meta(tmp / META_FILE, checkpoint)
            self._record_digest(path.name, tree_sha256(tmp))   # before the swap: a kill leaves a recorded state
            swap_into_place(tmp, path)
        self.barrier("save_checkpoint:swapped")

    def _record_digest(self, name: str, digest: str) -> None:
        """The checkpoint's hash goes into the run (tag `fbrec.checkpoint.<name>`: this state's digest and the one
        it replaces), so that `--resume` can refuse a checkpoint changed after fbrec wrote it before unpickling."""
        trainer = self.lightning_module.trainer if self.lightning_module is not None else None
        for logger in trainer.loggers if trainer is not None else ():
            run_id = getattr(logger, "run_id", None)
            if run_id is None or not hasattr(logger.experiment, "set_tag"):
                continue
            previous = logger.experiment.get_run(run_id).data.tags.get(checkpoint_tag(name), "").split()
            logger.experiment.set_tag(run_id, checkpoint_tag(name), " ".join([digest, *previous[:1]]))

    def load_checkpoint(self, checkpoint_path, weights_only=None) -> dict:
        path = Path(self.broadcast(str(checkpoint_path)))
        if not (path / META_FILE).is_file() or not is_fbrec_output(path):
            raise ConfigError(f"{str(path)!r} is not an fbrec checkpoint", rule="checkpoints are directories the "
                              f"torchrec strategy wrote (.metadata, .distcp shards, {META_FILE})",
                              fix="resume with `fbrec train --resume RUN_ID`, which finds the run's own checkpoint")
        module = self.lightning_module
        state: dict[str, Any] = {"state_dict": module.state_dict()}
        if module.trainer.state.fn == "fit":
            for opt in self.optimizers:
                if hasattr(opt, "init_state"):
                    opt.init_state()                      # KeyedOptimizer: materialize state before loading
            state.update({f"optimizer_{i}": o.state_dict() for i, o in enumerate(self.optimizers)})
        # in place, into this rank's shards (reshards if needed); non-tensor entries through the safe unpickler
        reader = _SafeMetadataReader(str(path))
        reader.read_metadata()   # refused here with one clear error (inside dcp.load it would come back wrapped)
        dcp.load(state, storage_reader=reader, planner=_SafeLoadPlanner())
        for i, opt in enumerate(self.optimizers if "optimizer_0" in state else ()):
            opt.load_state_dict(state[f"optimizer_{i}"])
        meta = read_meta(path / META_FILE)
        meta["state_dict"] = state["state_dict"]
        return meta

    def load_model_state_dict(self, checkpoint, strict: bool = True) -> None:
        pass  # already loaded in place by dcp.load

    def remove_checkpoint(self, filepath) -> None:
        """Only checkpoints this strategy wrote (they carry fbrec's marker) are ever removed."""
        if self.global_rank == 0 and is_fbrec_output(Path(filepath)):
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
