"""Table specs -> TorchRec EmbeddingBagCollection, and id tensors -> KeyedJaggedTensor.

Every id embedding in fbrec lives in one EmbeddingBagCollection so DistributedModelParallel can shard it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor, KeyedTensor

from fbrec._checks import check_positive
from fbrec.errors import ConfigError


@dataclass(frozen=True)
class TableSpec:
    """One embedding table: `num_embeddings` rows of `embedding_dim`, looked up by `features`."""

    name: str
    num_embeddings: int
    embedding_dim: int
    features: tuple[str, ...] = field(default=())
    pooling: str = "sum"
    init_std: float = 0.1

    def __post_init__(self):
        check_positive(f"{self.name}.num_embeddings", self.num_embeddings)
        check_positive(f"{self.name}.embedding_dim", self.embedding_dim)
        if self.embedding_dim % 4:
            raise ConfigError(f"{self.name}.embedding_dim={self.embedding_dim}",
                              rule="fbgemm's table-batched kernels need embedding_dim divisible by 4",
                              fix=f"use embedding_dim={self.embedding_dim + (-self.embedding_dim) % 4}")
        if self.pooling not in ("sum", "mean"):
            raise ConfigError(f"{self.name}.pooling={self.pooling!r}", rule="pooling is 'sum' or 'mean'",
                              fix="pass pooling='sum'")

    def config(self) -> EmbeddingBagConfig:
        std = self.init_std
        return EmbeddingBagConfig(
            name=self.name, embedding_dim=self.embedding_dim, num_embeddings=self.num_embeddings,
            feature_names=list(self.features or (self.name,)),
            pooling=PoolingType.SUM if self.pooling == "sum" else PoolingType.MEAN,
            init_fn=lambda w: torch.nn.init.normal_(w, 0.0, std))


def build_collection(specs: Sequence[TableSpec], device: str | torch.device = "cpu") -> EmbeddingBagCollection:
    """Build the collection; pass device="meta" to defer allocation until DMP shards it."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"table names {names} repeat", rule="table names are unique", fix="rename the tables")
    return EmbeddingBagCollection(tables=[s.config() for s in specs], device=torch.device(device))


def single_id_features(ids: Mapping[str, torch.Tensor]) -> KeyedJaggedTensor:
    """One id per example per feature: {"user": (N,), "item": (N,)} -> KJT with stride N, all lengths 1."""
    keys = list(ids)
    values = torch.cat([ids[k].reshape(-1).long() for k in keys])
    n = ids[keys[0]].numel()
    if any(ids[k].numel() != n for k in keys):
        raise ConfigError("feature id tensors differ in length", rule="every feature has one id per example",
                          fix="broadcast the ids to one length")
    return KeyedJaggedTensor.from_lengths_sync(keys=keys, values=values,
                                               lengths=torch.ones(n * len(keys), dtype=torch.int32))


def to_dict(pooled: KeyedTensor) -> dict[str, torch.Tensor]:
    return pooled.to_dict()


def gather_bags(offsets: torch.Tensor, values: torch.Tensor, rows: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows' bags of a CSR feature: offsets (n + 1,), values (nnz,), rows (N,) -> lengths (N,), values (sum,)."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    total = int(lengths.sum())
    # position k of the output reads values[start of its row + k - first output position of its row]
    first = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - first, lengths, output_size=total)
    return lengths, values[torch.arange(total, device=values.device) + shift]


def drop_values(lengths: torch.Tensor, values: torch.Tensor, rate: float, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep each value of each bag with probability 1 - rate (a bag may end empty: it then pools to zeros)."""
    if rate <= 0 or values.numel() == 0:
        return lengths, values
    keep = torch.rand(values.shape, generator=generator, device=values.device) >= rate
    row = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths,
                                  output_size=values.numel())
    return torch.bincount(row[keep], minlength=len(lengths)).to(lengths.dtype), values[keep]


def keyed_bags(bags: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> KeyedJaggedTensor:
    """{feature: (lengths (N,), values)} with one stride N for every feature -> KeyedJaggedTensor."""
    keys = list(bags)
    strides = {len(bags[k][0]) for k in keys}
    if len(strides) != 1:
        raise ConfigError(f"features have {sorted(strides)} rows", rule="every feature has one bag per example",
                          fix="pad the shorter features with empty bags")
    return KeyedJaggedTensor.from_lengths_sync(keys=keys, values=torch.cat([bags[k][1].long() for k in keys]),
                                               lengths=torch.cat([bags[k][0] for k in keys]).int())
