"""The only TorchRec importer: table specs -> collections, sharding plans, DMP, the Lightning strategy."""

try:
    import fbgemm_gpu  # noqa: F401  (TorchRec's kernels: fbgemm-gpu-cpu or fbgemm-gpu)
except ImportError as exc:
    from fbrec.errors import MissingExtraError

    raise MissingExtraError("fbgemm-gpu-cpu", "cpu", "TorchRec embedding tables (training, evaluation)") from exc

from fbrec.embeddings.sharding import (
           SHARDING_TYPES,
           SPARSE_OPTIMIZERS,
           combined_optimizer,
           ensure_process_group,
           plan_summary,
           shard,
           whole_table,
)
from fbrec.embeddings.strategy import TorchRecStrategy, register_strategies
from fbrec.embeddings.tables import (
    TableSpec,
    build_collection,
    drop_values,
    gather_bags,
    keyed_bags,
    single_id_features,
)

__all__ = ["SHARDING_TYPES", "SPARSE_OPTIMIZERS", "TableSpec", "TorchRecStrategy", "build_collection",
           "combined_optimizer", "drop_values", "gather_bags", "keyed_bags",
           "ensure_process_group", "plan_summary", "register_strategies", "shard", "single_id_features", "whole_table"]
