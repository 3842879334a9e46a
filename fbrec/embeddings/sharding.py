"""Sharding plans and DistributedModelParallel wrapping for fbrec models (CPU/gloo and CUDA/NCCL)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from torchrec.distributed.types import ShardingType

from fbrec.errors import ConfigError, UnknownNameError

SHARDING_TYPES = {"table_wise": ShardingType.TABLE_WISE.value, "row_wise": ShardingType.ROW_WISE.value,
                  "column_wise": ShardingType.COLUMN_WISE.value, "data_parallel": ShardingType.DATA_PARALLEL.value,
                  "table_row_wise": ShardingType.TABLE_ROW_WISE.value,
                  "table_column_wise": ShardingType.TABLE_COLUMN_WISE.value}
# CPU TBE kernels support only the EXACT_* optimizers (Adam/LAMB are CUDA-only in fbgemm)
SPARSE_OPTIMIZERS = {"sgd": EmbOptimType.EXACT_SGD, "adagrad": EmbOptimType.EXACT_ADAGRAD,
                     "rowwise_adagrad": EmbOptimType.EXACT_ROWWISE_ADAGRAD}


class _EBCSharder(EmbeddingBagCollectionSharder):
    """The stock sharder offers row-wise sharding only on CUDA; the CPU TBE kernels handle it fine."""

    def sharding_types(self, compute_device_type: str) -> list[str]:
        types = super().sharding_types(compute_device_type)
        if compute_device_type == "cpu":
            types = types + [t for t in (ShardingType.ROW_WISE.value, ShardingType.TABLE_ROW_WISE.value)
                             if t not in types]
        return types


def make_sharder(optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05, eps: float = 1e-8,
                 weight_decay: float = 0.0) -> EmbeddingBagCollectionSharder:
    if optimizer not in SPARSE_OPTIMIZERS:
        raise UnknownNameError("sparse optimizer", optimizer, SPARSE_OPTIMIZERS)
    fused = {"optimizer": SPARSE_OPTIMIZERS[optimizer], "learning_rate": learning_rate, "eps": eps,
             "weight_decay": weight_decay}
    return _EBCSharder(fused_params=fused)


def ensure_process_group(device: torch.device) -> None:
    """A world-size-1 process group when none exists (single-process training still goes through DMP)."""
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = dist.HashStore()
        dist.init_process_group(backend, store=store, rank=0, world_size=1)


def shard(module: torch.nn.Module, *, device: torch.device, sharding: Mapping[str, str] | None = None,
          optimizer: str = "rowwise_adagrad", learning_rate: float = 0.05,
          weight_decay: float = 0.0) -> DistributedModelParallel:
    """Plan with TorchRec's planner over the current process group and wrap in DMP.

    sharding maps table name -> sharding type ("table_wise", "row_wise", "column_wise", ...); unnamed tables are
    left to the planner. The module may live on the meta device: DMP materializes only this rank's shards.
    """
    ensure_process_group(device)
    world = dist.get_world_size()
    constraints = {}
    for table, kind in (sharding or {}).items():
        if kind not in SHARDING_TYPES:
            raise UnknownNameError("sharding type", kind, SHARDING_TYPES)
        constraints[table] = ParameterConstraints(sharding_types=[SHARDING_TYPES[kind]])
    sharder = make_sharder(optimizer, learning_rate, weight_decay=weight_decay)
    local = int(torch.cuda.device_count()) if device.type == "cuda" else world
    topology = Topology(world_size=world, compute_device=device.type, local_world_size=min(local, world) or world)
    planner = EmbeddingShardingPlanner(topology=topology, constraints=constraints or None)
    try:
        plan = planner.collective_plan(module, [sharder], dist.GroupMember.WORLD)
    except RuntimeError as exc:
        raise ConfigError(f"no sharding plan satisfies {dict(sharding or {})}: {str(exc).splitlines()[0]}",
                          rule=f"on {device.type} the sharder offers {sharder.sharding_types(device.type)}",
                          fix="choose another sharding type or let the planner decide") from exc
    return DistributedModelParallel(module, device=device, plan=plan, sharders=[sharder])


def plan_summary(dmp: DistributedModelParallel) -> dict[str, str]:
    """table -> sharding type, as planned."""
    out = {}
    for _, module_plan in dmp.plan.plan.items():
        for table, param in module_plan.items():
            out[table] = f"{param.sharding_type}:{param.compute_kernel}:ranks={param.ranks}"
    return out


def combined_optimizer(dmp: DistributedModelParallel, dense_learning_rate: float = 1e-3,
                       extra: dict[str, torch.nn.Parameter] | None = None):
    """The DMP's fused sparse optimizer (it steps inside backward) plus Adam over any dense parameters (the DMP's
    and `extra` ones living outside it), as one FQN-keyed optimizer, so DCP can checkpoint and restore both."""
    from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
    from torchrec.optim.optimizers import in_backward_optimizer_filter

    dense = {f"model.{k}": v for k, v in in_backward_optimizer_filter(dmp.named_parameters())}
    dense.update(extra or {})
    optimizers = [("sparse", dmp.fused_optimizer)]
    if dense:
        optimizers.append(("dense", KeyedOptimizerWrapper(
            dense, lambda params: torch.optim.Adam(params, lr=dense_learning_rate))))
    return CombinedOptimizer(optimizers)


def whole_table(dmp: DistributedModelParallel, name: str) -> torch.Tensor:
    """Table `name`'s weights (rows, D) as a tensor that writes through to the lookups: for solvers that set rows in
    closed form (ALS). Only where this process holds the whole table (one process, any sharding plan)."""
    found = [v for k, v in dmp.state_dict().items() if k.endswith(f".{name}.weight")]
    if len(found) != 1:
        raise ConfigError(f"table {name!r} found {len(found)} times in the model", rule="one table per name",
                          fix="name the tables uniquely")
    weight = found[0]
    if not hasattr(weight, "local_shards"):
        return weight
    shards = weight.local_shards()
    if len(shards) != 1 or tuple(shards[0].tensor.shape) != tuple(weight.shape):
        raise ConfigError(f"table {name!r} is split across processes ({len(shards)} local shard(s) of "
                          f"{tuple(weight.shape)})", rule="a closed-form solver needs the whole table in one process",
                          fix="train in one process, or use the gradient solver (it trains sharded)")
    return shards[0].tensor
