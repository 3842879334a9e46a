"""Matrix factorisation scorer: user and item tables in one TorchRec EmbeddingBagCollection."""

from __future__ import annotations

import torch
from torch import nn

from fbrec.embeddings.tables import TableSpec, build_collection, single_id_features


class MatrixFactorization(nn.Module):
    """logit(u, i) = <p_u, q_i>. Tables "user" and "item"; build on device="meta" and let DMP materialise."""

    def __init__(self, num_users: int, num_items: int, embedding_dim: int, *, init_std: float = 0.1,
                 device: str | torch.device = "meta"):
        super().__init__()
        self.tables = (TableSpec("user", num_users, embedding_dim, init_std=init_std),
                       TableSpec("item", num_items, embedding_dim, init_std=init_std))
        self.ebc = build_collection(self.tables, device=device)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """user (N,), item (N,) -> user embeddings (N, D), item embeddings (N, D); logit = (p * q).sum(-1)."""
        pooled = self.ebc(single_id_features({"user": user, "item": item})).to_dict()
        return pooled["user"], pooled["item"]
